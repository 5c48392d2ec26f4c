//! One connection: its two directions, how far it proved to be real, and the placing of one
//! segment into it (the rules listed in the module docs of `reassembly`, in that order).
use crate::segment::{CaptureSkip, ConnectionKey, Direction, Segment, TcpFlags, Timestamp};

use super::{
    CapKind, ChunksSkipped, CloseReason, ReassemblyCounters, ReassemblyLimits, SkipRange,
    SkipRequest, StreamHandler,
    half::{ChunkedSkip, Half},
    seq,
};

/// How far a connection has proved that it is real (see the `reassembly` module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trust {
    /// Not (yet) shown by both directions: first to be evicted.
    Unconfirmed,
    /// SYN and SYN-ACK seen.
    Established,
    /// Picked up without the full handshake; both directions showed themselves in window.
    Confirmed,
}

pub(super) struct Conn<S> {
    pub halves: [Half; 2],
    pub state: S,
    pub trust: Trust,
    /// ISN of a client SYN that would reuse this established 4-tuple, held until the server's
    /// SYN-ACK confirms it (see `Reassembler::on_new_syn`).
    pub held_syn: Option<u32>,
    pub last_seen: Timestamp,
    /// Latest timestamp handed to the consumer (keeps them monotonic).
    pub delivered_ts: Timestamp,
}

impl<S> Conn<S> {
    pub fn buffered(&self) -> usize {
        self.halves[0].buffered + self.halves[1].buffered
    }
    pub fn pieces(&self) -> usize {
        self.halves[0].piece_count() + self.halves[1].piece_count()
    }
    pub fn oldest_hole(&self) -> Option<Timestamp> {
        self.halves.iter().filter_map(Half::oldest_pending).min()
    }
}

pub(super) enum Outcome {
    Keep,
    Close(CloseReason),
}

/// Milliseconds as nanoseconds.
pub(super) const fn ms(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

/// Places one segment into its connection and delivers what became ready.
pub(super) fn process<S, H: StreamHandler<State = S>>(
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
    let d = seg.direction.index();
    let window = limits.max_window_bytes.max(1);
    if seg.flags.rst() {
        // Payload on a RST is diagnostic text at best, never stream data. A direction with no
        // known start (nothing of it seen yet) has no window to check against.
        let half = &conn.halves[d];
        let in_window = half.base.is_none_or(|base| {
            let ahead = seq::distance(seg.seq, base, half.delivered);
            ahead >= 0 && (ahead as u64) < window
        });
        if !in_window {
            counters.trust.rst_out_of_window += 1;
            return Outcome::Keep;
        }
        counters.connections_closed_rst += 1;
        return Outcome::Close(CloseReason::Rst);
    }
    let other_hole = conn.halves[1 - d].has_hole();
    let half = &mut conn.halves[d];

    let mut data_seq = seg.seq;
    if seg.flags.syn() {
        data_seq = seg.seq.wrapping_add(1);
        if half.base.is_none() {
            half.base = Some(data_seq);
            half.syn_seen = true;
            half.live = true;
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
    let len = payload.len() as i64;
    let mut ahead = seq::distance(data_seq, base, half.delivered);
    // A mark is not held to the window: it lies where the capture followed the body to, which
    // a single chunk of the window's size or more takes past it.
    if let Some(mark) = seg.capture_skip
        && ahead > 0
        && half
            .chunked
            .as_deref()
            .is_some_and(|c| c.end == half.delivered)
    {
        follow_capture_skip(
            conn,
            key,
            seg.direction,
            ahead as u64,
            mark,
            counters,
            buffered_total,
            ts,
            h,
        );
        ahead = 0;
    }
    if len > 0 && ahead <= 0 && ahead + len > 0 {
        // The capture copied payload from the chunked range's end (after its mark, or
        // without one): it does not follow this body (it stopped at a size line it does not
        // read, or the range came too late).
        leave_chunked_range(conn, key, seg.direction, h);
    }
    let half = &mut conn.halves[d];
    if half.skip.is_some() {
        // Bytes skipped on purpose end at `delivered`: what lies wholly before it is dropped
        // (already reported skipped), what reaches it shows that the stream passed them.
        let reaches = ahead + len >= 0 && (len > 0 || ahead == 0 || seg.flags.fin());
        if !reaches {
            if len > 0 && ahead + len >= -(window as i64) {
                counters.skipped_bytes_arrived += len as u64;
            }
            return Outcome::Keep;
        }
        end_skip(conn, key, seg.direction, ts, h);
        if ahead < 0 {
            let cut = (-ahead) as usize;
            counters.skipped_bytes_arrived += cut as u64;
            let trimmed = Segment {
                seq: data_seq.wrapping_add(cut as u32),
                flags: TcpFlags(seg.flags.0 & !TcpFlags::SYN),
                payload: &payload[cut..],
                ..*seg
            };
            return process(conn, key, &trimmed, limits, counters, buffered_total, h);
        }
    }
    let half = &mut conn.halves[d];
    if ahead >= window as i64 || ahead + len < -(window as i64) {
        let since = *half.out_of_window_since.get_or_insert(ts);
        let resync = limits.window_resync_ms > 0
            && !payload.is_empty()
            && since.as_nanos().saturating_add(ms(limits.window_resync_ms)) <= ts.as_nanos();
        if !resync {
            counters.trust.out_of_window_segments += 1;
            counters.trust.out_of_window_bytes += len as u64;
            return Outcome::Keep;
        }
        // Taken after all: placed by the call below, at the new next expected byte.
        resync_half(
            conn,
            key,
            seg.direction,
            data_seq,
            ahead,
            counters,
            buffered_total,
            h,
        );
        return process(conn, key, seg, limits, counters, buffered_total, h);
    }
    half.out_of_window_since = None;
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
        if at + payload.len() as u64 >= half.delivered {
            half.fin_at = Some(at + payload.len() as u64);
            half.fin_ts = ts;
        } else {
            counters.trust.stale_fins += 1;
        }
    }

    if !payload.is_empty() {
        half.live = true;
        // The old connection goes on: a held SYN was not a reuse of the 4-tuple.
        conn.held_syn = None;
    }
    confirm(conn, key, counters, ts, h);

    let half = &mut conn.halves[d];
    if !payload.is_empty() {
        let was_ahead = at > half.delivered;
        let placement = half.place(at, payload, ts, other_hole);
        if placement.conflicting_bytes > 0 {
            counters.trust.conflicting_segments += 1;
            counters.trust.conflicting_bytes += placement.conflicting_bytes;
        }
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
            take_skips(conn, key, counters, buffered_total, h);
        }
    }

    drain(conn, key, counters, buffered_total, h);
    if seg.after_capture_loss {
        skip_lost_before(conn, key, d, at, counters, buffered_total, ts, h);
    }

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

/// Establishes or confirms the connection once both directions are live.
fn confirm<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    counters: &mut ReassemblyCounters,
    ts: Timestamp,
    h: &mut H,
) {
    if conn.trust != Trust::Unconfirmed || !conn.halves.iter().all(|half| half.live) {
        return;
    }
    if conn.halves.iter().all(|half| half.syn_seen) {
        conn.trust = Trust::Established;
        counters.trust.handshakes += 1;
    } else {
        conn.trust = Trust::Confirmed;
        counters.trust.confirmed += 1;
    }
    h.confirmed(&mut conn.state, key, conn.delivered_ts.max(ts));
}

/// Moves `direction` of the connection to `data_seq`, which lies `ahead` bytes (negative:
/// behind) from its next expected byte and outside the window: flushes what is buffered, tells
/// the handler about a gap of that distance (parsers resynchronise), and makes `data_seq` the
/// next expected byte.
#[allow(clippy::too_many_arguments)]
fn resync_half<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    direction: Direction,
    data_seq: u32,
    ahead: i64,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    h: &mut H,
) {
    counters.trust.window_resyncs += 1;
    let ts = conn.last_seen;
    skip_holes(conn, key, counters, buffered_total, ts, h);
    end_skip(conn, key, direction, ts, h);
    let half = &mut conn.halves[direction.index()];
    half.base = Some(data_seq.wrapping_sub(half.delivered as u32));
    half.out_of_window_since = None;
    let ts = conn.delivered_ts.max(ts);
    h.gap(&mut conn.state, key, direction, ahead.unsigned_abs(), ts);
}

/// Delivers every ready piece, in capture order across directions, then any FIN that is due.
fn drain<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    counters: &mut ReassemblyCounters,
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
        // A piece buffered ahead of a chunked range's end: the stream reads the size line
        // there itself.
        leave_chunked_range(conn, key, Direction::ALL[i], h);
        let Some(piece) = conn.halves[i].pop_ready() else {
            break;
        };
        *buffered_total -= piece.data.len();
        end_skip(conn, key, Direction::ALL[i], piece.ts, h);
        conn.delivered_ts = conn.delivered_ts.max(piece.ts);
        h.data(
            &mut conn.state,
            key,
            Direction::ALL[i],
            &piece.data,
            conn.delivered_ts,
        );
        take_skips(conn, key, counters, buffered_total, h);
    }
    for (i, dir) in Direction::ALL.into_iter().enumerate() {
        if conn.halves[i].fin_due() {
            end_skip(conn, key, dir, conn.halves[i].fin_ts, h);
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
        leave_chunked_range(conn, key, Direction::ALL[i], h);
        end_skip(conn, key, Direction::ALL[i], ts, h);
        let ts = conn.delivered_ts.max(ts);
        h.gap(&mut conn.state, key, Direction::ALL[i], len, ts);
    }
    drain(conn, key, counters, buffered_total, h);
    true
}

/// The capture dropped bytes of direction `d` before the segment at offset `at`: the holes
/// before `at` will not fill, so they are declared lost now rather than after a cap or
/// `hole_timeout_ms`. Waiting would only buffer (and copy) both directions behind them.
#[allow(clippy::too_many_arguments)]
fn skip_lost_before<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    d: usize,
    at: u64,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    ts: Timestamp,
    h: &mut H,
) {
    while conn.halves[d].delivered < at {
        let len = conn.halves[d].skip_hole();
        if len == 0 {
            break;
        }
        counters.gaps += 1;
        counters.gap_bytes += len;
        counters.capture_loss_gaps += 1;
        leave_chunked_range(conn, key, Direction::ALL[d], h);
        let ts = conn.delivered_ts.max(ts);
        h.gap(&mut conn.state, key, Direction::ALL[d], len, ts);
        drain(conn, key, counters, buffered_total, h);
    }
}

/// Declares every hole lost and delivers everything buffered.
pub(super) fn skip_holes<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    ts: Timestamp,
    h: &mut H,
) {
    drain(conn, key, counters, buffered_total, h);
    while skip_one_hole(conn, key, counters, buffered_total, ts, h) {}
}

/// After the handler read data: starts the skips it asks for (see
/// [`StreamHandler::take_skip`]) in each direction whose start is known.
fn take_skips<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    h: &mut H,
) {
    for direction in Direction::ALL {
        let Some(base) = conn.halves[direction.index()].base else {
            continue;
        };
        let SkipRequest { len, chunked } = h.take_skip(&mut conn.state, direction);
        if len == 0 && !chunked {
            continue;
        }
        let half = &mut conn.halves[direction.index()];
        let from = base.wrapping_add(half.delivered as u32);
        let dropped = if len > 0 { half.start_skip(len) } else { 0 };
        let to = base.wrapping_add(half.delivered as u32);
        // A piece already buffered at the range's end carries the size line there: the stream
        // reads it itself, so the capture is not to follow the body (see
        // `leave_chunked_range`), and the range is plain, keeping the bytes before its end
        // that have not arrived out of the ring.
        let chunked = chunked && half.ready().is_none();
        let start = ChunkedSkip {
            end: half.delivered,
            chunks: 0,
            data: 0,
        };
        match (chunked, half.chunked.as_deref_mut()) {
            (true, Some(c)) => *c = start,
            (true, None) => half.chunked = Some(Box::new(start)),
            (false, _) => half.chunked = None,
        }
        *buffered_total -= dropped;
        counters.skipped_bytes += len;
        counters.skipped_bytes_arrived += dropped as u64;
        let range = SkipRange {
            direction,
            from,
            to,
            chunked,
        };
        h.skip_started(&mut conn.state, key, range);
    }
}

/// A segment `ahead` bytes past the end of `direction`'s chunked range carries the capture's
/// mark: the capture followed the chunked body up to it. Reports the range's own bytes (if
/// not yet), then the chunks the capture left out, and moves the range's end to the segment.
#[allow(clippy::too_many_arguments)]
fn follow_capture_skip<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    direction: Direction,
    ahead: u64,
    mark: CaptureSkip,
    counters: &mut ReassemblyCounters,
    buffered_total: &mut usize,
    ts: Timestamp,
    h: &mut H,
) {
    end_skip(conn, key, direction, ts, h);
    let half = &mut conn.halves[direction.index()];
    let dropped = half.start_skip(ahead);
    half.skip = None;
    let Some(chunked) = half.chunked.as_deref_mut() else {
        return;
    };
    let skipped = ChunksSkipped {
        wire: ahead,
        data: u64::from(mark.data.wrapping_sub(chunked.data)),
        chunks: u32::from(mark.chunks.wrapping_sub(chunked.chunks)),
    };
    *chunked = ChunkedSkip {
        end: half.delivered,
        chunks: mark.chunks,
        data: mark.data,
    };
    *buffered_total -= dropped;
    counters.skipped_bytes += ahead;
    counters.skipped_bytes_arrived += dropped as u64;
    let ts = conn.delivered_ts.max(ts);
    conn.delivered_ts = ts;
    h.chunks_skipped(&mut conn.state, key, direction, skipped, ts);
}

/// The stream of `direction` passed the end of its chunked range (one is held and ends at or
/// before the next expected byte) by reading payload there or by giving a hole there up as
/// lost: the range becomes plain and empty at the next expected byte, so that no segment
/// sent again into it (a retransmission, or a sender's different copy of the same bytes) has
/// the capture follow size lines from a point the stream has already passed. Following there
/// would leave out bytes the stream expects from the next segment on.
fn leave_chunked_range<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    direction: Direction,
    h: &mut H,
) {
    let half = &mut conn.halves[direction.index()];
    let Some(base) = half.base else { return };
    if !half
        .chunked
        .as_deref()
        .is_some_and(|c| c.end <= half.delivered)
    {
        return;
    }
    half.chunked = None;
    let at = base.wrapping_add(half.delivered as u32);
    let range = SkipRange {
        direction,
        from: at,
        to: at,
        chunked: false,
    };
    h.skip_started(&mut conn.state, key, range);
}

/// The stream of `direction` passed the bytes it skipped on purpose (if any): reports them.
fn end_skip<S, H: StreamHandler<State = S>>(
    conn: &mut Conn<S>,
    key: ConnectionKey,
    direction: Direction,
    ts: Timestamp,
    h: &mut H,
) {
    if let Some(len) = conn.halves[direction.index()].end_skip() {
        let ts = conn.delivered_ts.max(ts);
        conn.delivered_ts = ts;
        h.skipped(&mut conn.state, key, direction, len, ts);
    }
}
