//! A capture file through the monitor: the same [`Monitor`] the daemon runs, fed from a pcap or
//! pcapng file instead of the kernel.
//!
//! Packets are read in file order; their timestamps are the monitor's clock (idle expiry, hole
//! timeouts, JWT expiry downstream), so a replay gives the same answers whenever it runs.
//! [`replay_capture`] is what `webui-monitor replay`, the fixture tests and the benchmarks use;
//! [`replay_into`] drives any [`ReplayTarget`], e.g. the bare [`PipelineOnly`] baseline.
//! [`exchange_json`] is the `--json` line of an exchange.
use std::io::Read;

use crate::{
    capture_model::{self, SkipFilter},
    http::{
        Exchange,
        exchange::{MessageStats, StreamSummary},
    },
    monitor::Monitor,
    openwebui::route,
    pcap::{CaptureReader, Dissector, PcapError, PcapLimits, SkipReason},
    pipeline::{Pipeline, PipelineConfig, PipelineEvent, SkipCommand},
    segment::{Segment, Timestamp},
};

/// Why a replay stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file does not start like a capture.
    #[error("reading the capture header")]
    Header(#[source] PcapError),
    /// The file cannot be read past its `packets`-th packet.
    #[error("after packet {packets}")]
    Packet {
        packets: u64,
        #[source]
        source: PcapError,
    },
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
    /// Ring bytes the kernel's records of those segments would take (see
    /// [`capture_model::ring_bytes`]), after the skips the monitor asked for.
    pub ring_bytes: u64,
    /// Payload bytes the capture left out because the monitor skipped them.
    pub skipped_bytes: u64,
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
    /// The next command for the capture (see [`Monitor::poll_skip`]).
    fn poll_skip(&mut self) -> Option<SkipCommand>;
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
    fn poll_skip(&mut self) -> Option<SkipCommand> {
        Monitor::poll_skip(self)
    }
}

/// Reassembly, HTTP and WebSocket decoding without attribution or metrics: events are shown to
/// the observer and dropped. The baseline the attribution benchmarks measure the [`Monitor`]
/// against.
pub struct PipelineOnly {
    pub pipeline: Pipeline,
    events: Vec<PipelineEvent>,
}

impl PipelineOnly {
    /// The pipeline a [`Monitor`] builds from the same `config`.
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
    fn poll_skip(&mut self) -> Option<SkipCommand> {
        self.pipeline.poll_skip()
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
) -> Result<ReplayStats, ReplayError> {
    let stats = replay_into(input, ports, monitor, on_event, on_progress)?;
    monitor
        .stream_metrics()
        .update_pcap(stats.packets, &stats.skipped);
    Ok(stats)
}

/// [`replay_capture`] for any [`ReplayTarget`], without the capture-level metrics.
///
/// Segments pass the kernel capture's model first ([`SkipFilter`]): bytes the target asks to
/// skip ([`ReplayTarget::poll_skip`], polled after every call) are left out as the kernel
/// would leave them out, and the ring bytes of what remains are counted.
pub fn replay_into<R: Read, T: ReplayTarget>(
    input: R,
    ports: &[u16],
    target: &mut T,
    mut on_event: impl FnMut(&PipelineEvent),
    mut on_progress: impl FnMut(u64),
) -> Result<ReplayStats, ReplayError> {
    let mut reader =
        CaptureReader::new(input, PcapLimits::default()).map_err(ReplayError::Header)?;
    let dissector = Dissector::new(ports.iter().copied());
    let mut stats = ReplayStats::default();
    let mut filter = SkipFilter::default();
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
            Err(source) => {
                return Err(ReplayError::Packet {
                    packets: stats.packets,
                    source,
                });
            }
        };
        stats.packets += 1;
        let ts = packet.timestamp;
        stats.first_ts.get_or_insert(ts);
        stats.last_ts = Some(stats.last_ts.map_or(ts, |t| t.max(ts)));
        if ts.as_nanos() >= next_tick {
            target.on_tick(ts, |e| count(e, &mut stats));
            next_tick = ts.as_nanos().saturating_add(TICK_NANOS);
            apply_skips(target, &mut filter);
        }
        match dissector.dissect(packet.link_type, ts, packet.data) {
            Ok(segment) => {
                stats.segments += 1;
                stats.payload_bytes += segment.payload.len() as u64;
                if let Some(segment) = filter.filter(&segment) {
                    stats.ring_bytes += capture_model::ring_bytes(&segment);
                    target.on_segment(&segment, |e| count(e, &mut stats));
                    apply_skips(target, &mut filter);
                }
            }
            Err(reason) => stats.skipped[reason.index()] += 1,
        }
        if stats.packets % 4096 == 0 {
            on_progress(reader.bytes_read());
        }
    }
    on_progress(reader.bytes_read());
    target.finish(stats.last_ts.unwrap_or_default(), |e| count(e, &mut stats));
    apply_skips(target, &mut filter);
    stats.skipped_bytes = filter.skipped_bytes;
    Ok(stats)
}

fn apply_skips<T: ReplayTarget>(target: &mut T, filter: &mut SkipFilter) {
    while let Some(command) = target.poll_skip() {
        filter.apply(command);
    }
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
    let stats = |m: &MessageStats| {
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
        "request_content_type": h.content_type(),
        "response_content_type": e.response_headers.content_type(),
        "response_content_encoding": e.response_headers.content_encoding(),
        "user_agent": h.user_agent(),
        "credentials_present": {
            "authorization": h.authorization().is_some(),
            "cookie_token": h.cookie_token().is_some(),
            "api_key_header": h.api_key_header().is_some(),
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
                "input": u.input,
                "output": u.output,
                "cached_input": u.cached_input,
                "reasoning": u.reasoning,
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
