//! Caps of the reassembler and the counters of what they cut.
use serde::{Deserialize, Serialize};

/// Every memory and time bound of TCP reassembly. Each has a counter in [`ReassemblyCounters`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReassemblyLimits {
    /// Connections tracked at once; the least recently used one is evicted beyond this.
    /// Default 65,536 (the kernel's per-connection map size).
    pub max_connections: usize,
    /// Bytes one connection may hold back (out-of-order data, and in-order data waiting for a
    /// hole in the other direction). Beyond it the hole is declared lost. Default 4 MiB.
    pub max_buffered_bytes_per_connection: usize,
    /// Bytes all connections together may hold back. Default 256 MiB.
    pub max_buffered_bytes_total: usize,
    /// Buffered pieces per connection (bounds bookkeeping for floods of tiny segments).
    /// Default 4,096.
    pub max_buffered_pieces_per_connection: usize,
    /// A hole older than this (traffic time) is declared lost. Default 10 s.
    pub hole_timeout_ms: u64,
    /// A connection without traffic for this long (traffic time) is closed. Default 300 s: LLM
    /// streams and proxy keep-alive connections may be quiet for minutes.
    pub idle_timeout_ms: u64,
    /// How long a closed connection is remembered so that its trailing ACKs and late
    /// retransmissions do not open a new, mid-stream connection. Default 60 s.
    pub closed_linger_ms: u64,
    /// Closed connections remembered at once (oldest forgotten first). Default 65,536.
    pub max_closed_connections: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            max_buffered_bytes_per_connection: 4 << 20,
            max_buffered_bytes_total: 256 << 20,
            max_buffered_pieces_per_connection: 4096,
            hole_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            closed_linger_ms: 60_000,
            max_closed_connections: 65_536,
        }
    }
}

/// Which cap forced a hole to be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapKind {
    /// `max_buffered_bytes_per_connection`
    ConnectionBytes,
    /// `max_buffered_bytes_total`
    TotalBytes,
    /// `max_buffered_pieces_per_connection`
    ConnectionPieces,
    /// `hole_timeout_ms`
    HoleTimeout,
    /// `max_connections` (LRU eviction)
    Connections,
    /// `max_closed_connections`
    ClosedConnections,
}

impl CapKind {
    pub const ALL: [CapKind; 6] = [
        CapKind::ConnectionBytes,
        CapKind::TotalBytes,
        CapKind::ConnectionPieces,
        CapKind::HoleTimeout,
        CapKind::Connections,
        CapKind::ClosedConnections,
    ];

    /// Metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            CapKind::ConnectionBytes => "connection_bytes",
            CapKind::TotalBytes => "total_bytes",
            CapKind::ConnectionPieces => "connection_pieces",
            CapKind::HoleTimeout => "hole_timeout",
            CapKind::Connections => "connections",
            CapKind::ClosedConnections => "closed_connections",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Running totals of the reassembler (monotonic, except where noted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassemblyCounters {
    /// Connections opened (from a SYN or mid-stream).
    pub connections_opened: u64,
    /// Of those, joined without a SYN.
    pub connections_mid_stream: u64,
    /// Closed by FIN in both directions.
    pub connections_closed_fin: u64,
    /// Closed by RST.
    pub connections_closed_rst: u64,
    /// Closed after `idle_timeout_ms` without traffic.
    pub connections_expired: u64,
    /// Evicted (least recently used) because the table was full.
    pub connections_evicted: u64,
    /// Closed because a new SYN reused the 4-tuple.
    pub connections_reused: u64,
    /// Closed at the end of input ([`Reassembler::finish`](super::Reassembler::finish)).
    pub connections_finished: u64,
    /// Holes declared lost.
    pub gaps: u64,
    /// Bytes in those holes.
    pub gap_bytes: u64,
    /// Segments (or parts) that arrived ahead of a hole and were buffered.
    pub out_of_order_segments: u64,
    pub out_of_order_bytes: u64,
    /// Segments carrying at least one byte seen before (retransmission or overlap).
    pub duplicate_segments: u64,
    /// Bytes dropped because an earlier copy existed (first copy wins).
    pub duplicate_bytes: u64,
    /// Payload-less segments of unknown connections, and segments of closed ones.
    pub segments_ignored: u64,
    /// Payload before the stream start (mid-stream pickup), dropped.
    pub bytes_before_start: u64,
    /// How many times each cap cut something, indexed by [`CapKind`].
    cap_hits: [u64; 6],
}

impl ReassemblyCounters {
    /// How many times `cap` cut something.
    pub fn cap_hits(&self, cap: CapKind) -> u64 {
        self.cap_hits[cap.index()]
    }

    pub(super) fn hit(&mut self, cap: CapKind) {
        self.cap_hits[cap.index()] += 1;
    }
}
