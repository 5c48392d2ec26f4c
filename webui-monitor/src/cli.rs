//! Command line: `run` (the daemon) and `check` (can this machine run it).
use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use prometheus::Registry;

use crate::{
    capture::{self, Capture, CaptureConfig, XdpAttachMode},
    metrics::capture::CaptureMetrics,
    pipeline::Pipeline,
    server,
};

#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture the monitored ports and serve /metrics until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Report whether this machine can run the capture; non-zero exit if not.
    Check(CaptureArgs),
}

/// What to capture.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to attach to (repeatable).
    #[arg(
        long = "interface",
        short = 'i',
        value_name = "IFACE",
        default_value = "lo"
    )]
    pub interfaces: Vec<String>,
    /// Open WebUI's TCP port (repeatable, at most 16).
    #[arg(
        long = "port",
        short = 'p',
        value_name = "PORT",
        default_value = "8080"
    )]
    pub ports: Vec<u16>,
    /// Connections the kernel tracks at once (LRU).
    #[arg(long, default_value_t = CaptureConfig::default().max_connections)]
    pub max_connections: u32,
    /// Size of the payload ring buffer in bytes (power of two).
    #[arg(long, default_value_t = CaptureConfig::default().ring_bytes)]
    pub ring_bytes: u32,
    /// How XDP is attached.
    #[arg(long, value_enum, default_value_t = XdpAttachMode::Auto)]
    pub xdp_mode: XdpAttachMode,
}

impl CaptureArgs {
    fn config(&self) -> CaptureConfig {
        CaptureConfig {
            interfaces: self.interfaces.clone(),
            ports: self.ports.clone(),
            max_connections: self.max_connections,
            ring_bytes: self.ring_bytes,
            xdp_mode: self.xdp_mode,
            ..CaptureConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Address of the /metrics endpoint.
    #[arg(long, default_value_t = server::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(daemon(args)),
        Command::Check(args) => check(&args),
    }
}

fn check(args: &CaptureArgs) -> anyhow::Result<()> {
    let report = capture::check::run(&args.config());
    print!("{report}");
    if report.ok() {
        Ok(())
    } else {
        bail!(
            "this machine cannot run the capture:\n  {}",
            report.missing().join("\n  ")
        )
    }
}

async fn daemon(args: RunArgs) -> anyhow::Result<()> {
    let config = args.capture.config();
    let registry = Registry::new();
    server::register_build_info(&registry)?;
    let metrics = CaptureMetrics::register(&registry)?;
    let state = Arc::new(server::State {
        registry,
        ready: false.into(),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    log::info!("serving /metrics on http://{}", args.listen);

    let mut capture = Capture::load(&config).context("loading the eBPF programs")?;
    if let Some(logger) = capture.take_logger() {
        tokio::spawn(async move {
            if let Err(error) = capture::poll_logger(logger).await {
                log::warn!("reading eBPF log messages failed: {error}");
            }
        });
    }
    // On failure `capture` is dropped, which detaches whatever was attached.
    capture
        .attach(&config.interfaces, config.xdp_mode)
        .context("attaching the eBPF programs (run `webui-monitor check`)")?;
    state.ready.store(true, Ordering::Relaxed);
    let server = tokio::spawn(server::serve(listener, Arc::clone(&state)));

    let mut pipeline = Pipeline::default();
    let summary = capture::run::run(
        &mut capture,
        &mut pipeline,
        &metrics,
        &config,
        shutdown_signal(),
    )
    .await;
    state.ready.store(false, Ordering::Relaxed);
    server.abort();
    let summary = summary.context("capture failed")?;
    log::info!(
        "stopped: {} records read, everything detached",
        summary.records
    );
    Ok(())
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log::error!(
            "cannot install signal handlers; stop with SIGKILL (links go away with the process)"
        );
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => log::info!("SIGINT: detaching"),
        _ = terminate.recv() => log::info!("SIGTERM: detaching"),
    }
}
