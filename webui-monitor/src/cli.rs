//! Command line: `run` (the daemon), `check` (can this machine run it), `replay` (the same
//! pipeline over a capture file), `config check` and `top`.
use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::{
    capture,
    config::{self, ConfigArgs, ConfigCommand},
    daemon,
    replay::{self, ReplayArgs},
    top,
};

#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture the monitored ports and serve /metrics until SIGINT/SIGTERM (SIGHUP re-reads the
    /// configuration, the secret and Open WebUI's database, and applies what it can).
    Run(ConfigArgs),
    /// Report whether this machine can run the capture; non-zero exit if not.
    Check(CheckArgs),
    /// Run the pipeline over a pcap/pcapng file: exchanges, attribution and metrics, exactly as
    /// the daemon would have seen the traffic.
    Replay(ReplayArgs),
    /// Live per-user view of the running daemon (one snapshot when stdout is not a terminal).
    Top(top::TopArgs),
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => daemon::run(&args),
        Command::Check(args) => check(&args),
        Command::Replay(args) => replay::run(args),
        Command::Config { command } => command.run(),
        Command::Top(args) => top::run(args),
    }
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also write each program's full verifier log (every instruction the verifier walked;
    /// tens of MB) to DIR/<program>.log, for a bug report
    #[arg(long, value_name = "DIR")]
    pub verifier_log: Option<std::path::PathBuf>,
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let loaded = config::load(&args.config)?;
    let report = capture::check::run(&loaded.config.capture, args.verifier_log.as_deref());
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
