//! The rules against forged segments: window, RST, confirmation, eviction order, conflicts.
use std::net::Ipv4Addr;

use super::*;

const WINDOW: u32 = 16 << 20;

fn trust(r: &Reassembler<usize>) -> &TrustCounters {
    &r.counters().trust
}

#[test]
fn handshake_establishes_the_connection() {
    let (r, _) = run(ReassemblyLimits::default(), &handshake()[..1]);
    assert_eq!(r.unconfirmed_connections(), 1);
    let (r, rec) = run(ReassemblyLimits::default(), &handshake());
    assert_eq!(rec.confirmed, [(0, 1)]);
    assert_eq!(r.unconfirmed_connections(), 0);
    assert_eq!(r.active_connections(), 1);
    assert_eq!(trust(&r).handshakes, 1);
    assert_eq!(trust(&r).confirmed, 0);
}

#[test]
fn spoofed_rst_out_of_window_does_not_close() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"GET / HTTP/1.1\r\n\r\n", 10),
        Seg::new(REQ, 1019 + WINDOW, RST, b"", 11), // one past the window
        Seg::new(REQ, 1019u32.wrapping_add(1 << 31), RST, b"", 12),
        Seg::new(REQ, 1018, RST, b"", 13), // behind the next expected byte
        Seg::new(RSP, 5001u32.wrapping_sub(WINDOW), RST, b"", 14),
        Seg::new(RSP, 5001, ACK, b"HTTP/1.1 204 No Content\r\n\r\n", 15),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(
        rec.log(0)[1..],
        [
            Ev::Data(REQ, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            Ev::Data(RSP, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        ]
    );
    assert_eq!(r.active_connections(), 1);
    assert_eq!(r.counters().connections_closed_rst, 0);
    assert_eq!(trust(&r).rst_out_of_window, 4);
}

#[test]
fn rst_at_the_next_expected_byte_or_inside_the_window_closes() {
    for rst_seq in [1019, 1019 + WINDOW - 1] {
        let mut segs = handshake();
        segs.extend([
            Seg::new(REQ, 1001, ACK, b"GET / HTTP/1.1\r\n\r\n", 10),
            Seg::new(REQ, rst_seq, RST, b"", 11),
        ]);
        let (r, rec) = run(ReassemblyLimits::default(), &segs);
        assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Rst)));
        assert_eq!(r.counters().connections_closed_rst, 1);
        assert_eq!(trust(&r).rst_out_of_window, 0);
    }
}

/// A direction nothing was seen of has no window: its RST is taken (the server refusing a
/// connection answers the SYN with one).
#[test]
fn rst_of_a_direction_without_a_start_closes() {
    let segs = [
        Seg::new(REQ, 1000, SYN, b"", 1),
        Seg::new(RSP, 0, RST | ACK, b"", 2),
    ];
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Rst)));
    assert_eq!(trust(&r).unconfirmed_closed, 1);
}

#[test]
fn forged_data_in_another_sequence_region_is_rejected() {
    let mut segs = handshake();
    segs.extend([
        // Arrives before the real request, 1 GiB away from the client's ISN.
        Seg::new(
            REQ,
            1001 + (1 << 30),
            ACK,
            b"POST /forged HTTP/1.1\r\n\r\n",
            10,
        ),
        // And one just beyond the window, and one a window behind.
        Seg::new(
            REQ,
            1001 + WINDOW,
            ACK,
            b"POST /forged HTTP/1.1\r\n\r\n",
            11,
        ),
        Seg::new(REQ, 1001u32.wrapping_sub(WINDOW + 5), ACK, b"XXXX", 12),
        // A FIN outside the window does not end the direction either.
        Seg::new(REQ, 1001 + (1 << 31), FIN, b"", 13),
        Seg::new(REQ, 1001, ACK, b"GET / HTTP/1.1\r\n\r\n", 14),
        Seg::new(RSP, 5001, ACK, b"HTTP/1.1 204 No Content\r\n\r\n", 15),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(
        rec.log(0)[1..],
        [
            Ev::Data(REQ, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            Ev::Data(RSP, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        ]
    );
    let t = trust(&r);
    assert_eq!(t.out_of_window_segments, 4);
    assert_eq!(t.out_of_window_bytes, 25 + 25 + 4);
    assert_eq!(r.counters().out_of_order_segments, 0);
    assert_eq!(r.counters().duplicate_bytes, 0);
    assert_eq!(r.buffered_bytes(), 0);
}

/// A FIN before the next expected byte is stale (or forged): the direction does not end.
#[test]
fn stale_fin_is_ignored() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"abcdef", 10),
        Seg::new(REQ, 1003, FIN, b"", 11),
        Seg::new(REQ, 1007, ACK, b"gh", 12),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, REQ), b"abcdefgh");
    assert!(!rec.log(0).contains(&Ev::Fin(REQ)));
    assert_eq!(trust(&r).stale_fins, 1);
}

#[test]
fn window_and_rst_survive_the_wrap_around() {
    let isn = u32::MAX - 3; // data starts at u32::MAX - 2 and wraps after 3 bytes
    let segs = [
        Seg::new(REQ, isn, SYN, b"", 1),
        Seg::new(RSP, 5000, SYN | ACK, b"", 2),
        Seg::new(REQ, isn.wrapping_add(1), ACK, b"abcde", 3), // crosses 2^32
        Seg::new(
            REQ,
            isn.wrapping_add(6).wrapping_add(1 << 31),
            ACK,
            b"forged",
            4,
        ),
        Seg::new(REQ, isn.wrapping_sub(WINDOW + 10), ACK, b"forged", 5),
        Seg::new(REQ, isn.wrapping_add(6 + WINDOW), RST, b"", 6),
        Seg::new(REQ, isn.wrapping_add(6), ACK, b"fgh", 7), // seq 2
        Seg::new(REQ, isn.wrapping_add(9), RST, b"", 8),    // seq 5: the next expected byte
    ];
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(isn.wrapping_add(9), 5);
    assert_eq!(rec.stream(0, REQ), b"abcdefgh");
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Rst)));
    let t = trust(&r);
    assert_eq!(t.out_of_window_segments, 2);
    assert_eq!(t.rst_out_of_window, 1);
    assert_eq!(t.handshakes, 1);
}

#[test]
fn mid_stream_pickup_is_confirmed_by_both_directions() {
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let mut rec = Recorder::default();
    let request = Seg::new(REQ, 123, ACK, b"GET /next HTTP/1.1\r\n\r\n", 1);
    r.on_segment(&request.as_segment(), &mut rec);
    // Another request of the client alone does not confirm.
    let again = Seg::new(REQ, 145, ACK, b"GET /more HTTP/1.1\r\n\r\n", 2);
    r.on_segment(&again.as_segment(), &mut rec);
    assert_eq!(r.unconfirmed_connections(), 1);
    assert_eq!(trust(&r).confirmed, 0);
    assert_eq!(rec.confirmed, []);
    let answer = Seg::new(RSP, 9000, ACK, b"HTTP/1.1 204 No Content\r\n\r\n", 3);
    r.on_segment(&answer.as_segment(), &mut rec);
    // Told before the answer's bytes: open and two requests were logged.
    assert_eq!(rec.confirmed, [(0, 3)]);
    assert_eq!(r.unconfirmed_connections(), 0);
    assert_eq!(r.active_connections(), 1);
    let t = trust(&r);
    assert_eq!((t.confirmed, t.handshakes), (1, 0));
    assert_eq!(
        rec.merged(0),
        [
            Ev::Open { mid_stream: true },
            Ev::Data(
                REQ,
                b"GET /next HTTP/1.1\r\n\r\nGET /more HTTP/1.1\r\n\r\n".to_vec()
            ),
            Ev::Data(RSP, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        ]
    );
    r.finish(Timestamp::from_secs(1), &mut rec);
    assert_eq!(trust(&r).unconfirmed_closed, 0);
}

/// A spoofed data segment for a made-up 4-tuple: no handshake, one direction only.
fn spoofed(i: u32, payload: &[u8], ts: u64) -> Segment<'_> {
    Segment {
        key: ConnectionKey {
            client: SocketAddr::from((Ipv4Addr::from(0x0b00_0000 + i), 40000)),
            server: key(1).server,
        },
        direction: REQ,
        seq: i.wrapping_mul(7919),
        flags: TcpFlags(ACK),
        payload,
        timestamp: Timestamp::from_nanos(ts),
        after_capture_loss: false,
        capture_skip: None,
    }
}

#[test]
fn flood_of_spoofed_tuples_does_not_evict_an_established_connection() {
    const FLOOD: u32 = 100_000;
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let mut rec = Recorder::default();
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"GET /a HTTP/1.1\r\n\r\n", 10),
        Seg::new(RSP, 5001, ACK, b"HTTP/1.1 204 No Content\r\n\r\n", 11),
    ]);
    for s in &segs {
        r.on_segment(&s.as_segment(), &mut rec);
    }
    let forged = b"POST /api/chat/completions HTTP/1.1\r\n";
    for i in 0..FLOOD {
        r.on_segment(&spoofed(i, forged, 100 + u64::from(i)), &mut rec);
    }
    for s in [
        Seg::new(REQ, 1020, ACK, b"GET /b HTTP/1.1\r\n\r\n", 200_000),
        Seg::new(RSP, 5028, ACK, b"HTTP/1.1 204 No Content\r\n\r\n", 200_001),
    ] {
        r.on_segment(&s.as_segment(), &mut rec);
    }
    assert_eq!(
        rec.merged(0),
        [
            Ev::Open { mid_stream: false },
            Ev::Data(REQ, b"GET /a HTTP/1.1\r\n\r\n".to_vec()),
            Ev::Data(RSP, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
            Ev::Data(REQ, b"GET /b HTTP/1.1\r\n\r\n".to_vec()),
            Ev::Data(RSP, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        ]
    );
    let evicted = u64::from(FLOOD) - (65_536 - 1);
    let c = r.counters();
    assert_eq!(c.connections_opened, u64::from(FLOOD) + 1);
    assert_eq!(c.connections_evicted, evicted);
    assert_eq!(c.trust.unconfirmed_evicted, evicted);
    assert_eq!(c.trust.unconfirmed_closed, evicted);
    assert_eq!(c.trust.handshakes, 1);
    assert_eq!(r.active_connections(), 65_536);
    assert_eq!(r.unconfirmed_connections(), 65_535);
}

/// With only established connections in a full table, the least recently used one goes.
#[test]
fn established_connections_are_evicted_when_no_unconfirmed_one_is_left() {
    let limits = ReassemblyLimits {
        max_connections: 2,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits);
    let mut rec = Recorder::default();
    for port in [1u16, 2] {
        for mut s in handshake() {
            s.port = port;
            r.on_segment(&s.as_segment(), &mut rec);
        }
    }
    r.on_segment(&spoofed(0, b"x", 10), &mut rec); // evicts port 1, the older
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Evicted)));
    r.on_segment(&spoofed(1, b"x", 11), &mut rec); // evicts the spoofed one, not port 2
    assert_eq!(rec.log(2).last(), Some(&Ev::Close(CloseReason::Evicted)));
    assert_eq!(rec.log(1).last(), Some(&Ev::Open { mid_stream: false }));
    let c = r.counters();
    assert_eq!((c.connections_evicted, c.trust.unconfirmed_evicted), (2, 1));
}

#[test]
fn conflicting_overlap_is_counted_and_the_first_copy_stays() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"GET /", 10),
        Seg::new(REQ, 1013, ACK, b"1.1\r\n\r\n", 11), // buffered behind the hole 1006..1013
        Seg::new(REQ, 1011, ACK, b"P/9.9", 12),       // overlaps "1.1" with "9.9"
        Seg::new(REQ, 1001, ACK, b"PUT /", 13),       // differs from delivered bytes
        Seg::new(REQ, 1006, ACK, b"a HTTP/", 14),     // fills the hole; overlap is equal
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.stream(0, REQ), b"GET /a HTTP/1.1\r\n\r\n");
    let t = trust(&r);
    assert_eq!((t.conflicting_segments, t.conflicting_bytes), (1, 2));
}

/// The capture lost more than a window of one direction: after `window_resync_ms` of data
/// outside the window only, the direction jumps to it and reports the distance as a gap.
#[test]
fn direction_resynchronises_after_losing_more_than_a_window() {
    let limits = ReassemblyLimits {
        max_window_bytes: 1000,
        window_resync_ms: 5_000,
        ..ReassemblyLimits::default()
    };
    let ms = 1_000_000u64;
    let mut segs = handshake();
    segs.extend([
        Seg::new(RSP, 5001, ACK, b"abc", 10 * ms),
        Seg::new(RSP, 7004, ACK, b"xyz", 20 * ms), // 2000 ahead: out of window
        Seg::new(REQ, 1001, ACK, b"", 3000 * ms),  // the other direction does not matter
        Seg::new(RSP, 7007, ACK, b"uvw", 5019 * ms), // still too early
        Seg::new(RSP, 7010, ACK, b"rst", 5020 * ms), // resync here
        Seg::new(RSP, 7013, ACK, b"!", 5021 * ms),
        Seg::new(RSP, 7004, ACK, b"xyz", 5022 * ms), // now before the new start
    ]);
    let (r, rec) = run(limits, &segs);
    assert_eq!(
        rec.merged(0)[1..],
        [
            Ev::Data(RSP, b"abc".to_vec()),
            Ev::Gap(RSP, 2006),
            Ev::Data(RSP, b"rst!".to_vec()),
        ]
    );
    let t = trust(&r);
    assert_eq!(t.window_resyncs, 1);
    assert_eq!(t.out_of_window_segments, 2);
    assert_eq!(r.counters().bytes_before_start, 3);
}

/// Pure ACKs inside the window keep an idle direction from jumping to forged data.
#[test]
fn in_window_acks_keep_a_direction_from_resynchronising() {
    let limits = ReassemblyLimits {
        window_resync_ms: 5_000,
        ..ReassemblyLimits::default()
    };
    let s = 1_000_000_000u64;
    let mut segs = handshake();
    for t in 1..=20u64 {
        segs.push(Seg::new(REQ, 1001 + (1 << 30), ACK, b"forged", t * s));
        segs.push(Seg::new(REQ, 1001, ACK, b"", t * s + 1));
    }
    segs.push(Seg::new(REQ, 1001, ACK, b"real", 21 * s));
    let (r, rec) = run(limits, &segs);
    assert_eq!(rec.stream(0, REQ), b"real");
    assert_eq!(trust(&r).window_resyncs, 0);
    assert_eq!(trust(&r).out_of_window_segments, 20);
}

proptest! {
    /// Forged segments outside the window, anywhere among a real connection's segments, change
    /// nothing the handler sees.
    #[test]
    fn forged_segments_outside_the_window_change_nothing(
        cuts in proptest::collection::vec(1usize..300, 0..8),
        forged in proptest::collection::vec(
            (0usize..20, (WINDOW + 301)..(u32::MAX - WINDOW - 2000), 0u8..3, 1usize..40),
            0..20,
        ),
    ) {
        let body: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut real = handshake();
        let mut from = 0;
        for &c in cuts.iter().chain([&body.len()]) {
            if c > from {
                real.push(Seg::new(REQ, 1001 + from as u32, ACK, &body[from..c], 10));
                real.push(Seg::new(RSP, 5001 + from as u32, ACK, &body[from..c], 11));
                from = c;
            }
        }
        let (_, clean) = run(ReassemblyLimits::default(), &real);
        let mut mixed = real.clone();
        for (at, distance, kind, len) in forged {
            let dir = if at % 2 == 0 { REQ } else { RSP };
            let isn_next = if dir == REQ { 1001u32 } else { 5001 };
            let seq = isn_next.wrapping_add(distance);
            let flags = [ACK, FIN, RST][kind as usize];
            let seg = Seg::new(dir, seq, flags, &vec![b'F'; len], 10);
            mixed.insert(at.min(mixed.len()).max(3), seg);
        }
        let (_, dirty) = run(ReassemblyLimits::default(), &mixed);
        prop_assert_eq!(clean.merged(0), dirty.merged(0));
    }
}

/// A SYN with a new ISN on an established connection is held: without the server's SYN-ACK
/// the connection goes on, and a SYN-ACK without a held SYN is ignored.
#[test]
fn forged_syn_does_not_end_an_established_connection() {
    let mut segs = handshake();
    segs.extend([
        Seg::new(REQ, 1001, ACK, b"one", 10),
        Seg::new(REQ, 777, SYN, b"", 11),
        Seg::new(REQ, 1004, ACK, b"two", 12), // the old connection goes on: the SYN is dropped
        Seg::new(RSP, 9000, SYN | ACK, b"", 13),
        Seg::new(RSP, 5001, ACK, b"answer", 14),
    ]);
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.logs.len(), 1);
    assert_eq!(rec.stream(0, REQ), b"onetwo");
    assert_eq!(rec.stream(0, RSP), b"answer");
    let c = r.counters();
    assert_eq!(c.connections_reused, 0);
    assert_eq!((c.trust.syns_held, c.trust.syns_ignored), (1, 1));
}

/// On an unconfirmed connection a new ISN reuses the 4-tuple at once.
#[test]
fn syn_on_an_unconfirmed_connection_reuses_it_at_once() {
    let segs = [
        Seg::new(REQ, 10, ACK, b"half", 1),
        Seg::new(REQ, 777, SYN, b"", 2),
        Seg::new(REQ, 778, ACK, b"new", 3),
    ];
    let (r, rec) = run(ReassemblyLimits::default(), &segs);
    assert_eq!(rec.log(0).last(), Some(&Ev::Close(CloseReason::Reused)));
    assert_eq!(rec.stream(1, REQ), b"new");
    assert_eq!(r.counters().connections_reused, 1);
    assert_eq!(r.counters().trust.syns_held, 0);
}

proptest! {
    /// Whatever spoofed segments arrive, and however small the table, established connections
    /// that fit in it are never evicted.
    #[test]
    fn spoofed_tuples_never_evict_established_connections(
        max in 2usize..8,
        established in 1usize..8,
        spoofed_ids in proptest::collection::vec(0u32..50, 0..200),
    ) {
        let established = established.min(max - 1);
        let limits = ReassemblyLimits { max_connections: max, ..ReassemblyLimits::default() };
        let mut r = Reassembler::new(limits);
        let mut rec = Recorder::default();
        for port in 0..established as u16 {
            for mut s in handshake() {
                s.port = port + 1;
                r.on_segment(&s.as_segment(), &mut rec);
            }
        }
        for (t, id) in spoofed_ids.into_iter().enumerate() {
            r.on_segment(&spoofed(id, b"x", 10 + t as u64), &mut rec);
        }
        for i in 0..established {
            prop_assert_eq!(rec.log(i), [Ev::Open { mid_stream: false }]);
        }
        prop_assert_eq!(r.active_connections() - r.unconfirmed_connections(), established);
    }
}
