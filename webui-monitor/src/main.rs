//! `webui-monitor`: see `webui-monitor --help`.
use std::process::ExitCode;

fn main() -> ExitCode {
    match webui_monitor::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("webui-monitor: {err:#}");
            ExitCode::FAILURE
        }
    }
}
