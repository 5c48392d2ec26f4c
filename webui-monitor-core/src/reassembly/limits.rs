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
    /// Bytes all connections together may hold back (the sum of what
    /// `max_buffered_bytes_per_connection` counts). A segment that takes the sum beyond it has
    /// the holes of its own connection declared lost (cap `total_bytes`), so the sum stays at or
    /// below it whatever the number of connections. It bounds the memory of holes no
    /// capture-loss mark covers (a forger's, or a loss whose mark did not arrive), which would
    /// otherwise wait for a per-connection cap or `hole_timeout_ms` on every connection at
    /// once. Default 16 MiB: holes of real packet loss fill within a retransmission timeout
    /// and hold far less.
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
    /// How far from the next expected byte of a direction a segment may lie, ahead or behind,
    /// and still be taken: the receive window the monitor assumes, since the capture records
    /// carry neither window nor options. Segments (data, FIN, RST) outside it are counted and
    /// ignored. It must exceed every real receive window (Linux's default `tcp_rmem` maximum is
    /// 6 MiB); a blind forger lands inside it with odds of `max_window_bytes / 2^32` per
    /// segment. Default 16 MiB.
    pub max_window_bytes: u64,
    /// A direction that has taken nothing inside the window for this long (traffic time) while
    /// data keeps arriving outside it jumps to that data: the capture lost more than a window,
    /// or a forged segment fixed the start of a mid-stream pickup. Pure ACKs inside the window
    /// count as taken, so an idle but live direction does not jump. 0 never jumps.
    /// Default 10 s.
    pub window_resync_ms: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            max_buffered_bytes_per_connection: 4 << 20,
            max_buffered_bytes_total: 16 << 20,
            max_buffered_pieces_per_connection: 4096,
            hole_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            closed_linger_ms: 60_000,
            max_closed_connections: 65_536,
            max_window_bytes: 16 << 20,
            window_resync_ms: 10_000,
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
    /// Of the holes, those declared lost at once because the capture said it dropped bytes of
    /// that direction before the segment after them.
    pub capture_loss_gaps: u64,
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
    /// Bytes skipped on purpose because nothing reads them (see
    /// [`StreamHandler::take_skip`](super::StreamHandler::take_skip)).
    pub skipped_bytes: u64,
    /// Of those, bytes that arrived anyway (captured before the capture learnt of the skip)
    /// and were dropped.
    pub skipped_bytes_arrived: u64,
    /// What the trust rules (handshake, window, confirmation) decided.
    pub trust: TrustCounters,
    /// How many times each cap cut something, indexed by [`CapKind`].
    cap_hits: [u64; 6],
}

/// Decisions of the rules that keep forged segments out: XDP sees ingress before the kernel
/// checks checksums, sequence numbers and handshakes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustCounters {
    /// Connections whose SYN and SYN-ACK were both seen (established from the start).
    pub handshakes: u64,
    /// Connections without a full handshake (mid-stream pickups) confirmed by traffic in both
    /// directions.
    pub confirmed: u64,
    /// Connections closed (for any reason) before being established or confirmed.
    pub unconfirmed_closed: u64,
    /// Of the evictions, those that took an unconfirmed connection (preferred over
    /// established ones).
    pub unconfirmed_evicted: u64,
    /// Segments (data, FIN or ACK) outside `max_window_bytes` of the next expected byte,
    /// ignored.
    pub out_of_window_segments: u64,
    /// Payload bytes of those segments.
    pub out_of_window_bytes: u64,
    /// RSTs outside the window, ignored (the connection stays open).
    pub rst_out_of_window: u64,
    /// FINs before the next expected byte (stale or forged), ignored.
    pub stale_fins: u64,
    /// Directions that jumped to data outside the window after `window_resync_ms`.
    pub window_resyncs: u64,
    /// Client SYNs with a new ISN on an established or confirmed connection, held until the
    /// server's SYN-ACK (only then is the 4-tuple reused).
    pub syns_held: u64,
    /// Server SYN-ACKs with a new ISN on an established or confirmed connection without a held
    /// client SYN, ignored.
    pub syns_ignored: u64,
    /// Segments that overlapped buffered bytes with different content (the first copy was
    /// kept).
    pub conflicting_segments: u64,
    /// Bytes that differed in those overlaps.
    pub conflicting_bytes: u64,
}

impl TrustCounters {
    /// Every counter as (label value, total). Destructured without `..`: a new counter does not
    /// compile until it is listed here, so the metrics export it.
    pub fn values(&self) -> [(&'static str, u64); 13] {
        let TrustCounters {
            handshakes,
            confirmed,
            unconfirmed_closed,
            unconfirmed_evicted,
            out_of_window_segments,
            out_of_window_bytes,
            rst_out_of_window,
            stale_fins,
            window_resyncs,
            syns_held,
            syns_ignored,
            conflicting_segments,
            conflicting_bytes,
        } = *self;
        [
            ("handshakes", handshakes),
            ("confirmed", confirmed),
            ("unconfirmed_closed", unconfirmed_closed),
            ("unconfirmed_evicted", unconfirmed_evicted),
            ("out_of_window_segments", out_of_window_segments),
            ("out_of_window_bytes", out_of_window_bytes),
            ("rst_out_of_window", rst_out_of_window),
            ("stale_fins", stale_fins),
            ("window_resyncs", window_resyncs),
            ("syns_held", syns_held),
            ("syns_ignored", syns_ignored),
            ("conflicting_segments", conflicting_segments),
            ("conflicting_bytes", conflicting_bytes),
        ]
    }
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
