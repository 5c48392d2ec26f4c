//! What happens to a packet of a monitored connection: counters, then payload chunks.
use core::intrinsics::{AtomicOrdering::Relaxed, atomic_or, atomic_xadd, atomic_xchg};

use core::ffi::c_void;

use core::ptr::read_volatile;

use aya_ebpf::{
    bindings::{BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_ktime_get_coarse_ns, bpf_loop},
};
use aya_log_ebpf::warn;
use webui_monitor_common::{
    CHUNK_DATA_SIZE, CHUNK_LAST, CHUNK_TRUNCATED, CaptureStats, ChunkHeader, ConnStats, LossReason,
    MAX_CHUNKS_PER_SEGMENT, SEEN_FIN, SEEN_RESPONSE_SHIFT, SEEN_RST, SEEN_SYN, TCP_FIN, TCP_RST,
    TCP_SYN,
};

use crate::{
    CHUNKS, CONFIG, CONNECTIONS, LOGGED, RECORD_SCRATCH, SCRATCH_BUSY, STATS,
    packet::Packet,
    parse::{Parsed, Segment, parse},
    zeroed,
};

/// Highest packet offset `bpf_xdp_load_bytes` reads from.
const MAX_LOAD_OFFSET: u32 = 0xffff;

const LOGGED_RING_FULL: u32 = 0x1;
const LOGGED_TRUNCATED: u32 = 0x2;

#[inline(always)]
pub fn on_packet<P: Packet>(pkt: &P) {
    match parse(pkt) {
        Parsed::Ignored => {}
        Parsed::Unparsed => {
            if let Some(stats) = stats() {
                stats.lost_records[LossReason::Unparsed as usize] += 1;
                stats.lost_bytes[LossReason::Unparsed as usize] += pkt.total_len() as u64;
            }
        }
        Parsed::Monitored(segment) => on_segment(pkt, &segment),
    }
}

/// This CPU's counters. Per-CPU memory: plain (non-atomic) updates are exact, since a program
/// runs to completion on its CPU without another program interleaving, except on PREEMPT_RT
/// (see `RECORD_SCRATCH`), where an increment can be lost: atomics on every counter would
/// cost every kernel for the sake of one.
#[inline(always)]
pub fn stats() -> Option<&'static mut CaptureStats> {
    // SAFETY: index 0 exists (max_entries 1); the entry belongs to this CPU.
    STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

#[inline(always)]
fn on_segment<P: Packet>(pkt: &P, segment: &Segment) {
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
    count_connection(stats, segment, dir, seen);

    let control = segment.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST);
    if segment.payload_len == 0 && control == 0 {
        // A bare ACK: counted, nothing for the byte stream.
        return;
    }
    let now = unsafe { bpf_ktime_get_boot_ns() };
    emit_chunks(pkt, stats, segment, now);
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

#[inline(always)]
fn count_connection(stats: &mut CaptureStats, segment: &Segment, dir: usize, now: u64) {
    let bytes = segment.payload_len as u64;
    let bits = seen_bits(segment.tcp_flags, dir);
    if let Some(entry) = CONNECTIONS.get_ptr_mut(&segment.key) {
        update_connection(entry, dir, bytes, bits, now);
        return;
    }
    let mut fresh: ConnStats = zeroed();
    fresh.first_seen_ns = now;
    fresh.last_seen_ns = now;
    fresh.flags = bits;
    fresh.packets[dir] = 1;
    fresh.bytes[dir] = bytes;
    if CONNECTIONS
        .insert(&segment.key, &fresh, BPF_NOEXIST as u64)
        .is_ok()
    {
        stats.connections += 1;
    } else if let Some(entry) = CONNECTIONS.get_ptr_mut(&segment.key) {
        // Another CPU inserted it between our lookup and insert.
        update_connection(entry, dir, bytes, bits, now);
    }
}

#[inline(always)]
fn update_connection(entry: *mut ConnStats, dir: usize, bytes: u64, bits: u64, now: u64) {
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
}

/// Splits the segment into chunk records with `bpf_loop`: the verifier checks the loop body
/// once instead of once per iteration (an unrolled 34-iteration loop exceeds its budget).
#[inline(always)]
fn emit_chunks<P: Packet>(pkt: &P, stats: &mut CaptureStats, segment: &Segment, now: u64) {
    let payload_len = segment.payload_len;
    let mut chunks = payload_len.div_ceil(CHUNK_DATA_SIZE as u32).max(1);
    let mut truncated = false;
    if chunks > MAX_CHUNKS_PER_SEGMENT as u32 {
        // Larger than any non-jumbo IP packet (BIG TCP): keep the stream's loss visible.
        chunks = MAX_CHUNKS_PER_SEGMENT as u32;
        truncated = true;
        let cut = payload_len - (MAX_CHUNKS_PER_SEGMENT * CHUNK_DATA_SIZE) as u32;
        stats.lost_records[LossReason::Truncated as usize] += 1;
        stats.lost_bytes[LossReason::Truncated as usize] += cut as u64;
        log_once(pkt, LOGGED_TRUNCATED);
    }
    let mut state = ChunkLoop {
        pkt: pkt as *const P,
        segment: segment as *const Segment,
        now,
        chunks,
        truncated,
    };
    let state_ptr = (&raw mut state).cast::<c_void>();
    if chunks == 1 {
        // The common case (a segment up to one chunk, e.g. every full-MTU segment): no loop.
        // SAFETY: as below.
        unsafe { chunk_callback::<P>(0, state_ptr) };
        return;
    }
    // SAFETY: the callback only reads `state` (on this stack frame) during the call.
    unsafe {
        bpf_loop(chunks, chunk_callback::<P> as *mut c_void, state_ptr, 0);
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
    }
    if last {
        chunk_flags |= CHUNK_LAST;
        tcp_flags |= segment.tcp_flags & (TCP_FIN | TCP_RST);
        if state.truncated {
            chunk_flags |= CHUNK_TRUNCATED;
        }
    }
    submit_chunk(
        pkt,
        stats,
        segment,
        state.now,
        offset,
        len,
        tcp_flags,
        chunk_flags,
    );
    if last { 1 } else { 0 }
}

/// Sends one chunk as a ring record, holding this CPU's scratch entry meanwhile (see
/// `SCRATCH_BUSY`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn submit_chunk<P: Packet>(
    pkt: &P,
    stats: &mut CaptureStats,
    segment: &Segment,
    now: u64,
    offset: u32,
    len: u32,
    tcp_flags: u8,
    chunk_flags: u8,
) {
    let busy = SCRATCH_BUSY.get_ptr_mut(0);
    // SAFETY: this CPU's entry. The exchange is atomic with respect to a program preempting
    // this one on the same CPU, the only other writer.
    let Some(busy) = busy.filter(|&busy| unsafe { atomic_xchg::<u64, { Relaxed }>(busy, 1) } == 0)
    else {
        stats.lost_records[LossReason::ScratchBusy as usize] += 1;
        stats.lost_bytes[LossReason::ScratchBusy as usize] += len as u64;
        return;
    };
    build_and_send(
        pkt,
        stats,
        segment,
        now,
        offset,
        len,
        tcp_flags,
        chunk_flags,
    );
    // SAFETY: as above; only this program set it.
    unsafe { core::ptr::write_volatile(busy, 0) };
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn build_and_send<P: Packet>(
    pkt: &P,
    stats: &mut CaptureStats,
    segment: &Segment,
    now: u64,
    offset: u32,
    len: u32,
    tcp_flags: u8,
    chunk_flags: u8,
) {
    // The record is built in this CPU's scratch entry and copied to the ring with its exact
    // length (see `RECORD_SCRATCH`).
    let Some(record) = RECORD_SCRATCH.get_ptr_mut(0) else {
        // Index 0 of a one-entry array: unreachable, but a loss must never go uncounted.
        stats.lost_records[LossReason::ScratchBusy as usize] += 1;
        stats.lost_bytes[LossReason::ScratchBusy as usize] += len as u64;
        return;
    };
    // SAFETY: this CPU's entry, which no other program uses until this one returns.
    unsafe {
        (&raw mut (*record).header).write(ChunkHeader {
            timestamp_ns: now,
            key: segment.key,
            seq: segment.seq.wrapping_add(offset),
            len: len as u16,
            direction: segment.direction,
            tcp_flags,
            chunk_flags,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        });
    }
    // The verifier needs `len <= CHUNK_DATA_SIZE` proven on the register passed to the helpers.
    // Without the black box LLVM folds the check into comparisons on `payload_len` and
    // `offset` that the verifier cannot relate to `len`; 64-bit, so the bound is not checked
    // on a zero-extended copy the verifier cannot link back either.
    let copy_len = core::hint::black_box(len as u64);
    // Longer than a chunk: only a full last chunk moved back from beyond 0xffff (see
    // `chunk_callback`), which only a segment already cut at MAX_CHUNKS_PER_SEGMENT has.
    let copied = copy_len <= CHUNK_DATA_SIZE as u64
        && (copy_len == 0 || {
            let dst = unsafe { (&raw mut (*record).data).cast::<u8>() };
            unsafe { pkt.load_bytes(segment.payload_offset + offset, dst, copy_len as u32) }.is_ok()
        });
    // The bound again: the record's size below is computed from `copy_len`, and the verifier
    // must see it bounded on this path whatever LLVM makes of `copied`.
    if !copied || copy_len > CHUNK_DATA_SIZE as u64 {
        stats.lost_records[LossReason::Truncated as usize] += 1;
        stats.lost_bytes[LossReason::Truncated as usize] += len as u64;
        return;
    }
    let size = size_of::<ChunkHeader>() + copy_len as usize;
    // SAFETY: `size` ≤ size_of::<ChunkRecord>() (checked above), and all of it was written.
    let bytes = unsafe { core::slice::from_raw_parts(record.cast::<u8>(), size) };
    if !output_record(stats, bytes, len) {
        log_once(pkt, LOGGED_RING_FULL);
    }
}

/// Copies one record to the ring (waking the reader as [`wakeup_flag`] says) and counts it,
/// or counts its `payload_len` bytes as lost to a full ring. Returns whether it was sent.
#[inline(always)]
pub fn output_record(stats: &mut CaptureStats, bytes: &[u8], payload_len: u32) -> bool {
    if CHUNKS
        .output(bytes, wakeup_flag(bytes.len() as u64))
        .is_err()
    {
        stats.lost_records[LossReason::RingFull as usize] += 1;
        stats.lost_bytes[LossReason::RingFull as usize] += payload_len as u64;
        return false;
    }
    stats.records += 1;
    true
}

/// Whether a record of `size` bytes wakes the reader: the record that takes the unread part
/// of the ring across `CONFIG.wakeup_bytes` does, no other (see `Config::wakeup_bytes`).
///
/// Without a flag the kernel wakes the reader whenever it had read everything
/// (`bpf_ringbuf_commit()` in kernel/bpf/ringbuf.c), which for a reader that keeps up is
/// nearly every record. Waking on every record above the threshold instead would raise an
/// interrupt per record exactly when the reader is busiest. CPUs racing across the threshold
/// may both wake it, or (reading stale positions) neither: the reader's `drain_interval`
/// bounds the delay then.
#[inline(always)]
fn wakeup_flag(size: u64) -> u64 {
    // SAFETY: plain data in .rodata (see `direction_of` for why volatile).
    let threshold = unsafe { read_volatile(&raw const CONFIG.wakeup_bytes) } as u64;
    let unread = CHUNKS.query(BPF_RB_AVAIL_DATA as u64);
    // What the record takes of the ring: its 8-byte header, rounded up to 8
    // (`__bpf_ringbuf_reserve()`).
    let taken = (size + 8 + 7) & !7;
    if unread < threshold && unread + taken >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Logs a loss the first time it happens on this CPU: aya-log costs far more than the capture
/// itself, so it must stay off the per-packet path.
#[cold]
#[inline(never)]
fn log_once<P: Packet>(pkt: &P, what: u32) {
    let Some(logged) = LOGGED.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU entry of this CPU.
    let logged = unsafe { &mut *logged };
    if *logged & what != 0 {
        return;
    }
    *logged |= what;
    if what == LOGGED_RING_FULL {
        warn!(
            pkt,
            "ring buffer full: records lost (counted in webui_monitor_capture_lost_total); \
             a larger ring or a faster consumer is needed"
        );
    } else {
        warn!(
            pkt,
            "segment larger than the chunks a segment may use: bytes truncated (counted)"
        );
    }
}
