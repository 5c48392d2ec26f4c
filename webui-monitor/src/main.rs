//! `webui-monitor`: see `webui-monitor --help`.
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the daemon makes and drops many small allocations per
/// request (head fields, exchanges, body scanners), where glibc's allocator took over a third of
/// the daemon's CPU under load (docs/benchmarks-load.md, "Where the daemon's time goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match webui_monitor::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("webui-monitor: {err:#}");
            ExitCode::FAILURE
        }
    }
}
