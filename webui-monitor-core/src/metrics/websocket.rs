//! `webui_monitor_websocket_*`: how the WebSocket decoder fares (connections, frames, messages
//! and bytes per direction, undecodable connections and why, caps hit). Exported from the
//! cumulative [`WebSocketCounters`] of `WebSocketShared`.
use prometheus::{IntCounter, IntCounterVec, Registry};

use super::util::{advance, counter, counter_vec};
use crate::{segment::Direction, websocket::WebSocketCounters};

/// Label values of `webui_monitor_websocket_caps_hit_total{cap}` (see `WebSocketLimits`).
pub const CAPS: [&str; 6] = [
    "frame_bytes",
    "message_bytes",
    "inflated_bytes",
    "token_bytes",
    "id_bytes",
    "tracked_messages",
];

/// The WebSocket decoder's metric families.
#[derive(Debug, Clone)]
pub struct WebSocketMetrics {
    connections: IntCounter,
    undecodable_connections: IntCounter,
    frames: IntCounterVec,
    compressed_frames: IntCounterVec,
    messages: IntCounterVec,
    wire_bytes: IntCounterVec,
    inflate_errors: IntCounter,
    protocol_errors: IntCounter,
    extension_errors: IntCounter,
    gaps: IntCounterVec,
    caps_hit: IntCounterVec,
    packet_errors: IntCounterVec,
    binary_messages_skipped: IntCounter,
}

impl WebSocketMetrics {
    /// Registers the families, with every direction, cap, gap outcome and error layer at zero.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            connections: counter(
                registry,
                "webui_monitor_websocket_connections_total",
                "Upgraded WebSocket connections decoded.",
            )?,
            undecodable_connections: counter(
                registry,
                "webui_monitor_websocket_undecodable_connections_total",
                "WebSocket connections given up (gap in compressed data, protocol or inflate error, bad extension header, cap).",
            )?,
            frames: counter_vec(
                registry,
                "webui_monitor_websocket_frames_total",
                "WebSocket frames by direction.",
                &["direction"],
            )?,
            compressed_frames: counter_vec(
                registry,
                "webui_monitor_websocket_compressed_frames_total",
                "WebSocket frames starting a permessage-deflate compressed message, by direction.",
                &["direction"],
            )?,
            messages: counter_vec(
                registry,
                "webui_monitor_websocket_messages_total",
                "Complete WebSocket data messages by direction.",
                &["direction"],
            )?,
            wire_bytes: counter_vec(
                registry,
                "webui_monitor_websocket_wire_bytes_total",
                "Bytes of upgraded connections after the 101 response, by direction.",
                &["direction"],
            )?,
            inflate_errors: counter(
                registry,
                "webui_monitor_websocket_inflate_errors_total",
                "permessage-deflate data that could not be inflated.",
            )?,
            protocol_errors: counter(
                registry,
                "webui_monitor_websocket_protocol_errors_total",
                "RFC 6455 framing violations (reserved bits/opcodes, bad fragmentation).",
            )?,
            extension_errors: counter(
                registry,
                "webui_monitor_websocket_extension_errors_total",
                "101 responses whose Sec-WebSocket-Extensions could not be parsed.",
            )?,
            gaps: counter_vec(
                registry,
                "webui_monitor_websocket_gaps_total",
                "Capture gaps in WebSocket streams: skipped inside an uncompressed payload, or fatal.",
                &["outcome"],
            )?,
            caps_hit: counter_vec(
                registry,
                "webui_monitor_websocket_caps_hit_total",
                "WebSocket decoder limits reached, by cap.",
                &["cap"],
            )?,
            packet_errors: counter_vec(
                registry,
                "webui_monitor_websocket_packet_errors_total",
                "Messages that are not valid Engine.IO/Socket.IO packets, or Open WebUI events that are not the expected JSON.",
                &["layer"],
            )?,
            binary_messages_skipped: counter(
                registry,
                "webui_monitor_websocket_binary_messages_skipped_total",
                "Socket.IO binary events and attachments, counted but not decoded.",
            )?,
        };
        // Pre-create labelled series so that dashboards see zeros rather than nothing.
        for d in Direction::ALL {
            for vec in [
                &metrics.frames,
                &metrics.compressed_frames,
                &metrics.messages,
                &metrics.wire_bytes,
            ] {
                vec.with_label_values(&[d.as_str()]);
            }
        }
        for cap in CAPS {
            metrics.caps_hit.with_label_values(&[cap]);
        }
        for outcome in ["skipped", "fatal"] {
            metrics.gaps.with_label_values(&[outcome]);
        }
        for layer in ["socketio", "json"] {
            metrics.packet_errors.with_label_values(&[layer]);
        }
        Ok(metrics)
    }

    /// Brings the exported counters up to `counters` (the cumulative totals of
    /// `WebSocketShared::counters`).
    pub fn update(&self, counters: &WebSocketCounters) {
        let c = counters;
        advance(&self.connections, c.connections);
        advance(&self.undecodable_connections, c.undecodable_connections);
        advance(&self.inflate_errors, c.inflate_errors);
        advance(&self.protocol_errors, c.protocol_errors);
        advance(&self.extension_errors, c.extension_errors);
        advance(&self.binary_messages_skipped, c.binary_messages_skipped);
        let advance_vec = |family: &IntCounterVec, label: &str, total: u64| {
            advance(&family.with_label_values(&[label]), total);
        };
        for d in Direction::ALL {
            let (i, l) = (d.index(), d.as_str());
            advance_vec(&self.frames, l, c.frames[i]);
            advance_vec(&self.compressed_frames, l, c.compressed_frames[i]);
            advance_vec(&self.messages, l, c.messages[i]);
            advance_vec(&self.wire_bytes, l, c.wire_bytes[i]);
        }
        advance_vec(&self.gaps, "skipped", c.gaps_skipped);
        advance_vec(&self.gaps, "fatal", c.gaps.saturating_sub(c.gaps_skipped));
        let caps = [
            c.frames_too_large,
            c.messages_truncated,
            c.inflated_too_large,
            c.tokens_too_long,
            c.ids_too_long,
            c.tracked_messages_evicted,
        ];
        for (cap, total) in CAPS.iter().zip(caps) {
            advance_vec(&self.caps_hit, cap, total);
        }
        advance_vec(&self.packet_errors, "socketio", c.packet_errors);
        advance_vec(&self.packet_errors, "json", c.json_errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::util::render;

    #[test]
    fn exports_cumulative_counters_once() {
        let registry = Registry::new();
        let metrics = WebSocketMetrics::register(&registry).unwrap();
        let text = render(&registry);
        assert!(text.contains("webui_monitor_websocket_frames_total{direction=\"request\"} 0"));
        assert!(text.contains("webui_monitor_websocket_caps_hit_total{cap=\"message_bytes\"} 0"));

        let mut counters = WebSocketCounters {
            connections: 1,
            frames: [8, 65],
            compressed_frames: [7, 64],
            messages: [7, 64],
            wire_bytes: [573, 2539],
            gaps: 3,
            gaps_skipped: 1,
            messages_truncated: 2,
            json_errors: 1,
            ..WebSocketCounters::default()
        };
        metrics.update(&counters);
        // A second update with the same totals adds nothing.
        metrics.update(&counters);
        counters.connections = 2;
        counters.undecodable_connections = 1;
        counters.inflate_errors = 1;
        metrics.update(&counters);
        let text = render(&registry);
        for line in [
            "webui_monitor_websocket_connections_total 2",
            "webui_monitor_websocket_undecodable_connections_total 1",
            "webui_monitor_websocket_inflate_errors_total 1",
            "webui_monitor_websocket_frames_total{direction=\"request\"} 8",
            "webui_monitor_websocket_frames_total{direction=\"response\"} 65",
            "webui_monitor_websocket_compressed_frames_total{direction=\"response\"} 64",
            "webui_monitor_websocket_messages_total{direction=\"request\"} 7",
            "webui_monitor_websocket_wire_bytes_total{direction=\"response\"} 2539",
            "webui_monitor_websocket_gaps_total{outcome=\"fatal\"} 2",
            "webui_monitor_websocket_gaps_total{outcome=\"skipped\"} 1",
            "webui_monitor_websocket_caps_hit_total{cap=\"message_bytes\"} 2",
            "webui_monitor_websocket_packet_errors_total{layer=\"json\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn registering_twice_fails() {
        let registry = Registry::new();
        WebSocketMetrics::register(&registry).unwrap();
        assert!(WebSocketMetrics::register(&registry).is_err());
    }
}
