//! `#[repr(C)]` types shared by the eBPF programs and the daemon.
//!
//! Every type here crosses the kernel/user boundary, so the layouts are fixed: fields are
//! naturally aligned, padding is explicit (and zeroed by the kernel side, because [`ConnKey`] is
//! a hash key), and the sizes are asserted at compile time. [`wire`] holds the header layouts
//! and walk limits the kernel parser and the replay dissector share.
#![no_std]

pub mod wire;

/// Maximum number of monitored TCP ports (the size of [`Config::ports`]).
pub const MAX_PORTS: usize = 16;

/// Most TCP payload bytes one ring record carries: 2 KiB with the header. A full-MTU segment
/// (1,448 payload bytes) takes one record, a 64 KB loopback GSO segment 34.
pub const CHUNK_DATA_SIZE: usize = 2048 - core::mem::size_of::<ChunkHeader>();

/// Payload room of the ring record size classes, smallest first.
///
/// `bpf_ringbuf_reserve` takes constant sizes only, so a chunk goes into the smallest class
/// that holds it and the kernel loads its payload straight into the reservation: no scratch
/// copy, and a small chunk takes little ring. With the header, the classes are 64, 128, 256,
/// 512, 1,024, 1,536 and 2,048 bytes: a full-MTU segment (1,448 bytes) fits 1,536, a bare FIN
/// 64. A record is a [`ChunkHeader`] followed by the class's room, of which the header's `len`
/// bytes are payload.
pub const RECORD_CLASSES: [usize; 7] = [0, 64, 192, 448, 960, 1472, CHUNK_DATA_SIZE];

/// Most chunks one segment is split into: enough for the largest non-jumbo IP packet (65,535
/// bytes of IP payload). Bytes beyond are counted as [`LossReason::Truncated`].
pub const MAX_CHUNKS_PER_SEGMENT: usize = 65_535_usize.div_ceil(CHUNK_DATA_SIZE);

/// Name of the global holding [`Config`] in the eBPF object (written by the loader).
pub const CONFIG_SYMBOL: &str = "CONFIG";
/// Name of the ring buffer map carrying the chunk records (see [`RECORD_CLASSES`]).
pub const RING_MAP: &str = "CHUNKS";
/// Name of the LRU hash of per-connection [`ConnStats`].
pub const CONNECTIONS_MAP: &str = "CONNECTIONS";
/// Name of the LRU hash of payload ranges not to copy ([`ConnKey`] → [`SkipSpans`]).
pub const SKIP_MAP: &str = "SKIP";
/// Name of the per-CPU array (one entry) of [`CaptureStats`].
pub const STATS_MAP: &str = "STATS";
/// Name of the XDP program (ingress; on `lo` the only one).
pub const XDP_PROGRAM: &str = "webui_monitor_ingress";
/// Name of the TC program (egress, attached through tcx).
pub const TC_PROGRAM: &str = "webui_monitor_egress";
/// Name of the trivial XDP program used as the benchmark baseline.
pub const BASELINE_PROGRAM: &str = "webui_monitor_baseline";
/// Name of the benchmark's reference XDP program that only copies one full-MTU payload into
/// the ring (never attached).
pub const BENCH_RING_COPY_PROGRAM: &str = "webui_monitor_bench_ring_copy";

/// Configuration the loader writes into the object's read-only data before loading.
///
/// Because it lives in `.rodata`, the verifier sees the values as constants and prunes the unused
/// port slots from the monitored-port check.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Monitored server ports; only the first `port_count` entries count.
    pub ports: [u16; MAX_PORTS],
    /// Number of valid entries in `ports` (≤ [`MAX_PORTS`]).
    pub port_count: u32,
    /// Unread ring bytes at which the reader is woken: the record that takes the unread part
    /// of the ring across this many bytes wakes it; every other record is submitted without a
    /// wakeup, and the reader collects records on its own schedule. A wakeup is an interrupt
    /// plus a context switch, costlier than the record itself, and the kernel's default is to
    /// wake a reader that has read everything, i.e. on nearly every record.
    pub wakeup_bytes: u32,
    /// 1: payload segments are checked against the skip map ([`SKIP_MAP`]); 0: never (the
    /// verifier then drops that code, and its cost, from the programs).
    pub skip: u32,
    pub _pad0: u32,
}

impl Config {
    /// No port monitored: the programs look at nothing.
    pub const EMPTY: Config = Config {
        ports: [0; MAX_PORTS],
        port_count: 0,
        wakeup_bytes: 0,
        skip: 0,
        _pad0: 0,
    };
}

/// Address family of a [`ConnKey`].
pub const FAMILY_IPV4: u8 = 4;
/// Address family of a [`ConnKey`].
pub const FAMILY_IPV6: u8 = 6;

/// A TCP connection, canonically oriented: `server` is the endpoint on a monitored port.
///
/// IPv4 addresses occupy the first 4 bytes of the 16-byte fields, the rest is zero. Ports are in
/// host byte order. Used as the LRU hash key, so every byte (padding included) is initialised.
/// 8-byte aligned so the programs build and copy it with 64-bit stores, not byte loops.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub client_addr: [u8; 16],
    pub server_addr: [u8; 16],
    pub client_port: u16,
    pub server_port: u16,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    pub _pad0: u8,
    pub _pad1: u16,
}

impl ConnKey {
    /// All zero: the start of every key (padding must be zero in hash keys).
    pub const ZERO: ConnKey = ConnKey {
        client_addr: [0; 16],
        server_addr: [0; 16],
        client_port: 0,
        server_port: 0,
        family: 0,
        _pad0: 0,
        _pad1: 0,
    };
}

/// Direction of a chunk: client → server.
pub const DIRECTION_REQUEST: u8 = 0;
/// Direction of a chunk: server → client.
pub const DIRECTION_RESPONSE: u8 = 1;

/// TCP flag bits as on the wire (the low byte of the flags field).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// [`ChunkHeader::chunk_flags`]: this is the last chunk of its segment.
pub const CHUNK_LAST: u8 = 0x01;
/// [`ChunkHeader::chunk_flags`]: bytes of this segment after this chunk were not captured
/// (counted as [`LossReason::Truncated`]).
pub const CHUNK_TRUNCATED: u8 = 0x02;
/// [`ChunkHeader::chunk_flags`]: the capture dropped bytes of this direction of the
/// connection since its previous record (a full ring, a cut segment): a hole before this
/// record will never fill.
pub const CHUNK_AFTER_LOSS: u8 = 0x04;
/// [`ChunkHeader::chunk_flags`]: a record without payload at the end (`seq`) of a chunked skip
/// span ([`SKIP_CHUNKED`]), whose `skip_chunks` and `skip_data` are the span's counters: the
/// bytes before `seq`, back to the span's `from`, were skipped on purpose (the kernel may have
/// followed the body's chunks past the `to` userspace wrote), not lost. The segment's payload
/// from `seq` on, if any, follows in records of its own.
pub const CHUNK_AFTER_SKIP: u8 = 0x08;

/// Header of one ring record (see [`RECORD_CLASSES`] for what follows it).
///
/// A segment with `n` payload bytes becomes `ceil(n / CHUNK_DATA_SIZE)` records (one record of
/// length 0 if it has none but carries SYN, FIN or RST). SYN is set on the first chunk only, FIN
/// and RST on the last only; ACK and PSH on every chunk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// `bpf_ktime_get_boot_ns()` when the program saw the packet (CLOCK_BOOTTIME).
    pub timestamp_ns: u64,
    pub key: ConnKey,
    /// TCP sequence number of the chunk's first byte (the segment's sequence number plus the
    /// chunk's offset in the payload).
    pub seq: u32,
    /// Payload bytes after the header (≤ [`CHUNK_DATA_SIZE`]).
    pub len: u16,
    /// [`DIRECTION_REQUEST`] or [`DIRECTION_RESPONSE`].
    pub direction: u8,
    /// TCP flags (see the type docs for which chunk carries which).
    pub tcp_flags: u8,
    /// [`CHUNK_LAST`], [`CHUNK_TRUNCATED`], [`CHUNK_AFTER_LOSS`], [`CHUNK_AFTER_SKIP`].
    pub chunk_flags: u8,
    pub _pad0: u8,
    /// With [`CHUNK_AFTER_SKIP`]: the span's [`SkipSpan::chunks`]; else 0.
    pub skip_chunks: u16,
    /// With [`CHUNK_AFTER_SKIP`]: the span's [`SkipSpan::data`]; else 0.
    pub skip_data: u32,
}

/// Payload of one direction that userspace does not read: the bytes with sequence numbers in
/// `[from, to)`, compared wrap-around-safely. A segment whose payload starts inside the span
/// is not copied up to `to`: one that ends beyond it is copied from `to` on; one that ends
/// inside it sends a record without payload, at the payload's end, if it carries SYN, FIN or
/// RST or ends exactly at `to` (which tells userspace when the skipped bytes ended), and
/// nothing otherwise. The bytes are counted in [`CaptureStats::skipped_bytes`].
///
/// A chunked span ([`SKIP_CHUNKED`] in `flags`; it may be empty) lies in an HTTP chunked body
/// and ends where a chunk-size line starts. A segment whose payload starts inside the span or
/// at `to` has the kernel follow the body: while a whole size line (see [`chunk_line`]) lies
/// in the segment at `to`, at most [`MAX_CHUNK_LINES_PER_SEGMENT`] of them, and its size is
/// not 0, `to` moves past the line, the chunk's data and the CRLF after it (to the next size
/// line), `chunks` counts the chunk and `data` its size (both wrapping), and the span is
/// written back to the map. The span then applies as above, except that what the segment
/// sends starts with a [`CHUNK_AFTER_SKIP`] record at `to` with the counters (carrying the
/// segment's flags when nothing follows it), and that a segment which moved the span sends
/// that record even when it ends inside the span: a later segment the network delivered
/// first, and which was copied, may lie in the chunks just followed. So the segment is copied
/// from a size line on (the last chunk's, one that continues in the next segment, one with a
/// chunk extension, or one past the bound), and userspace tells the bytes the kernel skipped
/// past its own `to` from lost ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipSpan {
    pub from: u32,
    pub to: u32,
    /// [`SKIP_CHUNKED`] or 0.
    pub flags: u16,
    /// Chunks the kernel followed past the `to` userspace wrote (wrapping; written 0).
    pub chunks: u16,
    /// Data bytes of those chunks (wrapping; written 0).
    pub data: u32,
}

/// [`SkipSpan::flags`]: the span ends where a chunk-size line starts, and the kernel follows
/// the chunked body past it.
pub const SKIP_CHUNKED: u16 = 0x1;

/// Most chunk-size lines the kernel follows in one segment (see [`SkipSpan`]).
pub const MAX_CHUNK_LINES_PER_SEGMENT: u32 = 4;

/// Bytes loaded to read a chunk-size line (at most [`MAX_CHUNK_SIZE_DIGITS`] and CRLF).
pub const CHUNK_LINE_WINDOW: usize = 16;

/// Most hex digits of a chunk size the kernel follows (a size below 256 MiB, so `to` stays
/// far from the wrap-around distance).
pub const MAX_CHUNK_SIZE_DIGITS: u32 = 7;

/// Reads the chunk-size line at the start of `window`, whose bytes past the segment's end are
/// 0: 1 to [`MAX_CHUNK_SIZE_DIGITS`] hex digits and CRLF. Returns the line's length with its
/// CRLF and the size, when all of it lies in the window (so in the segment: a 0 byte ends no
/// line) and the size is not 0 (the last chunk ends a body); `None` otherwise, also for a line
/// with a chunk extension or whitespace (which servers do not send; userspace reads such a
/// line). The kernel and the capture model both follow chunks with this function.
#[inline(always)]
pub fn chunk_line(window: &[u8; CHUNK_LINE_WINDOW]) -> Option<(u32, u32)> {
    // One short loop and no length to compare with: the verifier walks each byte position once
    // per distinct state (an extension's loop and a length check multiplied them, and cost
    // more than the rest of the skip path).
    let mut size: u32 = 0;
    let mut i = 0;
    while i < MAX_CHUNK_SIZE_DIGITS as usize {
        let b = window[i];
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        size = (size << 4) | digit as u32;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    // Hidden from LLVM: it knows the window is 8-aligned and `i` below 8 after the loop it
    // unrolls, and would write `window + i` as `window | i`, which the verifier refuses on a
    // pointer.
    let i = core::hint::black_box(i) & (CHUNK_LINE_WINDOW - 1);
    if i + 1 >= CHUNK_LINE_WINDOW || window[i] != b'\r' || window[i + 1] != b'\n' || size == 0 {
        return None;
    }
    Some((i as u32 + 2, size))
}

/// The value of the skip map ([`SKIP_MAP`]): a connection's spans, indexed by
/// [`DIRECTION_REQUEST`] and [`DIRECTION_RESPONSE`]. Keyed by the connection table's own
/// [`ConnKey`], so the programs look it up without building another key; an empty span
/// (`from == to`) skips nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipSpans {
    pub spans: [SkipSpan; 2],
}

/// [`ConnStats::flags`] bits: SYN, FIN, RST seen, per direction (request bits shifted by 0,
/// response bits by 4).
pub const SEEN_SYN: u64 = 0x1;
pub const SEEN_FIN: u64 = 0x2;
pub const SEEN_RST: u64 = 0x4;
/// Shift of the response direction's `SEEN_*` bits in [`ConnStats::flags`].
pub const SEEN_RESPONSE_SHIFT: u64 = 4;

/// Per-connection counters (value of the LRU hash keyed by [`ConnKey`]). Updated with atomic
/// adds: several CPUs see packets of one connection.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Packets per direction (index: `DIRECTION_*`).
    pub packets: [u64; 2],
    /// TCP payload bytes per direction.
    pub bytes: [u64; 2],
    /// CLOCK_MONOTONIC_COARSE of the first packet (`bpf_ktime_get_coarse_ns()`: the last
    /// timer tick, so up to one jiffy early).
    pub first_seen_ns: u64,
    /// CLOCK_MONOTONIC_COARSE of the latest packet. (MONOTONIC stops during suspend: a
    /// suspended machine's sleep does not count toward idleness.)
    pub last_seen_ns: u64,
    /// `SEEN_*` bits. 64 bits wide because BPF has no 32-bit atomic OR without ALU32.
    pub flags: u64,
    /// Per direction: 1 when the capture dropped bytes since the direction's last record (its
    /// next record carries [`CHUNK_AFTER_LOSS`] and sets it back to 0). Plain stores: a mark
    /// that a racing CPU clears too early only leaves a hole to `hole_timeout_ms`.
    pub lost: [u32; 2],
}

/// Why captured data did not reach userspace (index into [`CaptureStats`] loss arrays).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// `bpf_ringbuf_reserve` failed: the ring was full (userspace too slow).
    RingFull = 0,
    /// Payload beyond [`MAX_CHUNKS_PER_SEGMENT`] chunks, or a payload copy that failed.
    Truncated = 1,
    /// A TCP/IP packet the parser could not read: truncated or malformed headers, IP
    /// fragments, more VLAN tags or IPv6 extension headers than it walks (see [`wire`] for the
    /// exact rules). Counted as one record and the frame's bytes, because its payload and
    /// connection are unknown.
    Unparsed = 2,
}

/// Number of [`LossReason`]s.
pub const LOSS_REASONS: usize = 3;

impl LossReason {
    pub const ALL: [LossReason; LOSS_REASONS] = [
        LossReason::RingFull,
        LossReason::Truncated,
        LossReason::Unparsed,
    ];
}

/// Global per-CPU counters (one entry of a per-CPU array; userspace sums the CPUs). Per CPU, so
/// plain adds are exact without atomics, except on a PREEMPT_RT kernel, where a program
/// preempted between the load and the store of an add can lose another's increment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets of monitored connections per direction.
    pub packets: [u64; 2],
    /// TCP payload bytes of monitored connections per direction.
    pub bytes: [u64; 2],
    /// Connections inserted into the connection map (new connections seen).
    pub connections: u64,
    /// Records lost, per [`LossReason`].
    pub lost_records: [u64; LOSS_REASONS],
    /// Bytes lost, per [`LossReason`].
    pub lost_bytes: [u64; LOSS_REASONS],
    /// Records submitted to the ring.
    pub records: u64,
    /// Payload bytes not copied because userspace does not read them (see [`SkipSpan`]).
    pub skipped_bytes: u64,
}

const _: () = {
    assert!(CHUNK_LINE_WINDOW.is_power_of_two());
    assert!(core::mem::size_of::<ConnKey>() == 40);
    assert!(core::mem::size_of::<ChunkHeader>() == 64);
    assert!(core::mem::size_of::<ConnStats>() == 64);
    assert!(core::mem::size_of::<Config>() == 48);
    assert!(core::mem::size_of::<SkipSpans>() == 32);
    assert!(MAX_CHUNKS_PER_SEGMENT == 34);
};

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data `#[repr(C)]` types without implicit padding (asserted above).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::ConnKey {}
    unsafe impl aya::Pod for super::ConnStats {}
    unsafe impl aya::Pod for super::CaptureStats {}
    unsafe impl aya::Pod for super::SkipSpans {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bytes: &[u8]) -> Option<(u32, u32)> {
        let mut window = [0; CHUNK_LINE_WINDOW];
        let avail = bytes.len().min(CHUNK_LINE_WINDOW);
        window[..avail].copy_from_slice(&bytes[..avail]);
        chunk_line(&window)
    }

    #[test]
    fn chunk_lines_the_kernel_follows() {
        assert_eq!(line(b"10\r\nabc"), Some((4, 16)));
        assert_eq!(line(b"1\r\n"), Some((3, 1)));
        assert_eq!(line(b"Ff\r\n"), Some((4, 255)));
        assert_eq!(line(b"fffffff\r\n"), Some((9, 0x0fff_ffff)));
        // The last chunk ends the body.
        assert_eq!(line(b"0\r\n\r\n"), None);
        assert_eq!(line(b"000\r\n"), None);
        // Cut short, too many digits, no digit, bare LF, an extension, whitespace.
        assert_eq!(line(b"10\r"), None);
        assert_eq!(line(b"10"), None);
        assert_eq!(line(b"10000000\r\n"), None);
        assert_eq!(line(b"\r\n10\r\n"), None);
        assert_eq!(line(b"10\n"), None);
        assert_eq!(line(b"10\rx"), None);
        assert_eq!(line(b"1g\r\n"), None);
        assert_eq!(line(b"8;x=y\r\n"), None);
        assert_eq!(line(b"8 \r\n"), None);
    }
}
