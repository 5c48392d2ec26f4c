//! `webui-monitor replay FILE`: the live pipeline, driven by a capture file.
//!
//! Packets are read in file order; their timestamps are the pipeline's clock (idle expiry, hole
//! timeouts, JWT expiry downstream), so a replay gives the same answers whenever it runs.
//! [`replay_capture`] is the reusable core (tests, benchmarks, and the Open WebUI layer hook in
//! through its event callback); [`run`] adds the command-line surface: progress bar, JSON lines,
//! summary, metrics file.
use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufReader, BufWriter, IsTerminal, Read, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    config::{self, ConfigArgs},
    http::{Exchange, exchange::StreamSummary},
    monitor::Monitor,
    db,
    openwebui::route,
    pcap::{CaptureReader, Dissector, PcapLimits, SkipReason},
    pipeline::{Pipeline, PipelineConfig, PipelineEvent},
    segment::{Segment, Timestamp},
};

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
    /// Ports, Open WebUI's database, limits: the daemon's configuration, so the replay
    /// attributes exactly as `run` would. The JWT secret comes from `WEBUI_SECRET_KEY` or
    /// `openwebui.webui_secret_file`; expiry is judged against the packets' timestamps.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Totals of one replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub packets: u64,
    pub segments: u64,
    /// TCP payload bytes of the monitored connections, retransmissions included.
    pub payload_bytes: u64,
    /// Packets that yielded no segment, indexed by [`SkipReason::index`].
    pub skipped: [u64; SkipReason::ALL.len()],
    pub exchanges: u64,
    pub socket_events: u64,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
}

/// Traffic-time interval between pipeline ticks (idle expiry, hole timeouts).
const TICK_NANOS: u64 = 1_000_000_000;

/// What a replay drives: the whole [`Monitor`] (what `replay` and the daemon run), or the bare
/// [`PipelineOnly`] baseline that benchmarks measure attribution against.
pub trait ReplayTarget {
    /// One TCP segment; `observe` sees every event it yields.
    fn on_segment(&mut self, segment: &Segment<'_>, observe: impl FnMut(&PipelineEvent));
    /// Traffic time advanced to `now`.
    fn on_tick(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent));
    /// End of input at `now`.
    fn finish(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent));
}

impl ReplayTarget for Monitor {
    fn on_segment(&mut self, segment: &Segment<'_>, observe: impl FnMut(&PipelineEvent)) {
        Monitor::on_segment(self, segment, observe);
    }
    fn on_tick(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        Monitor::on_tick(self, now, observe);
    }
    fn finish(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        Monitor::finish(self, now, observe);
    }
}

/// Reassembly, HTTP and WebSocket decoding without attribution or metrics: events are shown to
/// the observer and dropped. The baseline of the attribution benchmarks
/// (`benches/replay.rs`, `examples/bench_attribution.rs`).
pub struct PipelineOnly {
    pub pipeline: Pipeline,
    events: Vec<PipelineEvent>,
}

impl PipelineOnly {
    /// The pipeline [`Monitor::new`] builds from `config`'s `pipeline`.
    pub fn new(config: PipelineConfig) -> Self {
        Self {
            pipeline: Pipeline::new(config),
            events: Vec::new(),
        }
    }

    fn drain(&mut self, mut observe: impl FnMut(&PipelineEvent)) {
        for event in self.events.drain(..) {
            observe(&event);
        }
    }
}

impl ReplayTarget for PipelineOnly {
    fn on_segment(&mut self, segment: &Segment<'_>, observe: impl FnMut(&PipelineEvent)) {
        self.pipeline.on_segment(segment, &mut self.events);
        self.drain(observe);
    }
    fn on_tick(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        self.pipeline.on_tick(now, &mut self.events);
        self.drain(observe);
    }
    fn finish(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        self.pipeline.finish(now, &mut self.events);
        self.drain(observe);
    }
}

/// Runs `monitor` over every packet of `input` (segments of `ports`), calling `on_event` for
/// each event and `on_progress` with the bytes read so far (every few thousand packets), then
/// finishes it at the last packet's time. Returns the replay's totals.
pub fn replay_capture<R: Read>(
    input: R,
    ports: &[u16],
    monitor: &mut Monitor,
    on_event: impl FnMut(&PipelineEvent),
    on_progress: impl FnMut(u64),
) -> anyhow::Result<ReplayStats> {
    let stats = replay_into(input, ports, monitor, on_event, on_progress)?;
    monitor
        .stream_metrics()
        .update_pcap(stats.packets, &stats.skipped);
    Ok(stats)
}

/// [`replay_capture`] for any [`ReplayTarget`], without the capture-level metrics.
pub fn replay_into<R: Read, T: ReplayTarget>(
    input: R,
    ports: &[u16],
    target: &mut T,
    mut on_event: impl FnMut(&PipelineEvent),
    mut on_progress: impl FnMut(u64),
) -> anyhow::Result<ReplayStats> {
    let mut reader =
        CaptureReader::new(input, PcapLimits::default()).context("reading the capture header")?;
    let dissector = Dissector::new(ports.iter().copied());
    let mut stats = ReplayStats::default();
    let mut next_tick = 0u64;
    let mut count = |event: &PipelineEvent, stats: &mut ReplayStats| {
        match event {
            PipelineEvent::Exchange(_) => stats.exchanges += 1,
            PipelineEvent::Socket { .. } => stats.socket_events += 1,
        }
        on_event(event);
    };
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                return Err(e).with_context(|| format!("after packet {}", stats.packets));
            }
        };
        stats.packets += 1;
        let ts = packet.timestamp;
        stats.first_ts.get_or_insert(ts);
        stats.last_ts = Some(stats.last_ts.map_or(ts, |t| t.max(ts)));
        if ts.as_nanos() >= next_tick {
            target.on_tick(ts, |e| count(e, &mut stats));
            next_tick = ts.as_nanos().saturating_add(TICK_NANOS);
        }
        match dissector.dissect(packet.link_type, ts, packet.data) {
            Ok(segment) => {
                stats.segments += 1;
                stats.payload_bytes += segment.payload.len() as u64;
                target.on_segment(&segment, |e| count(e, &mut stats));
            }
            Err(reason) => stats.skipped[reason.index()] += 1,
        }
        if stats.packets % 4096 == 0 {
            on_progress(reader.bytes_read());
        }
    }
    on_progress(reader.bytes_read());
    target.finish(stats.last_ts.unwrap_or_default(), |e| count(e, &mut stats));
    Ok(stats)
}

/// Open WebUI route template of a path: UUID and all-digit segments become `{id}`.
pub fn path_template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_uuid(segment) || (!segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()))
        {
            out.push_str("{id}");
        } else {
            out.push_str(segment);
        }
    }
    out
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// One exchange as a JSON line: sizes, timings, route, status, extracted fields, which
/// credentials were *present* — never their values, never body text, never the query string.
pub fn exchange_json(e: &Exchange) -> serde_json::Value {
    use serde_json::json;
    let template = path_template(&e.path);
    let stats = |m: &crate::http::exchange::MessageStats| {
        json!({
            "header_bytes": m.header_bytes,
            "body_wire_bytes": m.body_wire_bytes,
            "body_bytes": m.body_bytes,
            "body_decoded_bytes": m.body_decoded_bytes,
            "chunked": m.chunked,
            "chunks": m.chunks,
            "first_byte": m.first_byte.as_secs_f64(),
            "last_byte": m.last_byte.as_secs_f64(),
            "complete": m.complete,
        })
    };
    let rf = &e.request_fields;
    let sf = &e.response_fields;
    let h = &e.request_headers;
    json!({
        "client": e.connection.client.to_string(),
        "server": e.connection.server.to_string(),
        "sequence": e.sequence,
        "method": e.method,
        "path_template": template,
        "route_group": route::route(&e.path),
        "has_query": e.has_query,
        "status": e.status,
        "upgraded": e.upgraded,
        "request": stats(&e.request),
        "response": e.response.as_ref().map(stats),
        "request_content_type": h.content_type,
        "response_content_type": e.response_headers.content_type,
        "response_content_encoding": e.response_headers.content_encoding,
        "user_agent": h.user_agent,
        "credentials_present": {
            "authorization": h.authorization.is_some(),
            "cookie_token": h.cookie_token.is_some(),
            "api_key_header": h.api_key_header.is_some(),
        },
        "request_fields": {
            "json": rf.json,
            "model": rf.model,
            "stream": rf.stream,
            "has_session_id": rf.session_id.as_ref().is_some_and(Option::is_some),
            "has_chat_id": rf.chat_id.as_ref().is_some_and(Option::is_some),
            "has_messages": rf.has_messages,
        },
        "response_fields": {
            "json": sf.json,
            "usage": sf.usage.map(|u| json!({
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
            })),
            "has_task_ids": sf.has_task_ids,
            "sse": sf.sse.as_ref().map(stream_json),
            "ndjson": sf.ndjson.as_ref().map(stream_json),
        },
        "anomalies": e.anomalies.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
    })
}

fn stream_json(s: &StreamSummary) -> serde_json::Value {
    serde_json::json!({
        "events": s.events,
        "done": s.done,
        "first_event": s.first_event.map(Timestamp::as_secs_f64),
        "last_event": s.last_event.map(Timestamp::as_secs_f64),
    })
}

/// Exchanges by method, route label (as in `openwebui_http_requests_total`) and status.
type Summary = BTreeMap<(String, &'static str, Option<u16>), u64>;

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
    for ((method, route, status), n) in summary {
        let status = status.map_or_else(|| "-".to_owned(), |s| s.to_string());
        writeln!(out, "{method:<7} {route:<45} {status:>6} {n:>8}")?;
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
    let mut monitor = Monitor::new(&config.monitor_config(), secret.as_ref(), &registry)?;
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
    let stats = replay_capture(
        BufReader::with_capacity(1 << 20, file),
        &config.capture.ports,
        &mut monitor,
        |event| {
            if let PipelineEvent::Exchange(e) = event {
                *summary
                    .entry((e.method.clone(), route::route(&e.path), e.status))
                    .or_default() += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_groups() {
        assert_eq!(
            path_template("/api/v1/chats/35ae9654-1c0a-4a3e-9f7b-0123456789ab"),
            "/api/v1/chats/{id}"
        );
        assert_eq!(path_template("/api/v1/x/12/y"), "/api/v1/x/{id}/y");
        assert_eq!(path_template("/api/v1/chats/"), "/api/v1/chats/");
        assert_eq!(route::route("/_app/immutable/chunks/a.js"), "/_app/*");
        assert_eq!(route::route("/api/config"), "/api/config");
    }
}
