//! `webui_monitor_reassembly_*`, `webui_monitor_http_*` parse counters and
//! `webui_monitor_pcap_*`: what the stream engine saw, cut and lost.
//!
//! The engine keeps plain integer counters (sans-IO, no Prometheus in the hot path);
//! [`StreamMetrics::update`] copies them into the registry, e.g. before each scrape.
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::util::{advance, counter, counter_vec, gauge, set_count};
use crate::{
    http::HttpCounters,
    memory::Holder,
    pcap::SkipReason,
    pipeline::Pipeline,
    reassembly::{CapKind, CloseReason, TrustCounters},
};

/// Families of the stream engine.
#[derive(Debug, Clone)]
pub struct StreamMetrics {
    gaps: IntCounter,
    gap_bytes: IntCounter,
    capture_loss_gaps: IntCounter,
    out_of_order_segments: IntCounter,
    out_of_order_bytes: IntCounter,
    duplicate_segments: IntCounter,
    duplicate_bytes: IntCounter,
    cap_hits: IntCounterVec,
    connections_opened: IntCounter,
    connections_mid_stream: IntCounter,
    connections_closed: IntCounterVec,
    segments_ignored: IntCounter,
    bytes_before_start: IntCounter,
    skipped_bytes: IntCounter,
    skipped_bytes_arrived: IntCounter,
    connections_active: IntGauge,
    connections_unconfirmed: IntGauge,
    trust_events: IntCounterVec,
    buffered_bytes: IntGauge,
    memory_held: IntGaugeVec,
    memory_refused: IntCounterVec,
    http_events: IntCounterVec,
    pcap_packets: IntCounter,
    pcap_skipped: IntCounterVec,
}

/// The HTTP engine's counters as (label value, total). Owned by the HTTP engine: list every
/// field of [`HttpCounters`] here.
fn http_counter_values(c: &HttpCounters) -> impl Iterator<Item = (&'static str, u64)> {
    // Destructured without `..`: a new counter does not compile until it is exported here.
    let HttpCounters {
        malformed_messages,
        headers_too_large,
        too_many_headers,
        chunked_errors,
        resync_skipped_bytes,
        body_gaps,
        stream_gaps,
        decode_errors,
        decode_capped,
        decode_over_budget,
        decode_memory_refused,
        request_bodies_unread,
        bodies_skipped,
        json_truncated,
        paths_truncated,
        interim_responses,
        orphan_responses,
        held_bytes_dropped,
        missing_responses,
        upgrades,
        tunnels,
        lost_messages,
        ignored_bytes,
    } = c;
    [
        ("malformed_messages", *malformed_messages),
        ("headers_too_large", *headers_too_large),
        ("too_many_headers", *too_many_headers),
        ("chunked_errors", *chunked_errors),
        ("resync_skipped_bytes", *resync_skipped_bytes),
        ("body_gaps", *body_gaps),
        ("stream_gaps", *stream_gaps),
        ("decode_errors", *decode_errors),
        ("decode_capped", *decode_capped),
        ("decode_over_budget", *decode_over_budget),
        ("decode_memory_refused", *decode_memory_refused),
        ("request_bodies_unread", *request_bodies_unread),
        ("bodies_skipped", *bodies_skipped),
        ("json_truncated", *json_truncated),
        ("paths_truncated", *paths_truncated),
        ("interim_responses", *interim_responses),
        ("orphan_responses", *orphan_responses),
        ("held_bytes_dropped", *held_bytes_dropped),
        ("missing_responses", *missing_responses),
        ("upgrades", *upgrades),
        ("tunnels", *tunnels),
        ("lost_messages", *lost_messages),
        ("ignored_bytes", *ignored_bytes),
    ]
    .into_iter()
}

const CLOSE_REASONS: [(CloseReason, &str); 6] = [
    (CloseReason::Fin, "fin"),
    (CloseReason::Rst, "rst"),
    (CloseReason::Idle, "idle"),
    (CloseReason::Evicted, "evicted"),
    (CloseReason::Reused, "reused"),
    (CloseReason::Finish, "end_of_input"),
];

/// `trust_events` label of the HTTP exchanges of never-confirmed connections, which the
/// pipeline drops (counted there, not in the reassembler).
const UNCONFIRMED_EXCHANGES: &str = "unconfirmed_exchanges";

impl StreamMetrics {
    /// Registers the families, with every label value exported at zero.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            gaps: counter(
                registry,
                "webui_monitor_reassembly_gaps_total",
                "Holes in TCP streams declared lost (cap, timeout or close); parsers resynchronise after each.",
            )?,
            gap_bytes: counter(
                registry,
                "webui_monitor_reassembly_gap_bytes_total",
                "Bytes skipped in those holes.",
            )?,
            capture_loss_gaps: counter(
                registry,
                "webui_monitor_reassembly_capture_loss_gaps_total",
                "Of the holes, those declared lost at once because the kernel capture said it dropped bytes of that direction (full ring, cut segment) before the record after them.",
            )?,
            out_of_order_segments: counter(
                registry,
                "webui_monitor_reassembly_out_of_order_segments_total",
                "Segments that arrived ahead of a hole and were buffered.",
            )?,
            out_of_order_bytes: counter(
                registry,
                "webui_monitor_reassembly_out_of_order_bytes_total",
                "Bytes buffered ahead of a hole.",
            )?,
            duplicate_segments: counter(
                registry,
                "webui_monitor_reassembly_duplicate_segments_total",
                "Segments carrying bytes seen before (retransmissions, overlaps).",
            )?,
            duplicate_bytes: counter(
                registry,
                "webui_monitor_reassembly_duplicate_bytes_total",
                "Bytes dropped because an earlier copy existed (first copy wins).",
            )?,
            cap_hits: counter_vec(
                registry,
                "webui_monitor_reassembly_cap_hits_total",
                "Times a reassembly cap cut something, by cap.",
                &["cap"],
            )?,
            connections_opened: counter(
                registry,
                "webui_monitor_reassembly_connections_opened_total",
                "TCP connections tracked by reassembly.",
            )?,
            connections_mid_stream: counter(
                registry,
                "webui_monitor_reassembly_connections_mid_stream_total",
                "Connections joined without their SYN (mid-stream pickup).",
            )?,
            connections_closed: counter_vec(
                registry,
                "webui_monitor_reassembly_connections_closed_total",
                "Connections closed, by reason (evicted: table full; idle: expired).",
                &["reason"],
            )?,
            segments_ignored: counter(
                registry,
                "webui_monitor_reassembly_segments_ignored_total",
                "Segments of no tracked connection (payload-less, or after close).",
            )?,
            bytes_before_start: counter(
                registry,
                "webui_monitor_reassembly_bytes_before_start_total",
                "Payload bytes before the start of a mid-stream connection, dropped.",
            )?,
            skipped_bytes: counter(
                registry,
                "webui_monitor_reassembly_skipped_bytes_total",
                "Bytes of bodies nothing reads, skipped on purpose (capture.skip_min_bytes): \
                 the capture is asked not to copy them.",
            )?,
            skipped_bytes_arrived: counter(
                registry,
                "webui_monitor_reassembly_skipped_bytes_arrived_total",
                "Of the skipped bytes, those the capture had copied before it was asked not to \
                 (dropped on arrival).",
            )?,
            connections_active: gauge(
                registry,
                "webui_monitor_reassembly_connections_active",
                "Connections currently tracked.",
            )?,
            connections_unconfirmed: gauge(
                registry,
                "webui_monitor_reassembly_connections_unconfirmed",
                "Connections currently tracked that are neither established (handshake seen) \
                 nor confirmed by both directions; evicted first when the table is full.",
            )?,
            trust_events: counter_vec(
                registry,
                "webui_monitor_reassembly_trust_events_total",
                "What the rules against forged segments decided, by event (a field of \
                 TrustCounters: handshakes, confirmed, out_of_window_segments, \
                 rst_out_of_window, conflicting_segments, ...; unconfirmed_exchanges: HTTP \
                 exchanges of never-confirmed connections, not reported).",
                &["event"],
            )?,
            buffered_bytes: gauge(
                registry,
                "webui_monitor_reassembly_buffered_bytes",
                "Bytes currently held back waiting for holes to fill.",
            )?,
            memory_held: super::util::register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "webui_monitor_memory_held_bytes",
                        "Bytes held under the pipeline's memory budget (memory.max_held_bytes), by holder: http_decoder (decompression windows), websocket_message (messages being assembled). Reassembly's buffers are webui_monitor_reassembly_buffered_bytes.",
                    ),
                    &["holder"],
                )?,
            )?,
            memory_refused: counter_vec(
                registry,
                "webui_monitor_memory_refused_total",
                "Requests for memory the budget refused, by holder: a compressed body not decoded, a WebSocket message cut.",
                &["holder"],
            )?,
            http_events: counter_vec(
                registry,
                "webui_monitor_http_parse_events_total",
                "What the HTTP engine rejected, cut or skipped, by event (a field of HttpCounters).",
                &["event"],
            )?,
            pcap_packets: counter(
                registry,
                "webui_monitor_pcap_packets_total",
                "Packets read from capture files (replay).",
            )?,
            pcap_skipped: counter_vec(
                registry,
                "webui_monitor_pcap_packets_skipped_total",
                "Packets of capture files that yielded no segment, by reason.",
                &["reason"],
            )?,
        };
        // Export every label value from the start, so that rates and alerts see zeros.
        for cap in CapKind::ALL {
            m.cap_hits.with_label_values(&[cap.as_str()]);
        }
        for (_, reason) in CLOSE_REASONS {
            m.connections_closed.with_label_values(&[reason]);
        }
        for (event, _) in TrustCounters::default().values() {
            m.trust_events.with_label_values(&[event]);
        }
        m.trust_events.with_label_values(&[UNCONFIRMED_EXCHANGES]);
        for reason in SkipReason::ALL {
            m.pcap_skipped.with_label_values(&[reason.as_str()]);
        }
        for (event, _) in http_counter_values(&HttpCounters::default()) {
            m.http_events.with_label_values(&[event]);
        }
        for holder in Holder::ALL {
            m.memory_held.with_label_values(&[holder.as_str()]);
            m.memory_refused.with_label_values(&[holder.as_str()]);
        }
        Ok(m)
    }

    /// Copies the pipeline's counters and gauges into the registry.
    pub fn update(&self, pipeline: &Pipeline) {
        let c = pipeline.reassembly_counters();
        advance(&self.gaps, c.gaps);
        advance(&self.gap_bytes, c.gap_bytes);
        advance(&self.capture_loss_gaps, c.capture_loss_gaps);
        advance(&self.out_of_order_segments, c.out_of_order_segments);
        advance(&self.out_of_order_bytes, c.out_of_order_bytes);
        advance(&self.duplicate_segments, c.duplicate_segments);
        advance(&self.duplicate_bytes, c.duplicate_bytes);
        for cap in CapKind::ALL {
            advance(
                &self.cap_hits.with_label_values(&[cap.as_str()]),
                c.cap_hits(cap),
            );
        }
        advance(&self.connections_opened, c.connections_opened);
        advance(&self.connections_mid_stream, c.connections_mid_stream);
        for (reason, label) in CLOSE_REASONS {
            let total = match reason {
                CloseReason::Fin => c.connections_closed_fin,
                CloseReason::Rst => c.connections_closed_rst,
                CloseReason::Idle => c.connections_expired,
                CloseReason::Evicted => c.connections_evicted,
                CloseReason::Reused => c.connections_reused,
                CloseReason::Finish => c.connections_finished,
            };
            advance(&self.connections_closed.with_label_values(&[label]), total);
        }
        advance(&self.segments_ignored, c.segments_ignored);
        advance(&self.bytes_before_start, c.bytes_before_start);
        advance(&self.skipped_bytes, c.skipped_bytes);
        advance(&self.skipped_bytes_arrived, c.skipped_bytes_arrived);
        set_count(&self.connections_active, pipeline.active_connections());
        set_count(
            &self.connections_unconfirmed,
            pipeline.unconfirmed_connections(),
        );
        for (event, total) in c.trust.values() {
            advance(&self.trust_events.with_label_values(&[event]), total);
        }
        advance(
            &self
                .trust_events
                .with_label_values(&[UNCONFIRMED_EXCHANGES]),
            pipeline.unconfirmed_exchanges(),
        );
        set_count(&self.buffered_bytes, pipeline.buffered_bytes());
        let memory = pipeline.memory();
        for holder in Holder::ALL {
            let label = [holder.as_str()];
            let held = i64::try_from(memory.held(holder)).unwrap_or(i64::MAX);
            self.memory_held.with_label_values(&label).set(held);
            advance(
                &self.memory_refused.with_label_values(&label),
                memory.refused(holder),
            );
        }
        for (event, total) in http_counter_values(pipeline.http_counters()) {
            advance(&self.http_events.with_label_values(&[event]), total);
        }
    }

    /// Copies the capture-file totals of a replay: packets read and, per [`SkipReason::index`],
    /// packets that yielded no segment.
    pub fn update_pcap(&self, packets: u64, skipped: &[u64; SkipReason::ALL.len()]) {
        advance(&self.pcap_packets, packets);
        for reason in SkipReason::ALL {
            advance(
                &self.pcap_skipped.with_label_values(&[reason.as_str()]),
                skipped[reason.index()],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_exports_zeros() {
        let registry = Registry::new();
        let m = StreamMetrics::register(&registry).expect("register");
        m.update(&Pipeline::default());
        let mut skipped = [0; SkipReason::ALL.len()];
        skipped[SkipReason::NotTcp.index()] = 1;
        m.update_pcap(3, &skipped);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        assert!(
            text.contains("webui_monitor_reassembly_cap_hits_total{cap=\"connection_bytes\"} 0")
        );
        assert!(
            text.contains(
                "webui_monitor_reassembly_connections_closed_total{reason=\"evicted\"} 0"
            )
        );
        assert!(text.contains("webui_monitor_pcap_packets_skipped_total{reason=\"not_tcp\"} 1"));
        assert!(text.contains("webui_monitor_reassembly_connections_active 0"));
        assert!(text.contains("webui_monitor_reassembly_connections_unconfirmed 0"));
        for (event, _) in TrustCounters::default().values() {
            let line =
                format!("webui_monitor_reassembly_trust_events_total{{event=\"{event}\"}} 0");
            assert!(text.contains(&line), "{line}");
        }
        assert!(text.contains(
            "webui_monitor_reassembly_trust_events_total{event=\"unconfirmed_exchanges\"} 0"
        ));
        assert!(text.contains("webui_monitor_pcap_packets_total 3"));
        assert!(
            text.contains("webui_monitor_http_parse_events_total{event=\"malformed_messages\"} 0")
        );
        // Registering twice in one registry is an error, not a panic.
        assert!(StreamMetrics::register(&registry).is_err());
    }
}
