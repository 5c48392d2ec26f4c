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
//!   full, or a new SYN on the same 4-tuple. Connections closed by FIN/RST are remembered for
//!   `closed_linger_ms` so their trailing ACKs and late retransmissions are ignored instead of
//!   opening a new connection.
//!
//! The kernel capture splits large segments into chunk records; a chunk is simply a segment whose
//! `seq` is that of its first byte, with FIN only on the last one, so nothing here special-cases it.
mod half;
mod limits;
mod seq;

use lru::LruCache;

use crate::segment::{ConnectionKey, Direction, Segment, Timestamp};

use half::Half;
pub use limits::{CapKind, ReassemblyCounters, ReassemblyLimits};

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

/// The consumer of reassembled streams. `State` is per connection.
///
/// Timestamps passed to `data` never decrease within a connection.
pub trait StreamHandler {
    /// What the handler keeps per connection (the reassembler stores it with the connection).
    type State;
    /// A connection was opened (`mid_stream`: no SYN seen, the stream starts at an arbitrary
    /// byte).
    fn open(&mut self, key: ConnectionKey, mid_stream: bool, ts: Timestamp) -> Self::State;
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

struct Conn<S> {
    halves: [Half; 2],
    state: S,
    last_seen: Timestamp,
    /// Latest timestamp handed to the consumer (keeps them monotonic).
    delivered_ts: Timestamp,
}

impl<S> Conn<S> {
    fn buffered(&self) -> usize {
        self.halves[0].buffered + self.halves[1].buffered
    }
    fn pieces(&self) -> usize {
        self.halves[0].piece_count() + self.halves[1].piece_count()
    }
    fn oldest_hole(&self) -> Option<Timestamp> {
        self.halves.iter().filter_map(Half::oldest_pending).min()
    }
}

/// The connection table and the reassembly of every connection in it.
pub struct Reassembler<S> {
    limits: ReassemblyLimits,
    counters: ReassemblyCounters,
    open: LruCache<ConnectionKey, Conn<S>>,
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

enum Outcome {
    Keep,
    Close(CloseReason),
}

const fn ms(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

impl<S> Reassembler<S> {
    /// An empty table; every bound comes from `limits`.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            counters: ReassemblyCounters::default(),
            open: LruCache::unbounded(),
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

    /// Bytes currently held back over all connections.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total
    }

    /// Feeds one segment.
    pub fn on_segment<H: StreamHandler<State = S>>(&mut self, seg: &Segment<'_>, h: &mut H) {
        let key = seg.key;
        let ts = seg.timestamp;
        let syn = seg.flags.syn();

        if syn {
            // A SYN with a new ISN on a known 4-tuple is a new connection (port reuse).
            let reused = self.open.peek(&key).is_some_and(|c| {
                let half = &c.halves[seg.direction.index()];
                half.base.is_some() && half.base != Some(seg.seq.wrapping_add(1))
            });
            if reused && let Some(conn) = self.open.pop(&key) {
                self.counters.connections_reused += 1;
                self.close_conn(key, conn, CloseReason::Reused, ts, h);
            }
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

    /// Feeds `seg` to its connection if it is open; false if it is not.
    fn feed_open<H: StreamHandler<State = S>>(&mut self, seg: &Segment<'_>, h: &mut H) -> bool {
        let key = seg.key;
        let Some(conn) = self.open.get_mut(&key) else {
            return false;
        };
        let outcome = process(
            conn,
            key,
            seg,
            &self.limits,
            &mut self.counters,
            &mut self.buffered_total,
            h,
        );
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
            let expired = self.open.peek_lru().is_some_and(|(_, c)| {
                c.last_seen.as_nanos().saturating_add(idle) <= now.as_nanos()
            });
            if !expired {
                break;
            }
            if let Some((key, conn)) = self.open.pop_lru() {
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
        while let Some((key, conn)) = self.open.pop_lru() {
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
            let Some((old_key, old)) = self.open.pop_lru() else {
                break;
            };
            self.counters.connections_evicted += 1;
            self.counters.hit(CapKind::Connections);
            self.close_conn(old_key, old, CloseReason::Evicted, ts, h);
        }
        self.counters.connections_opened += 1;
        if mid_stream {
            self.counters.connections_mid_stream += 1;
        }
        let state = h.open(key, mid_stream, ts);
        self.open.push(
            key,
            Conn {
                halves: [Half::default(), Half::default()],
                state,
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

/// Places one segment into its connection and delivers what became ready.
fn process<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    seg: &Segment<'_>,
    limits: &ReassemblyLimits,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    h: &mut H,
) -> Outcome {
    let ts = seg.timestamp;
    conn.last_seen = conn.last_seen.max(ts);
    if seg.flags.rst() {
        // Payload on a RST is diagnostic text at best, never stream data.
        counters.connections_closed_rst += 1;
        return Outcome::Close(CloseReason::Rst);
    }
    let d = seg.direction.index();
    let other_hole = conn.halves[1 - d].has_hole();
    let half = &mut conn.halves[d];

    let mut data_seq = seg.seq;
    if seg.flags.syn() {
        data_seq = seg.seq.wrapping_add(1);
        if half.base.is_none() {
            half.base = Some(data_seq);
            half.syn_seen = true;
        }
    } else if half.base.is_none() {
        if seg.payload.is_empty() && !seg.flags.fin() {
            return Outcome::Keep;
        }
        half.base = Some(data_seq);
    }

    let Some(base) = half.base else {
        return Outcome::Keep;
    };
    let mut payload = seg.payload;
    let at = match seq::offset_of(data_seq, base, half.delivered) {
        Some(at) => at,
        None => {
            // Starts before offset 0: keep only what lies after it.
            let before = base.wrapping_sub(data_seq) as usize;
            let cut = before.min(payload.len());
            counters.bytes_before_start += cut as u64;
            payload = &payload[cut..];
            0
        }
    };
    if seg.flags.fin() && half.fin_at.is_none() {
        half.fin_at = Some(at + payload.len() as u64);
        half.fin_ts = ts;
    }

    if !payload.is_empty() {
        let was_ahead = at > half.delivered;
        let placement = half.place(at, payload, ts, other_hole);
        if placement.duplicate_bytes > 0 {
            counters.duplicate_segments += 1;
            counters.duplicate_bytes += placement.duplicate_bytes;
        }
        if placement.buffered_bytes > 0 {
            *buffered_total += placement.buffered_bytes as usize;
            if was_ahead {
                counters.out_of_order_segments += 1;
                counters.out_of_order_bytes += placement.buffered_bytes;
            }
        }
        if let Some(skip) = placement.in_order_skip {
            let data = &payload[skip..];
            half.delivered += data.len() as u64;
            conn.delivered_ts = conn.delivered_ts.max(ts);
            h.data(&mut conn.state, key, seg.direction, data, conn.delivered_ts);
        }
    }

    drain(conn, key, buffered_total, h);

    // Enforce the caps by declaring holes lost, one cap at a time.
    loop {
        let cap = if conn.buffered() > limits.max_buffered_bytes_per_connection {
            CapKind::ConnectionBytes
        } else if *buffered_total > limits.max_buffered_bytes_total && conn.buffered() > 0 {
            CapKind::TotalBytes
        } else if conn.pieces() > limits.max_buffered_pieces_per_connection {
            CapKind::ConnectionPieces
        } else if conn.oldest_hole().is_some_and(|t| {
            t.as_nanos().saturating_add(ms(limits.hole_timeout_ms)) <= ts.as_nanos()
        }) {
            CapKind::HoleTimeout
        } else {
            break;
        };
        counters.hit(cap);
        if !skip_one_hole(conn, key, counters, buffered_total, ts, h) {
            break;
        }
    }

    if conn.halves.iter().all(|half| half.fin_delivered) {
        counters.connections_closed_fin += 1;
        return Outcome::Close(CloseReason::Fin);
    }
    Outcome::Keep
}

/// Delivers every ready piece, in capture order across directions, then any FIN that is due.
fn drain<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    buffered_total: &mut usize,
    h: &mut H,
) {
    loop {
        let holes = [conn.halves[0].has_hole(), conn.halves[1].has_hole()];
        let mut pick: Option<(usize, Timestamp)> = None;
        for (i, half) in conn.halves.iter().enumerate() {
            if holes[1 - i] {
                continue;
            }
            if let Some(p) = half.ready()
                && pick.is_none_or(|(_, t)| p.order_ts < t)
            {
                pick = Some((i, p.order_ts));
            }
        }
        let Some((i, _)) = pick else { break };
        let Some(piece) = conn.halves[i].pop_ready() else {
            break;
        };
        *buffered_total -= piece.data.len();
        conn.delivered_ts = conn.delivered_ts.max(piece.ts);
        h.data(
            &mut conn.state,
            key,
            Direction::ALL[i],
            &piece.data,
            conn.delivered_ts,
        );
    }
    for (i, dir) in Direction::ALL.into_iter().enumerate() {
        if conn.halves[i].fin_due() {
            conn.halves[i].fin_delivered = true;
            let ts = conn.delivered_ts.max(conn.halves[i].fin_ts);
            conn.delivered_ts = ts;
            h.fin(&mut conn.state, key, dir, ts);
        }
    }
}

/// Declares the earliest hole of the connection lost and delivers what follows it. Returns
/// false when there was no hole.
fn skip_one_hole<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    ts: Timestamp,
    h: &mut H,
) -> bool {
    // Skip the hole whose data waits longest: it is the one holding everything back.
    let mut pick: Option<(usize, Timestamp)> = None;
    for (i, half) in conn.halves.iter().enumerate() {
        if half.has_hole() {
            let t = half.oldest_pending().unwrap_or(ts);
            if pick.is_none_or(|(_, pt)| t < pt) {
                pick = Some((i, t));
            }
        }
    }
    let Some((i, _)) = pick else { return false };
    let len = conn.halves[i].skip_hole();
    if len > 0 {
        counters.gaps += 1;
        counters.gap_bytes += len;
        let ts = conn.delivered_ts.max(ts);
        h.gap(&mut conn.state, key, Direction::ALL[i], len, ts);
    }
    drain(conn, key, buffered_total, h);
    true
}

/// Declares every hole lost and delivers everything buffered.
fn skip_holes<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    ts: Timestamp,
    h: &mut H,
) {
    drain(conn, key, buffered_total, h);
    while skip_one_hole(conn, key, counters, buffered_total, ts, h) {}
}

#[cfg(test)]
mod tests;
