//! TCP reassembly: [`Segment`]s in, ordered byte streams per connection and direction out.
//!
//! Sans-IO: [`Reassembler::on_segment`] and [`Reassembler::on_tick`] take traffic timestamps and
//! call a [`StreamHandler`] with what became deliverable. The handler owns one `State` per
//! connection (the pipeline's HTTP/WebSocket engines; a byte recorder in tests).
//!
//! Rules, in the order a segment meets them:
//!
//! * **Start of stream.** A SYN fixes the initial sequence number of its direction. A connection
//!   first seen through a payload-bearing segment is a *mid-stream pickup* (the daemon started on
//!   live connections): the stream starts at that segment and the handler is told, so HTTP can
//!   resynchronise on the next message start. Payload-less segments never open a connection.
//! * **Sequence numbers** are mapped to 64-bit stream offsets wrap-around-safely (`seq`).
//! * **Trust.** XDP sees ingress before the kernel checks checksums, sequence numbers and
//!   handshakes, so a segment proves nothing by arriving. A connection starts *unconfirmed*; it
//!   is *established* once its SYN and SYN-ACK were seen, or *confirmed* (mid-stream pickup)
//!   once each direction showed itself inside its window (a SYN or payload), and the handler
//!   is told ([`StreamHandler::confirmed`]) before the bytes of the segment that did it. The
//!   pipeline reports exchanges of confirmed connections only, so a forger who sends requests
//!   alone, from any number of made-up 4-tuples, gets none counted. Bytes of an unconfirmed
//!   connection are still reassembled and parsed (its first answer confirms it). When the
//!   table is full, unconfirmed connections are evicted first (`table`). A forger who also
//!   forges the server's direction (possible where ingress carries both, as on `lo`) is not
//!   told apart: that needs the acknowledgement numbers, which the capture records do not
//!   carry.
//! * **Window.** A segment is taken only within `max_window_bytes` of the next expected byte of
//!   its direction, ahead or behind (the records carry no window, so the bound is a config
//!   value above any real receive window). Out-of-window data, FINs and RSTs are counted and
//!   ignored; a RST closes the connection only inside the window (RFC 5961 §3: a real RST
//!   carries the sender's next sequence number). A direction that keeps receiving only
//!   out-of-window data for `window_resync_ms` jumps to it (the capture lost more than a window).
//! * **Overlaps and retransmissions: first copy wins** (see `half.rs`): bytes already delivered or
//!   buffered are never replaced.
//! * **Out-of-order data** is buffered until the hole before it is filled. While one direction
//!   has a hole, the other direction's data is held back too, so the consumer sees both
//!   directions in capture order (a response is never delivered before the request bytes it
//!   answers). When both directions have data ready, the earlier one goes first.
//! * **A hole is declared lost** (counted, and reported to the handler as a gap so parsers
//!   resynchronise) when a cap would be exceeded — bytes per connection, bytes in total, pieces
//!   per connection — when it is older than `hole_timeout_ms`, or when the connection closes.
//! * **Close:** FIN delivered in both directions, RST, idle expiry, LRU eviction when the table is
//!   full, or a new SYN on the same 4-tuple (on an established or confirmed connection, only
//!   once the server's SYN-ACK answers it). Connections closed by FIN/RST are remembered for
//!   `closed_linger_ms` so their trailing ACKs and late retransmissions are ignored instead of
//!   opening a new connection.
//!
//! The kernel capture splits large segments into chunk records; a chunk is simply a segment whose
//! `seq` is that of its first byte, with FIN only on the last one, so nothing here special-cases it.
mod conn;
mod half;
mod limits;
mod seq;
mod table;

use lru::LruCache;

use crate::segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp};

use conn::{Conn, Outcome, Trust, ms, process, skip_holes};
use half::Half;
pub use limits::{CapKind, ReassemblyCounters, ReassemblyLimits, TrustCounters};
use table::Table;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// FIN delivered in both directions.
    Fin,
    Rst,
    /// No traffic for `idle_timeout_ms`.
    Idle,
    /// The connection table was full and this was the least recently used connection.
    Evicted,
    /// A SYN with a new initial sequence number reused the 4-tuple.
    Reused,
    /// End of input ([`Reassembler::finish`]).
    Finish,
}

/// Sequence numbers of bytes skipped on purpose: `from` up to, not including, `to` (compared
/// wrap-around-safely), of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SkipRange {
    pub direction: Direction,
    pub from: u32,
    pub to: u32,
    /// `to` is where a chunk-size line starts in a chunked body (the range may be empty): the
    /// capture may follow the body past it, chunk by chunk (the kernel's `SkipSpan` with
    /// `SKIP_CHUNKED`), and marks the segment it copies from there on with
    /// [`Segment::capture_skip`].
    pub chunked: bool,
}

/// What [`StreamHandler::take_skip`] asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipRequest {
    /// How many of the next bytes are not read (0: none).
    pub len: u64,
    /// They end where a chunk-size line starts in a chunked body (see
    /// [`SkipRange::chunked`]); with `len` 0, the stream stands at one.
    pub chunked: bool,
}

/// Whole chunks of a chunked body the capture skipped past a chunked skip's end (see
/// [`StreamHandler::chunks_skipped`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunksSkipped {
    /// Stream bytes: each chunk's size line, data and the CRLF after it.
    pub wire: u64,
    /// Chunk data bytes among them.
    pub data: u64,
    pub chunks: u32,
}

/// What the capture should do about bytes the pipeline skips on purpose (see
/// `Pipeline::poll_skip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipCommand {
    /// Payload of `connection` in `range.direction` with sequence numbers in
    /// `[range.from, range.to)` need not be copied; this replaces the connection's earlier
    /// range of that direction. A segment whose payload lies wholly inside is sent without
    /// payload if it carries SYN, FIN or RST or ends exactly at `range.to` (its sequence
    /// number moved to the payload's end), and not at all otherwise: the mark at `range.to`
    /// tells when the skipped bytes ended.
    Skip {
        connection: ConnectionKey,
        range: SkipRange,
    },
    /// `connection` ended: forget its ranges (the 4-tuple may come back with other sequence
    /// numbers).
    Forget { connection: ConnectionKey },
}

/// The consumer of reassembled streams. `State` is per connection.
///
/// Timestamps passed to `data` never decrease within a connection.
pub trait StreamHandler {
    /// What the handler keeps per connection (the reassembler stores it with the connection).
    type State;
    /// A connection was opened (`mid_stream`: no SYN seen, the stream starts at an arbitrary
    /// byte). It is unconfirmed until [`StreamHandler::confirmed`].
    fn open(&mut self, key: ConnectionKey, mid_stream: bool, ts: Timestamp) -> Self::State;
    /// The connection proved itself: its SYN and SYN-ACK were seen, or (mid-stream) both
    /// directions showed themselves inside their windows. Called at most once, before the
    /// `data` of the segment that confirmed it; a connection may close without it.
    fn confirmed(&mut self, state: &mut Self::State, key: ConnectionKey, ts: Timestamp) {
        let _ = (state, key, ts);
    }
    /// In-order bytes of `direction`.
    fn data(
        &mut self,
        state: &mut Self::State,
        key: ConnectionKey,
        direction: Direction,
        data: &[u8],
        ts: Timestamp,
    );
    /// `len` bytes of `direction` are lost; the next `data` follows them.
    fn gap(
        &mut self,
        state: &mut Self::State,
        key: ConnectionKey,
        direction: Direction,
        len: u64,
        ts: Timestamp,
    );
    /// After each [`StreamHandler::data`]: how many of the next bytes of `direction` the
    /// handler will not read (0: none), and whether they end where a chunk-size line starts.
    /// The reassembler then skips them on purpose: it moves past them at once (they are no
    /// hole and hold nothing back), drops any of them that still arrive, calls
    /// [`StreamHandler::skip_started`] with their sequence numbers, and reports them with
    /// [`StreamHandler::skipped`] once the stream has passed them. A chunked request of no
    /// bytes only starts an empty chunked range. When the capture followed a chunked range
    /// further, [`StreamHandler::chunks_skipped`] reports the chunks it left out.
    fn take_skip(&mut self, state: &mut Self::State, direction: Direction) -> SkipRequest {
        let _ = (state, direction);
        SkipRequest::default()
    }
    /// The reassembler skips the bytes of `direction` with sequence numbers in
    /// `[range.from, range.to)` (what the capture may leave out).
    fn skip_started(&mut self, state: &mut Self::State, key: ConnectionKey, range: SkipRange) {
        let _ = (state, key, range);
    }
    /// `len` bytes of `direction` that the handler asked to skip ended (at `ts`); the next
    /// `data` follows them.
    fn skipped(
        &mut self,
        state: &mut Self::State,
        key: ConnectionKey,
        direction: Direction,
        len: u64,
        ts: Timestamp,
    ) {
        let _ = (state, key, direction, len, ts);
    }
    /// The capture followed the chunked body of a chunked skip past its end (see
    /// [`SkipRange::chunked`]): the next `skipped.wire` bytes of `direction` went by unseen,
    /// `skipped.chunks` whole chunks, each its size line, data and the CRLF after it; the
    /// stream stands at a chunk-size line again. Called after [`StreamHandler::skipped`]
    /// reported the bytes asked for, and possibly several times for one range.
    fn chunks_skipped(
        &mut self,
        state: &mut Self::State,
        key: ConnectionKey,
        direction: Direction,
        skipped: ChunksSkipped,
        ts: Timestamp,
    ) {
        let _ = (state, key, direction, skipped, ts);
    }
    /// `direction` ended (FIN, after all its bytes).
    fn fin(
        &mut self,
        state: &mut Self::State,
        key: ConnectionKey,
        direction: Direction,
        ts: Timestamp,
    );
    /// The connection is gone; nothing more will be reported for it.
    fn close(&mut self, state: Self::State, key: ConnectionKey, reason: CloseReason, ts: Timestamp);
}

/// The connection table and the reassembly of every connection in it.
pub struct Reassembler<S> {
    limits: ReassemblyLimits,
    counters: ReassemblyCounters,
    open: Table<S>,
    /// Connections closed by FIN/RST, with the time they closed.
    closed: LruCache<ConnectionKey, Timestamp>,
    buffered_total: usize,
}

impl<S> std::fmt::Debug for Reassembler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("limits", &self.limits)
            .field("counters", &self.counters)
            .field("open", &self.open.len())
            .field("closed", &self.closed.len())
            .field("buffered_total", &self.buffered_total)
            .finish()
    }
}

impl<S> Default for Reassembler<S> {
    fn default() -> Self {
        Self::new(ReassemblyLimits::default())
    }
}

impl<S> Reassembler<S> {
    /// An empty table; every bound comes from `limits`.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            counters: ReassemblyCounters::default(),
            open: Table::new(),
            closed: LruCache::unbounded(),
            buffered_total: 0,
        }
    }

    /// New bounds from now on. The table sizes (`max_connections`, `max_closed_connections`)
    /// keep their start values: the tables were allocated with them.
    pub fn set_limits(&mut self, limits: ReassemblyLimits) {
        self.limits = ReassemblyLimits {
            max_connections: self.limits.max_connections,
            max_closed_connections: self.limits.max_closed_connections,
            ..limits
        };
    }

    /// The caps this reassembler enforces.
    pub fn limits(&self) -> &ReassemblyLimits {
        &self.limits
    }

    /// Cumulative totals since creation (exported by `StreamMetrics`).
    pub fn counters(&self) -> &ReassemblyCounters {
        &self.counters
    }

    /// Connections currently open.
    pub fn active_connections(&self) -> usize {
        self.open.len()
    }

    /// Connections currently open and not yet established or confirmed.
    pub fn unconfirmed_connections(&self) -> usize {
        self.open.unconfirmed_len()
    }

    /// Bytes currently held back over all connections.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total
    }

    /// Feeds one segment.
    pub fn on_segment<H: StreamHandler<State = S>>(&mut self, seg: &Segment<'_>, h: &mut H) {
        let key = seg.key;
        let ts = seg.timestamp;
        let syn = seg.flags.syn();

        if syn && !self.on_new_syn(seg, h) {
            return;
        }

        // The common case, a segment of a tracked connection, costs one table lookup.
        if self.feed_open(seg, h) {
            return;
        }
        if (self.closed.contains(&key) || seg.payload.is_empty()) && !syn {
            self.counters.segments_ignored += 1;
            return;
        }
        self.closed.pop(&key);
        self.open_conn(key, !syn, ts, h);
        self.feed_open(seg, h);
    }

    /// A SYN with a new ISN on a known 4-tuple is a new connection (port reuse). On an
    /// established or confirmed connection, a forged SYN must not end it (RFC 5961 §4: a SYN
    /// in a synchronised state gets a challenge ACK), so the client's SYN is held until the
    /// server answers it with a SYN-ACK: only then is the old connection closed and the new
    /// one opened from both. Returns false when `seg` was consumed (held or ignored).
    fn on_new_syn<H: StreamHandler<State = S>>(&mut self, seg: &Segment<'_>, h: &mut H) -> bool {
        let key = seg.key;
        let Some(conn) = self.open.peek_mut(&key) else {
            return true;
        };
        let half = &conn.halves[seg.direction.index()];
        if half.base.is_none() || half.base == Some(seg.seq.wrapping_add(1)) {
            return true;
        }
        let held = match conn.trust {
            Trust::Unconfirmed => None,
            _ if seg.direction == Direction::Request => {
                conn.held_syn = Some(seg.seq);
                self.counters.trust.syns_held += 1;
                return false;
            }
            _ => match conn.held_syn {
                Some(isn) => Some(isn),
                None => {
                    self.counters.trust.syns_ignored += 1;
                    return false;
                }
            },
        };
        if let Some(conn) = self.open.pop(&key) {
            self.counters.connections_reused += 1;
            self.close_conn(key, conn, CloseReason::Reused, seg.timestamp, h);
        }
        if let Some(isn) = held {
            let client_syn = Segment {
                direction: Direction::Request,
                seq: isn,
                flags: TcpFlags(TcpFlags::SYN),
                payload: &[],
                after_capture_loss: false,
                capture_skip: None,
                ..*seg
            };
            self.closed.pop(&key);
            self.open_conn(key, false, seg.timestamp, h);
            self.feed_open(&client_syn, h);
        }
        true
    }

    /// Feeds `seg` to its connection if it is open; false if it is not.
    fn feed_open<H: StreamHandler<State = S>>(&mut self, seg: &Segment<'_>, h: &mut H) -> bool {
        let key = seg.key;
        let Some(conn) = self.open.get_mut(&key) else {
            return false;
        };
        let was_unconfirmed = conn.trust == Trust::Unconfirmed;
        let outcome = process(
            conn,
            key,
            seg,
            &self.limits,
            &mut self.counters,
            &mut self.buffered_total,
            h,
        );
        if was_unconfirmed && conn.trust != Trust::Unconfirmed {
            self.open.confirmed(&key);
        }
        if let Outcome::Close(reason) = outcome
            && let Some(conn) = self.open.pop(&key)
        {
            self.close_conn(key, conn, reason, seg.timestamp, h);
        }
        true
    }

    /// Advances traffic time: skips timed-out holes, expires idle connections, forgets old closed
    /// ones. Call it regularly (e.g. once per second of traffic time).
    pub fn on_tick<H: StreamHandler<State = S>>(&mut self, now: Timestamp, h: &mut H) {
        let idle = ms(self.limits.idle_timeout_ms);
        loop {
            let expired = self
                .open
                .peek_oldest()
                .is_some_and(|c| c.last_seen.as_nanos().saturating_add(idle) <= now.as_nanos());
            if !expired {
                break;
            }
            if let Some((key, conn)) = self.open.pop_oldest() {
                self.counters.connections_expired += 1;
                self.close_conn(key, conn, CloseReason::Idle, now, h);
            }
        }

        // O(connections) once per tick: cheap next to the per-segment work, and it keeps the
        // per-segment path free of any timer bookkeeping.
        let timeout = ms(self.limits.hole_timeout_ms);
        let mut to_close = Vec::new();
        for (key, conn) in self.open.iter_mut() {
            let timed_out = conn
                .oldest_hole()
                .is_some_and(|t| t.as_nanos().saturating_add(timeout) <= now.as_nanos());
            if timed_out {
                self.counters.hit(CapKind::HoleTimeout);
                skip_holes(
                    conn,
                    *key,
                    &mut self.counters,
                    &mut self.buffered_total,
                    now,
                    h,
                );
                if conn.halves.iter().all(|half| half.fin_delivered) {
                    to_close.push(*key);
                }
            }
        }
        for key in to_close {
            if let Some(conn) = self.open.pop(&key) {
                self.counters.connections_closed_fin += 1;
                self.close_conn(key, conn, CloseReason::Fin, now, h);
            }
        }

        let linger = ms(self.limits.closed_linger_ms);
        while self
            .closed
            .peek_lru()
            .is_some_and(|(_, t)| t.as_nanos().saturating_add(linger) <= now.as_nanos())
        {
            self.closed.pop_lru();
        }
    }

    /// End of input: closes every connection (least recently used first), flushing buffered data
    /// behind gaps.
    pub fn finish<H: StreamHandler<State = S>>(&mut self, now: Timestamp, h: &mut H) {
        while let Some((key, conn)) = self.open.pop_oldest() {
            self.counters.connections_finished += 1;
            self.close_conn(key, conn, CloseReason::Finish, now, h);
        }
        self.closed.clear();
    }

    fn open_conn<H: StreamHandler<State = S>>(
        &mut self,
        key: ConnectionKey,
        mid_stream: bool,
        ts: Timestamp,
        h: &mut H,
    ) {
        while self.open.len() >= self.limits.max_connections.max(1) {
            let Some((old_key, old, unconfirmed)) = self.open.pop_evictable() else {
                break;
            };
            if unconfirmed {
                self.counters.trust.unconfirmed_evicted += 1;
            }
            self.counters.connections_evicted += 1;
            self.counters.hit(CapKind::Connections);
            self.close_conn(old_key, old, CloseReason::Evicted, ts, h);
        }
        self.counters.connections_opened += 1;
        if mid_stream {
            self.counters.connections_mid_stream += 1;
        }
        let state = h.open(key, mid_stream, ts);
        self.open.insert(
            key,
            Conn {
                halves: [Half::default(), Half::default()],
                state,
                trust: Trust::Unconfirmed,
                held_syn: None,
                last_seen: ts,
                delivered_ts: ts,
            },
        );
    }

    fn close_conn<H: StreamHandler<State = S>>(
        &mut self,
        key: ConnectionKey,
        mut conn: Conn<S>,
        reason: CloseReason,
        ts: Timestamp,
        h: &mut H,
    ) {
        skip_holes(
            &mut conn,
            key,
            &mut self.counters,
            &mut self.buffered_total,
            ts,
            h,
        );
        // `skip_holes` delivered everything; saturating in case of an accounting slip, which
        // must not take the daemon down.
        self.buffered_total = self.buffered_total.saturating_sub(conn.buffered());
        let ts = ts.max(conn.delivered_ts);
        if conn.trust == Trust::Unconfirmed {
            self.counters.trust.unconfirmed_closed += 1;
        }
        h.close(conn.state, key, reason, ts);
        if matches!(reason, CloseReason::Fin | CloseReason::Rst) {
            if self.closed.len() >= self.limits.max_closed_connections.max(1) {
                self.closed.pop_lru();
                self.counters.hit(CapKind::ClosedConnections);
            }
            self.closed.push(key, ts);
        }
    }
}

#[cfg(test)]
mod tests;
