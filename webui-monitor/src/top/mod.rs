//! `webui-monitor top`: a live terminal view of the users the running daemon sees.
//!
//! It polls the daemon's `GET /api/users` (the core's
//! [`usage_summary`](webui_monitor_core::usage_summary)) on the metrics port with an HTTP client
//! ([`client`]), derives per-minute rates from the difference of two polls (the daemon's own
//! `generated_at`, so the client's clock and scheduling jitter do not skew them), and draws a
//! table ([`view`]). On a terminal it refreshes until `q` ([`terminal`]); otherwise (a pipe, a
//! cron job) or with `--once` it prints one plain table. Token counts marked `≥` are lower
//! bounds: some of that user's answers carried no counts
//! (`openwebui_chat_completions_without_usage_total`).
mod client;
mod terminal;
mod view;

use std::{
    io::{IsTerminal as _, Write as _},
    time::Duration,
};

use clap::Args;

use self::{
    client::{Endpoint, FetchLimits, fetch},
    view::{Sort, SortKey, render},
};
use crate::server;

/// `webui-monitor top` options.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Base URL of the daemon's metrics endpoint (its `--listen` address).
    #[arg(long, default_value_t = format!("http://{}", server::DEFAULT_LISTEN))]
    pub url: String,
    /// Sort key; `s` cycles it and `r` reverses it while running.
    #[arg(long, value_enum, default_value_t = SortKey::Requests)]
    pub sort: SortKey,
    /// Reverse the sort order (ascending numbers, descending names).
    #[arg(long)]
    pub reverse: bool,
    /// Seconds between polls; rates are measured over this window (0 with --once: no rates).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Print one snapshot as a plain table and exit (the default when stdout is no terminal).
    #[arg(long)]
    pub once: bool,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && (0.0..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err("expected seconds between 0 and 3600".to_owned())
    }
}

/// Runs `top` until `q` (terminal) or after one snapshot (`--once`, or stdout is no terminal).
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.url)?;
    let limits = FetchLimits::default();
    let interval = Duration::from_secs_f64(args.interval);
    let sort = Sort {
        key: args.sort,
        reverse: args.reverse,
    };
    let first = fetch(&endpoint, &limits)?;
    if args.once || !std::io::stdout().is_terminal() {
        let (previous, current) = if interval.is_zero() {
            (None, first)
        } else {
            std::thread::sleep(interval);
            (Some(first), fetch(&endpoint, &limits)?)
        };
        let mut out = std::io::stdout().lock();
        for line in render(&current, previous.as_ref(), sort, usize::MAX) {
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    terminal::run(&endpoint, &limits, interval, sort, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            top: TopArgs,
        }
        let args = Cli::parse_from(["top"]).top;
        assert_eq!(args.url, "http://127.0.0.1:9741");
        assert_eq!(args.sort, SortKey::Requests);
        assert_eq!(args.interval, 1.0);
        assert!(!args.once && !args.reverse);
        let args = Cli::parse_from([
            "top",
            "--sort",
            "last-seen",
            "--interval",
            "0.5",
            "--once",
            "--reverse",
        ])
        .top;
        assert_eq!(
            (args.sort, args.interval, args.once, args.reverse),
            (SortKey::LastSeen, 0.5, true, true)
        );
        assert!(Cli::try_parse_from(["top", "--interval", "-1"]).is_err());
        assert!(Cli::try_parse_from(["top", "--sort", "bytes"]).is_err());
    }
}
