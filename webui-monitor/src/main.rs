fn main() -> std::process::ExitCode {
    match webui_monitor::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("webui-monitor: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
