//! Payload userspace does not read: the spans it wrote into [`SKIP`](crate::SKIP), per
//! connection and direction (see `SkipSpan` for the rule). One map lookup per payload segment,
//! with the connection table's key; a chunked span also reads the chunk-size lines the segment
//! carries at the span's end.
use core::{
    ffi::c_void,
    ptr::{read_volatile, write_volatile},
};

use aya_ebpf::helpers::generated::bpf_loop;
use webui_monitor_common::{
    CHUNK_LINE_WINDOW, CaptureStats, MAX_CHUNK_LINES_PER_SEGMENT, SKIP_CHUNKED, SkipSpan, TCP_FIN,
    TCP_RST, TCP_SYN, chunk_line,
};

use crate::{SKIP, packet::Packet, parse::Segment};

/// What the capture sends of a segment with payload after [`apply`].
pub enum Skipped {
    /// The segment as (now) described: all of it, the part from the span's end, or no
    /// payload (a record that marks where the skipped bytes ended, or carries a flag).
    Send,
    /// Nothing: its payload lies inside a span and it marks nothing.
    Nothing,
    /// It started inside a chunked span or at its end, and moved the span, reaches its end or
    /// carries SYN, FIN or RST: a record without payload at the span's end `to`, with the
    /// span's counters (`CHUNK_AFTER_SKIP`), then the segment's payload from `to` on, if it
    /// reaches beyond.
    AfterChunkedSpan { to: u32, chunks: u16, data: u32 },
}

/// Applies the span of `segment`'s connection and direction, if any: follows a chunked body
/// past a chunked span's end, moves the segment's sequence number, payload offset and length
/// past the bytes left out, and counts those bytes.
#[inline(always)]
pub fn apply<P: Packet>(pkt: &P, segment: &mut Segment, stats: &mut CaptureStats) -> Skipped {
    let Some(spans) = SKIP.get_ptr_mut(&segment.key) else {
        return Skipped::Send;
    };
    // SAFETY: a valid entry of the map for the whole program run (the map's elements are
    // preallocated, so the pointer never dangles). Read field by field, written back only by
    // a chunked span's extension. An update racing with either can mix spans userspace wrote
    // and the kernel extended at some point. And an LRU hash hands a replaced element back to
    // its free list at once, where another key may take it: a write-back racing with
    // userspace replacing this connection's entry and another connection's insertion could
    // land in that connection's span. The callback re-reads `from` before each line and stops
    // when it changed, which leaves that race the few instructions between the check and the
    // writes; userspace writes a span only when it reads the head of an unread body.
    let span: *mut SkipSpan = unsafe { &raw mut (*spans).spans[segment.direction as usize & 1] };
    let (from, to, flags) = unsafe {
        (
            read_volatile(&raw const (*span).from),
            read_volatile(&raw const (*span).to),
            read_volatile(&raw const (*span).flags),
        )
    };
    let len = segment.payload_len;
    let start = segment.seq;
    let end = start.wrapping_add(len);
    // Starts inside [from, to), or at `to` for a chunked span (wrap-around-safe).
    let chunked = flags & SKIP_CHUNKED != 0;
    let before_end = to.wrapping_sub(start) as i32;
    if (start.wrapping_sub(from) as i32) < 0 || before_end < 0 || (before_end == 0 && !chunked) {
        return Skipped::Send;
    }
    let (to, mark) = if chunked {
        let (new_to, chunks, data) = follow_chunks(pkt, segment, span, from, to);
        (new_to, Some((new_to != to, chunks, data)))
    } else {
        (to, None)
    };
    // Up to the span's end when the payload goes beyond it, else all of it.
    let crosses = (to.wrapping_sub(end) as i32) < 0;
    let cut = if crosses { to.wrapping_sub(start) } else { len };
    stats.skipped_bytes += cut as u64;
    segment.seq = start.wrapping_add(cut);
    segment.payload_offset += cut;
    segment.payload_len = len - cut;
    let marks_end = crosses || segment.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 || end == to;
    match mark {
        // A span moved by this segment is marked even when the segment ends inside it: a
        // later segment already copied (the network reordered them) may lie in the chunks
        // followed here, and without the mark it would wait for a hole that never fills.
        Some((moved, chunks, data)) if marks_end || moved => {
            Skipped::AfterChunkedSpan { to, chunks, data }
        }
        _ if marks_end => Skipped::Send,
        _ => Skipped::Nothing,
    }
}

/// State shared with [`chunk_callback`] (lives on the program's stack).
struct ChunkFollow<P> {
    pkt: *const P,
    span: *mut SkipSpan,
    /// The span's start when the segment came: a span userspace rewrote since is not followed.
    from: u32,
    /// The segment's first sequence number, payload offset and length.
    start: u32,
    payload_offset: u32,
    payload_len: u32,
    /// The span's end, where a chunk-size line starts, and its counters, as followed.
    to: u32,
    chunks: u16,
    data: u32,
}

/// Follows the chunk-size lines at `to` in `segment` (see `SkipSpan`), moving the span in the
/// map line by line. Returns the span's end and counters. A `bpf_loop`: the verifier checks
/// the line parser once, not once per line.
#[inline(always)]
fn follow_chunks<P: Packet>(
    pkt: &P,
    segment: &Segment,
    span: *mut SkipSpan,
    from: u32,
    to: u32,
) -> (u32, u16, u32) {
    // SAFETY: as in `apply`.
    let (chunks, data) = unsafe {
        (
            read_volatile(&raw const (*span).chunks),
            read_volatile(&raw const (*span).data),
        )
    };
    let mut state = ChunkFollow {
        pkt: pkt as *const P,
        span,
        from,
        start: segment.seq,
        payload_offset: segment.payload_offset,
        payload_len: segment.payload_len,
        to,
        chunks,
        data,
    };
    let state_ptr = (&raw mut state).cast::<c_void>();
    // SAFETY: the callback reads and writes `state` (on this stack frame) during the call.
    unsafe {
        bpf_loop(
            MAX_CHUNK_LINES_PER_SEGMENT,
            chunk_callback::<P> as *mut c_void,
            state_ptr,
            0,
        );
    }
    // SAFETY: written by the callback through a pointer LLVM cannot see.
    unsafe {
        (
            read_volatile(&raw const state.to),
            read_volatile(&raw const state.chunks),
            read_volatile(&raw const state.data),
        )
    }
}

/// Room for one chunk-line window, aligned so that it is zeroed with 64-bit stores.
#[repr(C, align(8))]
struct Window([u8; CHUNK_LINE_WINDOW]);
const _: () = assert!(size_of::<Window>() % 8 == 0);

/// One chunk-size line of [`follow_chunks`]: returns 0 to read the next, 1 to stop.
///
/// The span's end is read from the map, not from `state`: the verifier tracks no values in
/// map memory, so the proof that the load's size is bounded (it marks every value the size
/// came from as precise) stops there, and the chunk sizes parsed before (which the end adds
/// up) stay imprecise: the states of the parser's paths merge.
unsafe extern "C" fn chunk_callback<P: Packet>(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `ChunkFollow<P>` follow_chunks passed, alive for the whole loop.
    let state = unsafe { &mut *ctx.cast::<ChunkFollow<P>>() };
    let pkt = unsafe { &*state.pkt };
    let span = state.span;
    // SAFETY: a valid entry of the map (see `apply`).
    let (from, to) = unsafe {
        (
            read_volatile(&raw const (*span).from),
            read_volatile(&raw const (*span).to),
        )
    };
    if from != state.from {
        return 1;
    }
    let at = to.wrapping_sub(state.start);
    if at >= state.payload_len {
        return 1;
    }
    // Zeroed in place with 64-bit stores (a zeroed value moved here becomes `memset`).
    let mut window = core::mem::MaybeUninit::<Window>::uninit();
    let words = window.as_mut_ptr().cast::<u64>();
    for i in 0..size_of::<Window>() / 8 {
        // SAFETY: in bounds and aligned (the window is 8-aligned, a multiple of 8 long).
        unsafe { write_volatile(words.add(i), 0) };
    }
    // SAFETY: every byte was written.
    let window = unsafe { window.assume_init_mut() };
    // 0 < size ≤ the window, as one unsigned comparison (see `capture::send_class`).
    let below = core::hint::black_box((state.payload_len - at).min(CHUNK_LINE_WINDOW as u32) - 1);
    if below >= CHUNK_LINE_WINDOW as u32 {
        return 1;
    }
    let avail = below + 1;
    // SAFETY: `avail` ≤ the window's bytes.
    let loaded = unsafe { pkt.load_bytes(state.payload_offset + at, window.0.as_mut_ptr(), avail) };
    if loaded.is_err() {
        return 1;
    }
    // The bytes past `avail` stay 0, which ends no line.
    let Some((line, size)) = chunk_line(&window.0) else {
        return 1;
    };
    // Past the line, the chunk's data and the CRLF after it.
    let to = to.wrapping_add(line).wrapping_add(size).wrapping_add(2);
    let chunks = state.chunks.wrapping_add(1);
    let data = state.data.wrapping_add(size);
    // SAFETY: as above.
    unsafe {
        write_volatile(&raw mut (*span).to, to);
        write_volatile(&raw mut (*span).chunks, chunks);
        write_volatile(&raw mut (*span).data, data);
    }
    state.to = to;
    state.chunks = chunks;
    state.data = data;
    0
}
