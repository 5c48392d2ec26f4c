//! What happens to a packet of a monitored connection: counters, then payload records.
//!
//! # Staying far from the verifier's limits
//!
//! The verifier walks every path through a program once per distinct register state it cannot
//! prune, and a static subprogram once per call site state. Three rules keep the walk short on
//! every kernel (the budget is checked by `tests/tests/verifier_budget.rs`):
//!
//! * Nothing here logs: a loss is a counter, and the daemon logs when a counter first moves.
//!   (A logging helper writes a message byte by byte and sits on every path that can lose.)
//! * Records are reserved in the ring in a few constant size classes and the payload is
//!   loaded straight into them: `bpf_ringbuf_reserve` takes constant sizes only, and one
//!   reservation per class is a short straight path.
//! * No construct lowers to `memset` or `memcpy`: on BPF those become calls into a byte loop
//!   that the verifier walks byte by byte (a test checks the object for them).
use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering::Relaxed, atomic_or, atomic_xadd},
    ptr::{read_volatile, write_volatile},
};

use aya_ebpf::{
    bindings::{BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_ktime_get_coarse_ns, bpf_loop},
};
use webui_monitor_common::{
    CHUNK_AFTER_LOSS, CHUNK_AFTER_SKIP, CHUNK_DATA_SIZE, CHUNK_LAST, CHUNK_TRUNCATED, CaptureStats,
    ChunkHeader, ConnKey, ConnStats, LossReason, MAX_CHUNKS_PER_SEGMENT, RECORD_CLASSES, SEEN_FIN,
    SEEN_RESPONSE_SHIFT, SEEN_RST, SEEN_SYN, TCP_FIN, TCP_RST, TCP_SYN,
};

use crate::{
    CHUNKS, CONFIG, CONNECTIONS, STATS,
    packet::Packet,
    parse::{Parsed, Segment, parse},
    skip::{self, Skipped},
    zeroed,
};

/// Highest packet offset `bpf_xdp_load_bytes` reads from.
const MAX_LOAD_OFFSET: u32 = 0xffff;

#[inline(always)]
pub fn on_packet<P: Packet>(pkt: &P) {
    match parse(pkt) {
        Parsed::Ignored => {}
        Parsed::Unparsed => {
            if let Some(stats) = stats() {
                count_loss(stats, LossReason::Unparsed, pkt.total_len());
            }
        }
        Parsed::Monitored(mut segment) => on_segment(pkt, &mut segment),
    }
}

/// This CPU's counters. Per-CPU memory: plain (non-atomic) updates are exact, since a program
/// runs to completion on its CPU without another program interleaving, except on PREEMPT_RT,
/// where since 6.18 disabling bottom halves no longer excludes other tasks unless
/// `CONFIG_PREEMPT_RT_NEEDS_BH_LOCK` is set (kernel/softirq.c) and an increment can be lost:
/// atomics on every counter would cost every kernel for the sake of one.
#[inline(always)]
pub fn stats() -> Option<&'static mut CaptureStats> {
    // SAFETY: index 0 exists (max_entries 1); the entry belongs to this CPU.
    STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

#[inline(always)]
fn count_loss(stats: &mut CaptureStats, reason: LossReason, bytes: u32) {
    stats.lost_records[reason as usize] += 1;
    stats.lost_bytes[reason as usize] += bytes as u64;
}

#[inline(always)]
fn on_segment<P: Packet>(pkt: &P, segment: &mut Segment) {
    let dir = segment.direction as usize & 1;
    let Some(stats) = stats() else { return };
    stats.packets[dir] += 1;
    stats.bytes[dir] += segment.payload_len as u64;
    // The connection table only needs to know when a connection was last active, to the
    // jiffy. `bpf_ktime_get_coarse_ns()` reads the timekeeper's last tick; the precise clock
    // reads the clocksource, which costs more than half a bare ACK's budget on a KVM guest
    // (docs/benchmarks-kernel.md). Records, whose timestamps time requests, take the precise
    // clock.
    let seen = unsafe { bpf_ktime_get_coarse_ns() };
    let loss_flag = count_connection(stats, segment, dir, seen);

    let control = segment.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST);
    if segment.payload_len == 0 && control == 0 {
        // A bare ACK: counted, nothing for the byte stream. It carries no record, so the loss
        // mark `count_connection` took goes back for the next record: without it reassembly
        // waits for the lost bytes until a cap or `hole_timeout_ms` (a lost request record is
        // followed by the client's ACKs of the answer, not by its next request).
        if loss_flag != 0 {
            mark_lost(&segment.key, segment.direction);
        }
        return;
    }
    // SAFETY: plain data in .rodata (see `parse::direction_of` for why volatile).
    let skipping = unsafe { read_volatile(&raw const CONFIG.skip) } != 0;
    let mut loss_flag = loss_flag;
    if skipping && segment.payload_len != 0 {
        match skip::apply(pkt, segment, stats) {
            Skipped::Send => {}
            Skipped::Nothing => {
                if loss_flag != 0 {
                    // No record carries the mark: the next one must.
                    mark_lost(&segment.key, segment.direction);
                }
                return;
            }
            Skipped::AfterChunkedSpan { to, chunks, data } => {
                // SAFETY: a helper without arguments, callable from any program type.
                let now = unsafe { bpf_ktime_get_boot_ns() };
                let only = segment.payload_len == 0;
                let mark = SkipMark { to, chunks, data };
                send_skip_mark(pkt, stats, segment, now, loss_flag, only, mark);
                if only {
                    return;
                }
                // The mark carried the loss flag (or, lost itself, put it back).
                loss_flag = 0;
            }
        }
    }
    // SAFETY: a helper without arguments, callable from any program type.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if segment.payload_len <= CHUNK_DATA_SIZE as u32 {
        send_segment(pkt, stats, segment, now, loss_flag);
    } else {
        emit_chunks(pkt, stats, segment, now, loss_flag);
    }
}

/// A segment that fits one chunk (every segment of a 1,500-byte MTU, and most of any NIC's
/// without GSO) as one record, without [`emit_chunks`]' loop: no `bpf_loop` call, no call
/// into its callback, no second lookup of the per-CPU counters (docs/benchmarks-kernel.md).
#[inline(always)]
fn send_segment<P: Packet>(
    pkt: &P,
    stats: &mut CaptureStats,
    segment: &Segment,
    now: u64,
    loss_flag: u8,
) {
    // The first and the last chunk at once: every flag, and nothing truncated.
    let header = ChunkHeader {
        timestamp_ns: now,
        key: segment.key,
        seq: segment.seq,
        len: segment.payload_len as u16,
        direction: segment.direction,
        tcp_flags: segment.tcp_flags,
        chunk_flags: CHUNK_LAST | loss_flag,
        _pad0: 0,
        skip_chunks: 0,
        skip_data: 0,
    };
    if !send_chunk(
        pkt,
        stats,
        &header,
        segment.payload_offset,
        segment.payload_len,
    ) {
        mark_lost(&segment.key, segment.direction);
    }
}

/// A chunked skip span's end and counters (see `SkipSpan`).
struct SkipMark {
    to: u32,
    chunks: u16,
    data: u32,
}

/// The record a segment that started inside a chunked skip span (or at its end) sends first:
/// no payload, at the span's end, with [`CHUNK_AFTER_SKIP`] and the span's counters. A record
/// of its own rather than fields of the payload's first record: the payload paths stay as
/// they are without skipping, and the verifier walks them as often. `only`: the segment sends
/// nothing else, so the mark carries its flags.
#[inline(always)]
fn send_skip_mark<P: Packet>(
    pkt: &P,
    stats: &mut CaptureStats,
    segment: &Segment,
    now: u64,
    loss_flag: u8,
    only: bool,
    mark: SkipMark,
) {
    let (tcp_flags, last) = if only {
        (segment.tcp_flags, CHUNK_LAST)
    } else {
        (segment.tcp_flags & !(TCP_SYN | TCP_FIN | TCP_RST), 0)
    };
    let header = ChunkHeader {
        timestamp_ns: now,
        key: segment.key,
        seq: mark.to,
        len: 0,
        direction: segment.direction,
        tcp_flags,
        chunk_flags: CHUNK_AFTER_SKIP | last | loss_flag,
        _pad0: 0,
        skip_chunks: mark.chunks,
        skip_data: mark.data,
    };
    if !send_chunk(pkt, stats, &header, segment.payload_offset, 0) {
        mark_lost(&segment.key, segment.direction);
    }
}

#[inline(always)]
fn seen_bits(tcp_flags: u8, dir: usize) -> u64 {
    let mut bits = 0;
    if tcp_flags & TCP_SYN != 0 {
        bits |= SEEN_SYN;
    }
    if tcp_flags & TCP_FIN != 0 {
        bits |= SEEN_FIN;
    }
    if tcp_flags & TCP_RST != 0 {
        bits |= SEEN_RST;
    }
    bits << (dir as u64 * SEEN_RESPONSE_SHIFT)
}

/// Counts the segment in its connection's entry (inserting it). Returns [`CHUNK_AFTER_LOSS`]
/// when the capture dropped bytes of this direction since its last record (see
/// `ConnStats::lost`; the mark is cleared: this segment's first record carries it, and a
/// segment that makes no record puts it back), else 0.
///
/// A flag value rather than a bool: it is only ORed into a header, never branched on, so the
/// verifier need not tell its values apart and merges the states that differ in it.
#[inline(always)]
fn count_connection(stats: &mut CaptureStats, segment: &Segment, dir: usize, now: u64) -> u8 {
    let bytes = segment.payload_len as u64;
    let bits = seen_bits(segment.tcp_flags, dir);
    if let Some(entry) = CONNECTIONS.get_ptr_mut(&segment.key) {
        return update_connection(entry, dir, bytes, bits, now);
    }
    // Every field written by value: no zeroing pass that LLVM could turn into `memset`.
    let request = (dir ^ 1) as u64;
    let response = dir as u64;
    let fresh = ConnStats {
        packets: [request, response],
        bytes: [bytes * request, bytes * response],
        first_seen_ns: now,
        last_seen_ns: now,
        flags: bits,
        // A constant zero here merges with the stores around it into `memset`.
        lost: core::hint::black_box([0, 0]),
    };
    if CONNECTIONS
        .insert(&segment.key, &fresh, BPF_NOEXIST as u64)
        .is_ok()
    {
        stats.connections += 1;
        0
    } else if let Some(entry) = CONNECTIONS.get_ptr_mut(&segment.key) {
        // Another CPU inserted it between our lookup and insert.
        update_connection(entry, dir, bytes, bits, now)
    } else {
        0
    }
}

#[inline(always)]
fn update_connection(entry: *mut ConnStats, dir: usize, bytes: u64, bits: u64, now: u64) -> u8 {
    // Several CPUs update one connection (RSS queues, both directions): atomic adds keep the
    // counters exact.
    // (`core::sync::atomic` has no read-modify-write operations on the BPF target; the
    // intrinsics lower to BPF_ATOMIC instructions.)
    unsafe {
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*entry).packets[dir], 1);
        if bytes != 0 {
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*entry).bytes[dir], bytes);
        }
        if bits != 0 {
            atomic_or::<u64, u64, { Relaxed }>(&raw mut (*entry).flags, bits);
        }
        (*entry).last_seen_ns = now;
        // Read first: the store (and its cache line's ownership) only when a loss was marked.
        let lost = &raw mut (*entry).lost[dir];
        if read_volatile(lost) != 0 {
            write_volatile(lost, 0);
            return CHUNK_AFTER_LOSS;
        }
    }
    0
}

/// Marks `key`'s direction as having lost bytes (see `ConnStats::lost`). Only on the loss
/// paths, which are rare except when the ring is full, where a lookup costs less than the copy
/// that did not happen.
#[inline(always)]
fn mark_lost(key: &ConnKey, direction: u8) {
    if let Some(entry) = CONNECTIONS.get_ptr_mut(key) {
        // SAFETY: a valid entry of the map; a plain store of a flag (see `ConnStats::lost`).
        unsafe { write_volatile(&raw mut (*entry).lost[direction as usize & 1], 1) };
    }
}

/// State shared with [`chunk_callback`] (lives on the program's stack).
struct ChunkLoop<P> {
    pkt: *const P,
    segment: *const Segment,
    now: u64,
    /// Chunks to emit (≥ 1, ≤ MAX_CHUNKS_PER_SEGMENT).
    chunks: u32,
    /// The segment had more payload than `chunks` chunks hold.
    truncated: bool,
    /// [`CHUNK_AFTER_LOSS`] when bytes of this direction were dropped before this segment
    /// (its first chunk says so), else 0.
    loss_flag: u8,
    /// Set by the callback when a chunk was lost (the connection is marked after the loop:
    /// one map lookup outside the loop body, which the verifier walks per call site state).
    lost: bool,
}

/// Splits a segment larger than one chunk (a GSO or GRO super-packet, up to 64 KB on
/// loopback) into chunk records with `bpf_loop`: the verifier checks the loop body as one
/// subprogram instead of once per iteration (an unrolled 34-iteration loop exceeds its
/// budget).
#[inline(always)]
fn emit_chunks<P: Packet>(
    pkt: &P,
    stats: &mut CaptureStats,
    segment: &Segment,
    now: u64,
    loss_flag: u8,
) {
    let payload_len = segment.payload_len;
    let mut chunks = payload_len.div_ceil(CHUNK_DATA_SIZE as u32).max(1);
    let mut truncated = false;
    if chunks > MAX_CHUNKS_PER_SEGMENT as u32 {
        // Larger than any non-jumbo IP packet (BIG TCP): keep the stream's loss visible.
        chunks = MAX_CHUNKS_PER_SEGMENT as u32;
        truncated = true;
        let cut = payload_len - (MAX_CHUNKS_PER_SEGMENT * CHUNK_DATA_SIZE) as u32;
        count_loss(stats, LossReason::Truncated, cut);
    }
    let mut state = ChunkLoop {
        pkt: pkt as *const P,
        segment: segment as *const Segment,
        now,
        chunks,
        truncated,
        loss_flag,
        lost: false,
    };
    let state_ptr = (&raw mut state).cast::<c_void>();
    // SAFETY: the callback reads `state` (on this stack frame) and writes only its `lost`,
    // during the call.
    unsafe {
        bpf_loop(chunks, chunk_callback::<P> as *mut c_void, state_ptr, 0);
    }
    // SAFETY: written by the callback through a pointer LLVM cannot see.
    if truncated || unsafe { read_volatile(&raw const state.lost) } {
        mark_lost(&segment.key, segment.direction);
    }
}

/// One iteration of [`emit_chunks`]: returns 0 to continue, 1 to stop.
unsafe extern "C" fn chunk_callback<P: Packet>(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `ChunkLoop<P>` emit_chunks passed, alive for the whole loop.
    let state = unsafe { &*ctx.cast::<ChunkLoop<P>>() };
    let (pkt, segment) = unsafe { (&*state.pkt, &*state.segment) };
    let Some(stats) = stats() else { return 1 };
    let index = index as u32;
    if index >= state.chunks {
        return 1;
    }
    let offset = index * CHUNK_DATA_SIZE as u32;
    if offset > segment.payload_len {
        return 1;
    }
    let remaining = segment.payload_len - offset;
    let mut len = remaining.min(CHUNK_DATA_SIZE as u32);
    let last = index + 1 == state.chunks;
    // bpf_xdp_load_bytes() refuses offsets above 0xffff (`bpf_xdp_pointer()` in
    // net/core/filter.c), and the last bytes of a 64 KB loopback frame lie beyond: the IP
    // packet may be 65,535 bytes long, the frame adds the Ethernet header. Such a last chunk
    // is moved back to start at 0xffff and the chunk before it shortened by as much; the
    // shift is at most the Ethernet header's length, far less than a chunk.
    let mut offset = offset;
    let absolute = segment.payload_offset + offset;
    if last && absolute > MAX_LOAD_OFFSET {
        let shift = absolute - MAX_LOAD_OFFSET;
        offset -= shift;
        len += shift;
    } else if index + 2 == state.chunks {
        let next = absolute + CHUNK_DATA_SIZE as u32;
        if next > MAX_LOAD_OFFSET {
            len -= next - MAX_LOAD_OFFSET;
        }
    }
    let mut chunk_flags = 0;
    let mut tcp_flags = segment.tcp_flags & !(TCP_SYN | TCP_FIN | TCP_RST);
    if index == 0 {
        tcp_flags |= segment.tcp_flags & TCP_SYN;
        chunk_flags |= state.loss_flag;
    }
    if last {
        chunk_flags |= CHUNK_LAST;
        tcp_flags |= segment.tcp_flags & (TCP_FIN | TCP_RST);
        if state.truncated {
            chunk_flags |= CHUNK_TRUNCATED;
        }
    }
    let header = ChunkHeader {
        timestamp_ns: state.now,
        key: segment.key,
        seq: segment.seq.wrapping_add(offset),
        len: len as u16,
        direction: segment.direction,
        tcp_flags,
        chunk_flags,
        _pad0: 0,
        skip_chunks: 0,
        skip_data: 0,
    };
    if !send_chunk(pkt, stats, &header, segment.payload_offset + offset, len) {
        // SAFETY: as above; the loop's state is written only here, read after the loop.
        unsafe { write_volatile(&raw mut (*ctx.cast::<ChunkLoop<P>>()).lost, true) };
    }
    if last { 1 } else { 0 }
}

/// A ring record of one size class: the header and room for `N` payload bytes, of which the
/// header's `len` are valid (userspace reads `len`, the ring says how much room there was).
#[repr(C)]
struct ClassRecord<const N: usize> {
    header: ChunkHeader,
    data: [u8; N],
}

/// Sends `len` payload bytes at packet offset `at` (`len` ≤ [`CHUNK_DATA_SIZE`], checked)
/// with `header` in the smallest size class that holds them; false when they were lost
/// (counted).
#[inline(always)]
fn send_chunk<P: Packet>(
    pkt: &P,
    stats: &mut CaptureStats,
    header: &ChunkHeader,
    at: u32,
    len: u32,
) -> bool {
    const { assert!(RECORD_CLASSES.len() == 7 && RECORD_CLASSES[6] == CHUNK_DATA_SIZE) };
    let fits = |class: usize| len <= RECORD_CLASSES[class] as u32;
    let sent = if len == 0 {
        send_class::<P, { RECORD_CLASSES[0] }>(pkt, header, at)
    } else if fits(1) {
        send_class::<P, { RECORD_CLASSES[1] }>(pkt, header, at)
    } else if fits(2) {
        send_class::<P, { RECORD_CLASSES[2] }>(pkt, header, at)
    } else if fits(3) {
        send_class::<P, { RECORD_CLASSES[3] }>(pkt, header, at)
    } else if fits(4) {
        send_class::<P, { RECORD_CLASSES[4] }>(pkt, header, at)
    } else if fits(5) {
        send_class::<P, { RECORD_CLASSES[5] }>(pkt, header, at)
    } else {
        send_class::<P, { RECORD_CLASSES[6] }>(pkt, header, at)
    };
    match sent {
        Ok(()) => {
            stats.records += 1;
            true
        }
        Err(reason) => {
            count_loss(stats, reason, len);
            false
        }
    }
}

/// Reserves a record of class `N`, writes `header`, loads its `len` payload bytes from packet
/// offset `at` straight into it and submits it; or says why it could not.
#[inline(always)]
fn send_class<P: Packet, const N: usize>(
    pkt: &P,
    header: &ChunkHeader,
    at: u32,
) -> Result<(), LossReason> {
    let Some(mut entry) = CHUNKS.reserve::<ClassRecord<N>>(0) else {
        return Err(LossReason::RingFull);
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is this program's own reservation, large enough for a ClassRecord<N>.
    unsafe { copy_words(&raw mut (*record).header, header) };
    if N > 0 {
        // The size passed to the helper is read back from the reservation: the verifier
        // tracks no values in ring memory, so the size it must prove 0 < size ≤ N for (6.1
        // refuses a size that may be 0) is a fresh unknown that the checks below bound.
        // Taken from the registers instead, the proof would mark every value it came from
        // — the payload length, and through it every header length the parser added up —
        // as precise, and the verifier could not merge the states of the parser's paths
        // (VLAN tags, IP options, IPv6 extension headers) for the rest of the program.
        // SAFETY: the header was written just above.
        let len_field = u64::from(unsafe { read_volatile(&raw const (*record).header.len) });
        // 0 < size ≤ N as one unsigned comparison of `size - 1` and an addition after it:
        // every verifier follows that on one register (6.1 learns nothing from `size != 0`).
        // The black box keeps LLVM from folding `size - 1 + 1` back into the unchecked value.
        let below = core::hint::black_box(len_field.wrapping_sub(1));
        let loaded = below < N as u64 && {
            let size = below + 1;
            // SAFETY: 0 < `size` ≤ N bytes of the reservation's data.
            let dst = unsafe { (&raw mut (*record).data).cast::<u8>() };
            unsafe { pkt.load_bytes(at, dst, size as u32) }.is_ok()
        };
        if !loaded {
            entry.discard(BPF_RB_NO_WAKEUP as u64);
            return Err(LossReason::Truncated);
        }
    }
    entry.submit(wakeup_flag(size_of::<ClassRecord<N>>() as u64));
    Ok(())
}

/// Copies a `T` with 64-bit volatile loads and stores. A plain copy of a value LLVM can see
/// through (zeros, constants) becomes a `memset` or `memcpy` call on BPF, a byte loop the
/// verifier walks byte by byte.
///
/// # Safety
/// `dst` must be valid for writes of a `T`.
#[inline(always)]
unsafe fn copy_words<T>(dst: *mut T, src: &T) {
    const { assert!(size_of::<T>() % 8 == 0 && align_of::<T>() >= 8) };
    let (dst, src) = (dst.cast::<u64>(), (src as *const T).cast::<u64>());
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: in bounds of both (size asserted above), aligned to 8.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
}

/// Whether the record just reserved (of `size` bytes) wakes the reader: the record that took
/// the unread part of the ring across `CONFIG.wakeup_bytes` does, no other (see
/// `Config::wakeup_bytes`).
///
/// Without a flag the kernel wakes the reader whenever it had read everything
/// (`bpf_ringbuf_commit()` in kernel/bpf/ringbuf.c), which for a reader that keeps up is
/// nearly every record. Waking on every record above the threshold instead would raise an
/// interrupt per record exactly when the reader is busiest. CPUs racing across the threshold
/// may both wake it, or (reading stale positions) neither: the reader's `drain_interval`
/// bounds the delay then.
#[inline(always)]
fn wakeup_flag(size: u64) -> u64 {
    // SAFETY: plain data in .rodata (see `parse::direction_of` for why volatile).
    let threshold = unsafe { read_volatile(&raw const CONFIG.wakeup_bytes) } as u64;
    // Producer minus consumer position: the reservation already counts.
    let unread = CHUNKS.query(BPF_RB_AVAIL_DATA as u64);
    // What the record takes of the ring: its 8-byte header, rounded up to 8
    // (`__bpf_ringbuf_reserve()`).
    let taken = (size + 8 + 7) & !7;
    if unread >= threshold && unread < threshold + taken {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// The benchmark's reference: the ring copy alone. One record of the class a full-MTU segment
/// takes, its payload loaded from the packet at the offset of an Ethernet + IPv4 + TCP frame
/// without options, submitted as the capture program submits: what a monitored 1,448-byte
/// packet costs beyond parsing and counting.
#[inline(always)]
pub fn bench_ring_copy<P: Packet>(pkt: &P) {
    const PAYLOAD_OFFSET: u32 = 14 + 20 + 20;
    let Some(stats) = stats() else { return };
    let total = pkt.total_len();
    if total <= PAYLOAD_OFFSET {
        return;
    }
    let mut header: ChunkHeader = zeroed();
    header.len = (total - PAYLOAD_OFFSET) as u16;
    header.chunk_flags = CHUNK_LAST;
    send_chunk(pkt, stats, &header, PAYLOAD_OFFSET, total - PAYLOAD_OFFSET);
}
