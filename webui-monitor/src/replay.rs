//! `webui-monitor replay FILE`: the daemon's configuration, Open WebUI's database and a capture
//! file through [`webui_monitor_core::replay`], with a progress bar, JSON lines, a summary and
//! the metrics file.
use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufReader, BufWriter, IsTerminal, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use webui_monitor_core::{
    Monitor,
    openwebui::route,
    pcap::SkipReason,
    pipeline::{Pipeline, PipelineEvent, SkipCommand},
    replay::{ReplayStats, ReplayTarget, exchange_json, replay_into},
    segment::{Segment, Timestamp},
};

use crate::{
    audit::RotatingFile,
    config::{self, ConfigArgs},
    db,
};

/// The monitor, with its audit queue drained into `out` after every call (a long capture
/// queues more events than `audit.max_queue` otherwise). The first write error is kept.
struct Auditing<'a> {
    monitor: &'a mut Monitor,
    out: Option<RotatingFile>,
    error: Option<std::io::Error>,
}

impl Auditing<'_> {
    fn write_queued(&mut self) {
        let events = self.monitor.drain_audit();
        let Some(out) = self.out.as_mut() else {
            events.for_each(drop);
            return;
        };
        for event in events {
            if self.error.is_some() {
                continue;
            }
            let written = serde_json::to_string(&event)
                .map_err(std::io::Error::other)
                .and_then(|line| out.write_line(&line));
            if let Err(e) = written {
                self.error = Some(e);
            }
        }
    }
}

impl ReplayTarget for Auditing<'_> {
    fn on_segment(&mut self, segment: &Segment<'_>, observe: impl FnMut(&PipelineEvent)) {
        self.monitor.on_segment(segment, observe);
        self.write_queued();
    }
    fn on_tick(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        self.monitor.on_tick(now, observe);
        self.write_queued();
    }
    fn finish(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        self.monitor.finish(now, observe);
        self.write_queued();
    }
    fn poll_skip(&mut self) -> Option<SkipCommand> {
        self.monitor.poll_skip()
    }
}

/// Replay a capture file through the pipeline: exchanges by method, route and status, and
/// optionally one JSON line per exchange and the Prometheus metrics it would produce.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Capture file: pcap (µs or ns, either byte order) or pcapng; Ethernet, Linux cooked
    /// (SLL/SLL2), raw IP or BSD loopback frames.
    pub file: PathBuf,
    /// Write one JSON object per exchange to stdout (sizes, timings, status, route and the
    /// extracted fields; never a credential or body text). The summary then goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Write the Prometheus exposition the daemon would serve after this traffic to FILE.
    #[arg(long, value_name = "FILE")]
    pub metrics_out: Option<PathBuf>,
    /// Append the audit trail (one JSON line per model call made with a session JWT or cookie
    /// from a script; `[audit]`) to FILE, rotated by audit.max_file_bytes and
    /// audit.keep_files. The daemon's audit.output is not written by a replay.
    #[arg(long, value_name = "FILE")]
    pub audit_out: Option<PathBuf>,
    /// Ports, Open WebUI's database, limits: the daemon's configuration, so the replay
    /// attributes exactly as `run` would. The JWT secret comes from `WEBUI_SECRET_KEY` or
    /// `openwebui.webui_secret_file`; expiry is judged against the packets' timestamps.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Exchanges by method, then route label (as in `openwebui_http_requests_total`) and status.
/// Nested so that counting an exchange of a known method looks it up by `&str`, with no copy.
type Summary = BTreeMap<String, BTreeMap<(&'static str, Option<u16>), u64>>;

fn write_summary(
    out: &mut dyn Write,
    summary: &Summary,
    stats: &ReplayStats,
    pipeline: &Pipeline,
    secs: f64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<7} {:<45} {:>6} {:>8}",
        "METHOD", "ROUTE", "STATUS", "COUNT"
    )?;
    for (method, routes) in summary {
        for ((route, status), n) in routes {
            let status = status.map_or_else(|| "-".to_owned(), |s| s.to_string());
            writeln!(out, "{method:<7} {route:<45} {status:>6} {n:>8}")?;
        }
    }
    let c = pipeline.reassembly_counters();
    let skipped: u64 = stats.skipped.iter().sum();
    writeln!(
        out,
        "\n{} packets ({} skipped), {} segments, {} payload bytes; {} connections ({} mid-stream), \
         {} exchanges, {} WebSocket events; {} gaps ({} bytes), {} duplicate bytes; {:.3} s",
        stats.packets,
        skipped,
        stats.segments,
        stats.payload_bytes,
        c.connections_opened,
        c.connections_mid_stream,
        stats.exchanges,
        stats.socket_events,
        c.gaps,
        c.gap_bytes,
        c.duplicate_bytes,
        secs,
    )?;
    writeln!(
        out,
        "ring: {} bytes for {} payload bytes ({:.1} %), {} payload bytes skipped unread",
        stats.ring_bytes,
        stats.payload_bytes,
        100.0 * stats.ring_bytes as f64 / stats.payload_bytes.max(1) as f64,
        stats.skipped_bytes,
    )?;
    for reason in SkipReason::ALL {
        let n = stats.skipped[reason.index()];
        if n > 0 {
            writeln!(out, "  skipped {}: {n}", reason.as_str())?;
        }
    }
    Ok(())
}

/// `webui-monitor replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?.config;
    let _ = config.log.logger().try_init();
    let secret = config.load_webui_secret()?;
    let registry = prometheus::Registry::new();
    crate::server::register_build_info(&registry)?;
    let mut monitor = Monitor::new(&config.monitor_config()?, secret.as_ref(), &registry)?;
    if let Some(path) = &config.openwebui.db {
        let directory = db::load(path).with_context(|| {
            format!(
                "reading Open WebUI's database {} (openwebui.db)",
                path.display()
            )
        })?;
        monitor.set_directory(Some(std::sync::Arc::new(directory)));
    }
    let file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };

    let stdout = std::io::stdout();
    let mut json_out = args.json.then(|| BufWriter::new(stdout.lock()));
    let mut json_error: Option<std::io::Error> = None;
    let mut summary = Summary::new();
    let started = Instant::now();
    let audit_out = match &args.audit_out {
        Some(path) => Some(
            RotatingFile::open(path, config.audit.max_file_bytes, config.audit.keep_files)
                .with_context(|| format!("opening {} (--audit-out)", path.display()))?,
        ),
        None => None,
    };
    // Without --audit-out no event is written: the monitor only counts them.
    monitor.keep_audit_events(audit_out.is_some());
    let mut target = Auditing {
        monitor: &mut monitor,
        out: audit_out,
        error: None,
    };
    let stats = replay_into(
        BufReader::with_capacity(1 << 20, file),
        &config.capture.ports,
        &mut target,
        |event| {
            if let PipelineEvent::Exchange(e) = event {
                let routes = match summary.get_mut(e.method.as_str()) {
                    Some(routes) => routes,
                    None => summary.entry(e.method.clone()).or_default(),
                };
                *routes.entry((route(&e.path), e.status)).or_default() += 1;
                if let Some(out) = json_out.as_mut()
                    && json_error.is_none()
                {
                    let line = exchange_json(e).to_string();
                    if let Err(err) = writeln!(out, "{line}") {
                        json_error = Some(err);
                    }
                }
            }
        },
        |bytes| {
            if let Some(bar) = &progress {
                bar.set_position(bytes);
            }
        },
    )
    .with_context(|| format!("replaying {}", args.file.display()))?;
    if let Some(err) = target.error {
        return Err(err).context("writing the audit trail (--audit-out)");
    }
    monitor
        .stream_metrics()
        .update_pcap(stats.packets, &stats.skipped);
    let secs = started.elapsed().as_secs_f64();
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if let Some(err) = json_error {
        return Err(err).context("writing JSON lines");
    }
    if let Some(mut out) = json_out {
        out.flush().context("writing JSON lines")?;
    }

    let pipeline = monitor.pipeline();
    if let Some(path) = &args.metrics_out {
        let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather())?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }

    if args.json {
        write_summary(
            &mut std::io::stderr().lock(),
            &summary,
            &stats,
            pipeline,
            secs,
        )?;
    } else {
        write_summary(
            &mut std::io::stdout().lock(),
            &summary,
            &stats,
            pipeline,
            secs,
        )?;
    }
    Ok(())
}
