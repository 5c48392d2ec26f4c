//! Command line: `run` (the daemon), `check` (can this machine run it), `replay` (the same
//! pipeline over a capture file), `config check`, `top` and `healthcheck`.
use std::{net::SocketAddr, time::Duration};

use anyhow::{Context as _, bail};
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
    /// Exit 0 if the daemon configured like `run` answers 200 on /healthz (the container
    /// image's HEALTHCHECK, which has no curl); the address is capture.listen, over TLS when
    /// server.web_config_file configures it (/healthz needs no password).
    Healthcheck(ConfigArgs),
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => daemon::run(&args),
        Command::Check(args) => check(&args),
        Command::Replay(args) => replay::run(args),
        Command::Config { command } => command.run(),
        Command::Top(args) => top::run(args),
        Command::Healthcheck(args) => healthcheck(&args),
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

/// The address a local client reaches `listen` at: the loopback address of its family when
/// the daemon listens on every address.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let mut address = listen;
    if listen.ip().is_unspecified() {
        address.set_ip(match listen {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    address
}

/// Asks the local daemon's `/healthz`. With TLS configured it speaks TLS without verifying the
/// certificate: it checks that the local process answers, on an address of this host, sends no
/// credentials and receives nothing but "ok", and the web config names no CA that would verify
/// the server (only the clients'). A server that requires client certificates cannot be asked.
fn healthcheck(args: &ConfigArgs) -> anyhow::Result<()> {
    let loaded = config::load(args)?;
    let web = match &loaded.config.server.web_config_file {
        Some(path) => crate::server::WebConfig::load(path)?,
        None => crate::server::WebConfig::default(),
    };
    if web.requires_client_certificate() {
        bail!(
            "the web config requires client certificates (RequireAndVerifyClientCert), which the \
             healthcheck does not hold: use VerifyClientCertIfGiven, or a TCP probe of {}",
            loaded.config.capture.listen
        );
    }
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}/healthz",
        local_address(loaded.config.capture.listen)
    );
    let timeout = Some(Duration::from_secs(5));
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            crate::server::web_config::provider(),
        ))
        .disable_verification(true)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(timeout)
        .tls_config(tls)
        .build()
        .into();
    let response = agent.get(&url).call().with_context(|| {
        format!("{url}: no answer; is `webui-monitor run` listening on capture.listen?")
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        bail!("{url} answered HTTP {status}, not 200");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::local_address;

    #[test]
    fn healthcheck_reaches_unspecified_listen_addresses_on_loopback() {
        let cases = [
            ("0.0.0.0:9741", "127.0.0.1:9741"),
            ("[::]:9741", "[::1]:9741"),
            ("10.0.0.5:9000", "10.0.0.5:9000"),
            ("127.0.0.1:9741", "127.0.0.1:9741"),
        ];
        for (listen, expected) in cases {
            let listen = listen.parse().expect("address");
            assert_eq!(local_address(listen).to_string(), expected, "{listen}");
        }
    }
}
