use std::net::{Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::segment::{CaptureSkip, TcpFlags};

/// What a handler saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Open { mid_stream: bool },
    Data(Direction, Vec<u8>),
    Gap(Direction, u64),
    Fin(Direction),
    Close(CloseReason),
}

/// Records every call; `State` is the index of the connection's log.
#[derive(Default)]
struct Recorder {
    logs: Vec<(ConnectionKey, Vec<Ev>)>,
    data_ts: Vec<Timestamp>,
    /// `(connection, events logged before)` of each `confirmed` call.
    confirmed: Vec<(usize, usize)>,
}

impl Recorder {
    fn log(&self, i: usize) -> &[Ev] {
        &self.logs[i].1
    }

    /// Concatenated data of one direction (gaps are listed by [`Recorder::gaps`]).
    fn stream(&self, i: usize, dir: Direction) -> Vec<u8> {
        let mut v = Vec::new();
        for e in self.log(i) {
            if let Ev::Data(d, b) = e
                && *d == dir
            {
                v.extend_from_slice(b);
            }
        }
        v
    }

    fn gaps(&self, i: usize) -> Vec<(Direction, u64)> {
        self.log(i)
            .iter()
            .filter_map(|e| match e {
                Ev::Gap(d, l) => Some((*d, *l)),
                _ => None,
            })
            .collect()
    }

    /// Events with adjacent data of the same direction merged (segmentation-independent view).
    fn merged(&self, i: usize) -> Vec<Ev> {
        let mut out: Vec<Ev> = Vec::new();
        for e in self.log(i) {
            if let (Ev::Data(d, b), Some(Ev::Data(pd, pb))) = (e, out.last_mut())
                && d == pd
            {
                pb.extend_from_slice(b);
                continue;
            }
            out.push(e.clone());
        }
        out
    }
}

impl StreamHandler for Recorder {
    type State = usize;
    fn open(&mut self, key: ConnectionKey, mid_stream: bool, _ts: Timestamp) -> usize {
        self.logs.push((key, vec![Ev::Open { mid_stream }]));
        self.logs.len() - 1
    }
    fn confirmed(&mut self, s: &mut usize, _: ConnectionKey, _: Timestamp) {
        self.confirmed.push((*s, self.logs[*s].1.len()));
    }
    fn data(&mut self, s: &mut usize, _: ConnectionKey, d: Direction, data: &[u8], ts: Timestamp) {
        assert!(!data.is_empty(), "empty data delivered");
        self.logs[*s].1.push(Ev::Data(d, data.to_vec()));
        self.data_ts.push(ts);
    }
    fn gap(&mut self, s: &mut usize, _: ConnectionKey, d: Direction, len: u64, _: Timestamp) {
        self.logs[*s].1.push(Ev::Gap(d, len));
    }
    fn fin(&mut self, s: &mut usize, _: ConnectionKey, d: Direction, _: Timestamp) {
        self.logs[*s].1.push(Ev::Fin(d));
    }
    fn close(&mut self, s: usize, _: ConnectionKey, reason: CloseReason, _: Timestamp) {
        self.logs[s].1.push(Ev::Close(reason));
    }
}

fn key(client_port: u16) -> ConnectionKey {
    ConnectionKey {
        client: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), client_port)),
        server: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 8080)),
    }
}

/// An owned segment, for building scenarios.
#[derive(Debug, Clone)]
struct Seg {
    port: u16,
    dir: Direction,
    seq: u32,
    flags: u8,
    payload: Vec<u8>,
    ts: u64,
    after_capture_loss: bool,
    capture_skip: Option<CaptureSkip>,
}

impl Seg {
    fn new(dir: Direction, seq: u32, flags: u8, payload: &[u8], ts: u64) -> Self {
        Seg {
            port: 40000,
            dir,
            seq,
            flags,
            payload: payload.to_vec(),
            ts,
            after_capture_loss: false,
            capture_skip: None,
        }
    }
    /// The same segment, flagged as following bytes the capture dropped.
    fn after_capture_loss(mut self) -> Self {
        self.after_capture_loss = true;
        self
    }
    /// The same segment, flagged as starting where the capture's chunked skip span ended.
    fn capture_skip(mut self, chunks: u16, data: u32) -> Self {
        self.capture_skip = Some(CaptureSkip { chunks, data });
        self
    }
    fn as_segment(&self) -> Segment<'_> {
        Segment {
            key: key(self.port),
            direction: self.dir,
            seq: self.seq,
            flags: TcpFlags(self.flags),
            payload: &self.payload,
            timestamp: Timestamp::from_nanos(self.ts),
            after_capture_loss: self.after_capture_loss,
            capture_skip: self.capture_skip,
        }
    }
}

const REQ: Direction = Direction::Request;
const RSP: Direction = Direction::Response;
const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;

fn run(limits: ReassemblyLimits, segs: &[Seg]) -> (Reassembler<usize>, Recorder) {
    let mut r = Reassembler::new(limits);
    let mut rec = Recorder::default();
    for s in segs {
        r.on_segment(&s.as_segment(), &mut rec);
    }
    (r, rec)
}

/// SYN, SYN-ACK; client ISN 1000 (data at 1001), server ISN 5000 (data at 5001).
fn handshake() -> Vec<Seg> {
    vec![
        Seg::new(REQ, 1000, SYN, b"", 1),
        Seg::new(RSP, 5000, SYN | ACK, b"", 2),
        Seg::new(REQ, 1001, ACK, b"", 3),
    ]
}

#[test]
fn in_order_exchange_with_fin_close() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"GET / HTTP/1.1\r\n\r\n", 10),
        Seg::new(RSP, 5001, ACK, b"HTTP/1.1 200 OK\r\n", 11),
        Seg::new(RSP, 5018, ACK, b"content-length: 0\r\n\r\n", 12),
        Seg::new(REQ, 1019, FIN, b"", 13),
        Seg::new(RSP, 5039, FIN, b"", 14),
        Seg::new(REQ, 1020, ACK, b"", 15), // trailing ACK: ignored, no new connection
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(
        rec.log(0),
        &[
            Ev::Open { mid_stream: false },
            Ev::Data(REQ, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            Ev::Data(RSP, b"HTTP/1.1 200 OK\r\n".to_vec()),
            Ev::Data(RSP, b"content-length: 0\r\n\r\n".to_vec()),
            Ev::Fin(REQ),
            Ev::Fin(RSP),
            Ev::Close(CloseReason::Fin),
        ]
    );
    assert_eq!(rec.logs.len(), 1);
    assert_eq!(r.active_connections(), 0);
    let c = r.counters();
    assert_eq!(c.connections_opened, 1);
    assert_eq!(c.connections_closed_fin, 1);
    assert_eq!(c.segments_ignored, 1);
    assert_eq!(c.gaps, 0);
}

#[test]
fn a_capture_loss_skips_the_holes_before_it_at_once() {
    // Bytes 1018..1022 of the request never reach userspace (the ring was full); the next
    // record of the direction says so. A reordered hole after it (1026..1040, whose bytes
    // come later) is still waited for.
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"GET /a HTTP/1.1\r\n", 10),
        Seg::new(REQ, 1040, ACK, b"late", 11),
        Seg::new(REQ, 1022, ACK, b"tail", 12).after_capture_loss(),
        Seg::new(RSP, 5001, ACK, b"HTTP/1.1 200 OK\r\n", 13),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(
        rec.log(0),
        &[
            Ev::Open { mid_stream: false },
            Ev::Data(REQ, b"GET /a HTTP/1.1\r\n".to_vec()),
            Ev::Gap(REQ, 4),
            Ev::Data(REQ, b"tail".to_vec()),
        ]
    );
    let c = r.counters();
    assert_eq!((c.gaps, c.gap_bytes, c.capture_loss_gaps), (1, 4, 1));
    // The response waits behind the request's remaining hole, as it always does.
    assert_eq!(r.buffered_bytes(), 4 + 17);

    // The same segments unflagged: the first hole waits too.
    let unflagged: Vec<Seg> = segs
        .iter()
        .cloned()
        .map(|mut s| {
            s.after_capture_loss = false;
            s
        })
        .collect();
    let (r, rec) = run(ReassemblyLimits::default(), &unflagged);
    assert_eq!(rec.stream(0, REQ), b"GET /a HTTP/1.1\r\n");
    assert_eq!(r.counters().gaps, 0);
    assert_eq!(r.buffered_bytes(), 4 + 4 + 17);
}

#[test]
fn a_chunked_skip_mark_without_a_chunked_range_is_no_skip() {
    // The mark only moves a chunked range the handler asked for (none here): the segment
    // ahead of the stream waits behind its hole like any other.
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"GET /a HTTP/1.1\r\n", 10),
        Seg::new(REQ, 1030, ACK, b"tail", 11).capture_skip(2, 40),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, REQ), b"GET /a HTTP/1.1\r\n");
    let c = r.counters();
    assert_eq!((c.gaps, c.skipped_bytes), (0, 0));
    assert_eq!(r.buffered_bytes(), 4);
}

#[test]
fn a_capture_loss_flag_on_an_in_order_segment_changes_nothing() {
    // The dropped bytes were a retransmission of delivered data: no hole, nothing skipped.
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"GET /a HTTP/1.1\r\n", 10),
        Seg::new(REQ, 1018, ACK, b"\r\n", 11).after_capture_loss(),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, REQ), b"GET /a HTTP/1.1\r\n\r\n");
    assert_eq!((r.counters().gaps, r.counters().capture_loss_gaps), (0, 0));
}

#[test]
fn kernel_chunk_records_are_plain_segments() {
    // The kernel splits a 64 KiB GSO segment into chunk records: each has the sequence number of
    // its first byte and only the last carries FIN.
    let body: Vec<u8> = (0..65_000u32).map(|i| (i % 251) as u8).collect();
    let mut segs = handshake();
    for (i, chunk) in body.chunks(4096).enumerate() {
        let last = (i + 1) * 4096 >= body.len();
        let seq = 5001 + (i * 4096) as u32;
        segs.push(Seg::new(RSP, seq, if last { FIN } else { ACK }, chunk, 10));
    }
    segs.push(Seg::new(REQ, 1001, FIN, b"", 11));
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, RSP), body);
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Fin)));
    assert_eq!(r.counters().out_of_order_segments, 0);
}

#[test]
fn out_of_order_is_buffered_and_released_in_order() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1006, ACK, b"world", 10),
        Seg::new(REQ, 1001, ACK, b"hello", 11),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, REQ), b"helloworld");
    assert_eq!(r.counters().out_of_order_segments, 1);
    assert_eq!(r.counters().out_of_order_bytes, 5);
    assert_eq!(r.buffered_bytes(), 0);
}

#[test]
fn retransmission_and_overlap_first_copy_wins() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"abcdef", 10),
        Seg::new(REQ, 1001, ACK, b"abcdef", 11), // exact retransmission
        Seg::new(REQ, 1004, ACK, b"XYZghi", 12), // overlaps "def", adds "ghi"
        Seg::new(REQ, 1012, ACK, b"mn", 13),     // ahead of a hole
        Seg::new(REQ, 1010, ACK, b"jkLMNo", 14), // fills the hole; "LM" lose to "mn"
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, REQ), b"abcdefghijkmnNo");
    let c = r.counters();
    assert_eq!(c.duplicate_segments, 3);
    assert_eq!(c.duplicate_bytes, 6 + 3 + 2);
}

#[test]
fn other_direction_waits_for_a_hole() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1006, ACK, b" /x HTTP/1.1\r\n\r\n", 10), // "GET" lost for now
        Seg::new(RSP, 5001, ACK, b"HTTP/1.1 200 OK\r\n\r\n", 11),
        Seg::new(REQ, 1001, ACK, b"POST ", 12), // retransmission fills the hole
    ]);
    let (_, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(
        rec.merged(0)[1..],
        [
            Ev::Data(REQ, b"POST  /x HTTP/1.1\r\n\r\n".to_vec()),
            Ev::Data(RSP, b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
        ]
    );
    // Timestamps handed to the consumer never go backwards.
    assert!(rec.data_ts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn connection_cap_skips_the_hole_as_a_gap() {
    let limits = ReassemblyLimits {
        max_buffered_bytes_per_connection: 8,
        ..ReassemblyLimits::default()
    };
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1011, ACK, b"12345", 10), // hole of 10 bytes before it
        Seg::new(REQ, 1016, ACK, b"6789", 11),  // 9 bytes buffered > 8: hole declared lost
        Seg::new(REQ, 1001, ACK, b"late", 12),  // too late: already skipped
    ]);
    let (r, rec) = run(limits, &segs);
    assert_eq!(rec.gaps(0), vec![(REQ, 10)]);
    assert_eq!(rec.stream(0, REQ), b"123456789");
    let c = r.counters();
    assert_eq!(c.gaps, 1);
    assert_eq!(c.gap_bytes, 10);
    assert_eq!(c.cap_hits(CapKind::ConnectionBytes), 1);
    assert_eq!(c.duplicate_bytes, 4);
    assert_eq!(r.buffered_bytes(), 0);
}

#[test]
fn total_cap_and_piece_cap_are_counted() {
    let limits = ReassemblyLimits {
        max_buffered_bytes_total: 4,
        ..ReassemblyLimits::default()
    };
    let mut segs = handshake();
    segs.push(Seg::new(REQ, 1003, ACK, b"abcde", 10));
    let (r, rec) = run(limits, &segs);
    assert_eq!(rec.gaps(0), vec![(REQ, 2)]);
    assert_eq!(r.counters().cap_hits(CapKind::TotalBytes), 1);

    let limits = ReassemblyLimits {
        max_buffered_pieces_per_connection: 1,
        ..ReassemblyLimits::default()
    };
    let mut segs = handshake();
    segs.push(Seg::new(REQ, 1003, ACK, b"c", 10));
    segs.push(Seg::new(REQ, 1005, ACK, b"e", 11));
    let (r, rec) = run(limits, &segs);
    assert_eq!(rec.gaps(0), vec![(REQ, 2)]);
    assert_eq!(rec.stream(0, REQ), b"c");
    assert_eq!(r.counters().cap_hits(CapKind::ConnectionPieces), 1);
    assert_eq!(r.buffered_bytes(), 1);
}

/// What an overloaded capture leaves when its loss marks do not arrive: on each of eight
/// connections the first request record is lost (request bytes 1001..1101), the next request
/// waits behind the hole, and the 3 MiB answer (1 KiB segments, in order) waits behind it in
/// turn. Fed one connection after another, with `max_buffered_bytes_total` at `cap`.
fn unmarked_losses(cap: usize) -> (Reassembler<usize>, Recorder, usize) {
    let limits = ReassemblyLimits {
        max_buffered_bytes_total: cap,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits);
    let mut rec = Recorder::default();
    let mut most = 0;
    let mut ts = 0;
    for port in 40000..40008 {
        let mut segs = handshake();
        segs.push(Seg::new(REQ, 1101, ACK, &[b'q'; 100], 0));
        segs.extend((0..3072u32).map(|i| Seg::new(RSP, 5001 + i * 1024, ACK, &[b'a'; 1024], 0)));
        for mut s in segs {
            ts += 1_000;
            s.port = port;
            s.ts = ts;
            r.on_segment(&s.as_segment(), &mut rec);
            most = most.max(r.buffered_bytes());
        }
    }
    (r, rec, most)
}

#[test]
fn holes_behind_unmarked_losses_stay_under_the_total_cap() {
    // With a cap above what the eight hold (8 × (100 + 3 MiB) = 25,166,624 bytes), all of it
    // waits for holes that will never fill.
    let (r, _, most) = unmarked_losses(256 << 20);
    assert_eq!((r.buffered_bytes(), most), (25_166_624, 25_166_624));
    assert_eq!(r.counters().cap_hits(CapKind::TotalBytes), 0);

    // The default cap, 16 MiB. Five connections hold 5 × 3,145,828 = 15,729,140 bytes; the
    // sixth's 1,024th answer segment would take the sum to 16,777,816, so its hole is declared
    // lost at once and what waited behind it delivered. The same for the seventh and eighth.
    assert_eq!(
        ReassemblyLimits::default().max_buffered_bytes_total,
        16 << 20
    );
    let (mut r, mut rec, most) =
        unmarked_losses(ReassemblyLimits::default().max_buffered_bytes_total);
    assert_eq!(most, 15_729_140 + 100 + 1023 * 1024);
    assert_eq!(r.buffered_bytes(), 15_729_140);
    let c = r.counters();
    assert_eq!(c.cap_hits(CapKind::TotalBytes), 3);
    assert_eq!((c.gaps, c.gap_bytes, c.capture_loss_gaps), (3, 300, 0));
    for i in 0..5 {
        assert_eq!(rec.gaps(i), vec![]);
        assert_eq!(rec.stream(i, RSP).len(), 0);
    }
    for i in 5..8 {
        assert_eq!(rec.gaps(i), vec![(REQ, 100)]);
        assert_eq!(rec.stream(i, REQ), [b'q'; 100]);
        assert_eq!(rec.stream(i, RSP).len(), 3 << 20);
    }
    r.finish(Timestamp::from_secs(1), &mut rec);
    assert_eq!(r.buffered_bytes(), 0);
    assert_eq!(r.counters().gaps, 8);
}

#[test]
fn hole_times_out_on_tick() {
    let mut segs = handshake();
    segs.push(Seg::new(REQ, 1003, ACK, b"cd", 1_000));
    let (mut r, mut rec) = run(ReassemblyLimits::default(), &segs);
    r.on_tick(Timestamp::from_nanos(9_000_000_000), &mut rec);
    assert!(rec.gaps(0).is_empty());
    r.on_tick(Timestamp::from_nanos(10_000_001_000), &mut rec);
    assert_eq!(rec.gaps(0), vec![(REQ, 2)]);
    assert_eq!(rec.stream(0, REQ), b"cd");
    assert_eq!(r.counters().cap_hits(CapKind::HoleTimeout), 1);
}

#[test]
fn fin_ahead_of_missing_bytes_is_a_hole() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"ab", 10),
        Seg::new(REQ, 1005, FIN, b"", 11), // "cd" missing
        Seg::new(RSP, 5001, FIN, b"", 12),
    ]);
    let (mut r, mut rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(r.active_connections(), 1);
    r.on_tick(Timestamp::from_secs(60), &mut rec);
    assert_eq!(rec.gaps(0), vec![(REQ, 2)]);
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Fin)));
    assert_eq!(r.active_connections(), 0);
}

#[test]
fn rst_closes_and_flushes() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"ab", 10),
        Seg::new(REQ, 1005, ACK, b"ef", 11),
        Seg::new(RSP, 5001, RST, b"", 12),
        Seg::new(RSP, 5001, ACK, b"late", 13), // after close: ignored
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(
        rec.log(0)[1..],
        [
            Ev::Data(REQ, b"ab".to_vec()),
            Ev::Gap(REQ, 2),
            Ev::Data(REQ, b"ef".to_vec()),
            Ev::Close(CloseReason::Rst),
        ]
    );
    assert_eq!(r.counters().connections_closed_rst, 1);
    assert_eq!(r.counters().segments_ignored, 1);
}

#[test]
fn mid_stream_pickup() {
    let segs = [
        Seg::new(RSP, 77, ACK, b"", 1), // payload-less: does not open
        Seg::new(RSP, 9000, ACK, b"tail of a body", 2),
        Seg::new(REQ, 123, ACK, b"GET /next HTTP/1.1\r\n\r\n", 3),
        Seg::new(RSP, 8990, ACK, b"0123456789tail", 4), // partly before the start
    ];
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.log(0)[0], Ev::Open { mid_stream: true });
    assert_eq!(rec.stream(0, RSP), b"tail of a body");
    assert_eq!(rec.stream(0, REQ), b"GET /next HTTP/1.1\r\n\r\n");
    let c = r.counters();
    assert_eq!(c.connections_mid_stream, 1);
    assert_eq!(c.bytes_before_start, 10);
    assert_eq!(c.duplicate_bytes, 4);
}

#[test]
fn sequence_numbers_wrap() {
    let isn = u32::MAX - 3;
    let segs = [
        Seg::new(REQ, isn, SYN, b"", 1),
        Seg::new(REQ, isn.wrapping_add(6), ACK, b"ghij", 2), // seq 2: after the wrap
        Seg::new(REQ, isn.wrapping_add(1), ACK, b"abcde", 3),
    ];
    let (_, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, REQ), b"abcdeghij");
}

#[test]
fn idle_expiry_and_lru_eviction() {
    let limits = ReassemblyLimits {
        max_connections: 2,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits);
    let mut rec = Recorder::default();
    for (i, port) in [1u16, 2, 3].into_iter().enumerate() {
        let mut s = Seg::new(REQ, 10, ACK, b"x", i as u64);
        s.port = port;
        r.on_segment(&s.as_segment(), &mut rec);
    }
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Evicted)));
    assert_eq!(r.counters().connections_evicted, 1);
    assert_eq!(r.counters().cap_hits(CapKind::Connections), 1);
    assert_eq!(r.active_connections(), 2);

    r.on_tick(Timestamp::from_secs(299), &mut rec);
    assert_eq!(r.active_connections(), 2);
    r.on_tick(Timestamp::from_secs(301), &mut rec);
    assert_eq!(r.active_connections(), 0);
    assert_eq!(r.counters().connections_expired, 2);
    assert_eq!(rec.log(2).last(), Some(&Ev::Close(CloseReason::Idle)));
}

#[test]
fn syn_with_new_isn_reuses_the_tuple() {
    let mut segs = handshake();
    segs.push(Seg::new(REQ, 1001, ACK, b"one", 10));
    segs.push(Seg::new(REQ, 777, SYN, b"", 20));
    segs.push(Seg::new(RSP, 9000, SYN | ACK, b"", 21));
    segs.push(Seg::new(REQ, 778, ACK, b"two", 22));
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Reused)));
    assert_eq!(rec.stream(1, REQ), b"two");
    assert_eq!(r.counters().connections_reused, 1);
}

#[test]
fn finish_flushes_everything() {
    let mut segs = handshake();
    segs.push(Seg::new(RSP, 5004, ACK, b"xyz", 10));
    let (mut r, mut rec) = run(ReassemblyLimits::default(), &segs);
    r.finish(Timestamp::from_secs(1), &mut rec);
    assert_eq!(
        rec.log(0)[1..],
        [
            Ev::Gap(RSP, 3),
            Ev::Data(RSP, b"xyz".to_vec()),
            Ev::Close(CloseReason::Finish),
        ]
    );
    assert_eq!(r.buffered_bytes(), 0);
}

/// A connection's segments: handshake, both streams cut at the given points, FINs.
fn segment_streams(
    isn: [u32; 2],
    streams: [&[u8]; 2],
    cuts: [&[usize]; 2],
) -> (Vec<Seg>, Vec<Seg>) {
    let head = vec![
        Seg::new(REQ, isn[0], SYN, b"", 0),
        Seg::new(RSP, isn[1], SYN | ACK, b"", 0),
    ];
    let mut body = Vec::new();
    for (i, dir) in Direction::ALL.into_iter().enumerate() {
        let data = streams[i];
        let mut points: Vec<usize> = cuts[i].iter().map(|c| c % (data.len() + 1)).collect();
        points.push(0);
        points.push(data.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            let seq = isn[i].wrapping_add(1).wrapping_add(w[0] as u32);
            body.push(Seg::new(dir, seq, ACK, &data[w[0]..w[1]], 0));
        }
        let fin_seq = isn[i].wrapping_add(1).wrapping_add(data.len() as u32);
        body.push(Seg::new(dir, fin_seq, FIN, b"", 0));
    }
    (head, body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any segmentation, any reordering within a window, any duplicates: the same bytes per
    /// direction, no gap, a clean close.
    #[test]
    fn any_split_reorder_duplicate_delivers_same_bytes(
        req in proptest::collection::vec(any::<u8>(), 0..600),
        rsp in proptest::collection::vec(any::<u8>(), 0..600),
        req_cuts in proptest::collection::vec(any::<usize>(), 0..20),
        rsp_cuts in proptest::collection::vec(any::<usize>(), 0..20),
        isn in (any::<u32>(), any::<u32>()),
        jitter in proptest::collection::vec(0usize..6, 64),
        dups in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 0..8),
    ) {
        let (head, mut body) = segment_streams([isn.0, isn.1], [&req, &rsp], [&req_cuts, &rsp_cuts]);
        // Duplicates: arbitrary sub-ranges of either stream, re-sent.
        for (d, a, b) in dups {
            let (dir, data, base) = if d % 2 == 0 { (REQ, &req, isn.0) } else { (RSP, &rsp, isn.1) };
            if data.is_empty() { continue; }
            let (mut a, mut b) = (a % data.len(), b % (data.len() + 1));
            if a > b { std::mem::swap(&mut a, &mut b); }
            let seq = base.wrapping_add(1).wrapping_add(a as u32);
            body.push(Seg::new(dir, seq, ACK, &data[a..b], 0));
        }
        // Reorder: each segment moves up to `jitter` places (stable sort on index + jitter).
        let mut order: Vec<(usize, usize)> =
            (0..body.len()).map(|i| (i + jitter[i % jitter.len()], i)).collect();
        order.sort();
        let mut segs = head;
        for (t, (_, i)) in order.into_iter().enumerate() {
            let mut s = body[i].clone();
            s.ts = 10 + t as u64;
            segs.push(s);
        }
        let (r, rec) = run(ReassemblyLimits::default(), &segs);
        prop_assert_eq!(rec.stream(0, REQ), req);
        prop_assert_eq!(rec.stream(0, RSP), rsp);
        prop_assert!(rec.gaps(0).is_empty());
        prop_assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Fin)));
        prop_assert_eq!(rec.logs.len(), 1);
        prop_assert_eq!(r.buffered_bytes(), 0);
        prop_assert!(rec.data_ts.windows(2).all(|w| w[0] <= w[1]));
    }

    /// Arbitrary segments never panic and never hold more than the caps allow.
    #[test]
    fn arbitrary_segments_respect_caps(
        segs in proptest::collection::vec(
            (0u16..3, any::<bool>(), any::<u32>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64), 0u64..20_000_000_000),
            0..200),
    ) {
        let limits = ReassemblyLimits {
            max_connections: 2,
            max_buffered_bytes_per_connection: 100,
            max_buffered_bytes_total: 150,
            max_buffered_pieces_per_connection: 5,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        let mut rec = Recorder::default();
        for (port, dir, seq, flags, payload, ts) in segs {
            let s = Seg { port, dir: if dir { REQ } else { RSP }, seq, flags, payload, ts, after_capture_loss: false, capture_skip: None };
            r.on_segment(&s.as_segment(), &mut rec);
            prop_assert!(r.buffered_bytes() <= 150);
            prop_assert!(r.active_connections() <= 2);
        }
        r.finish(Timestamp::from_secs(100), &mut rec);
        prop_assert_eq!(r.buffered_bytes(), 0);
        prop_assert_eq!(r.active_connections(), 0);
    }
}

mod trust;
