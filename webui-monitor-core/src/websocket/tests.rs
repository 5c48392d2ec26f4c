//! Connection-level tests: frame fixtures, segmentation invariance, garbage, and the replay of
//! `fixtures/openwebui/browser.pcap`'s WebSocket.
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
};

use proptest::prelude::*;

use crate::{
    expected_check,
    pcap::{CaptureReader, Dissector, PcapLimits},
    segment::{ConnectionKey, Direction, Timestamp},
    usage::Usage,
    websocket::{
        SocketEvent, WebSocketConnection, WebSocketCounters, WebSocketLimits, WebSocketShared,
        frame::{FrameHeader, Opcode},
        message::{Decoded, DirectionDecoder},
        testutil::{Encoder, frame, openwebui},
    },
};

const TS: Timestamp = Timestamp::from_secs(1_795_766_800);

fn key() -> ConnectionKey {
    ConnectionKey {
        client: SocketAddr::from((Ipv4Addr::LOCALHOST, 56146)),
        server: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
    }
}

/// Feeds whole streams (request first) and closes; returns events, counters, stats.
fn run(
    extensions: Option<&str>,
    limits: WebSocketLimits,
    c2s: &[u8],
    s2c: &[u8],
) -> (Vec<SocketEvent>, WebSocketCounters, WebSocketConnection) {
    let mut shared = WebSocketShared::new(limits);
    let mut conn = WebSocketConnection::new(key(), extensions, &mut shared);
    let mut out = Vec::new();
    conn.on_data(Direction::Request, c2s, TS, &mut shared, &mut out);
    conn.on_data(Direction::Response, s2c, TS, &mut shared, &mut out);
    conn.on_close(TS, &mut shared, &mut out);
    (out, shared.counters, conn)
}

fn usage_event(message_id: &str, prompt: u64, completion: u64, done: bool) -> SocketEvent {
    SocketEvent::Usage {
        chat_id: Some("c1".into()),
        message_id: message_id.into(),
        usage: Usage::io(prompt, completion),
        done,
        ts: TS,
    }
}

fn done_event(message_id: &str) -> SocketEvent {
    SocketEvent::Done {
        chat_id: Some("c1".into()),
        message_id: message_id.into(),
        ts: TS,
    }
}

/// The events of an Open WebUI answer: sid, deltas, usage twice, done.
fn answer_messages() -> Vec<String> {
    vec![
        openwebui::engineio_open("eio-sid"),
        openwebui::connect("sio-sid"),
        openwebui::other_event("c1", "m1", "chat:active"),
        openwebui::delta("c1", "m1", "Mock "),
        openwebui::delta("c1", "m1", "reply."),
        openwebui::usage("c1", "m1", 6, 19, false),
        openwebui::usage("c1", "m1", 6, 19, true),
        "430[true]".to_string(),
    ]
}

fn answer_events() -> Vec<SocketEvent> {
    vec![
        SocketEvent::Connected {
            sid: "sio-sid".into(),
            ts: TS,
        },
        SocketEvent::FirstDelta {
            chat_id: Some("c1".into()),
            message_id: "m1".into(),
            ts: TS,
        },
        usage_event("m1", 6, 19, false),
        usage_event("m1", 6, 19, true),
        done_event("m1"),
    ]
}

#[test]
fn masked_fragmented_with_control_frames_between_fragments() {
    // "40{}" then user-join split in three masked fragments, a ping and a pong in between.
    let join = openwebui::user_join("h.p.s");
    let (a, rest) = join.as_bytes().split_at(10);
    let (b, c) = rest.split_at(7);
    let mut c2s = frame(true, 0, Opcode::Text, Some([1, 2, 3, 4]), b"40{}");
    c2s.extend(frame(
        false,
        0,
        Opcode::Text,
        Some([0xde, 0xad, 0xbe, 0xef]),
        a,
    ));
    c2s.extend(frame(true, 0, Opcode::Ping, Some([5, 6, 7, 8]), b"hi"));
    c2s.extend(frame(false, 0, Opcode::Continuation, Some([9, 9, 9, 9]), b));
    c2s.extend(frame(true, 0, Opcode::Pong, Some([0, 0, 0, 1]), b""));
    c2s.extend(frame(true, 0, Opcode::Continuation, Some([7, 7, 7, 7]), c));
    c2s.extend(frame(
        true,
        0,
        Opcode::Close,
        Some([1, 1, 1, 1]),
        &1001u16.to_be_bytes(),
    ));
    let (out, counters, conn) = run(None, WebSocketLimits::default(), &c2s, &[]);
    match out.as_slice() {
        [
            SocketEvent::UserJoin { token, ts },
            SocketEvent::Closed { .. },
        ] => {
            assert_eq!(token.expose(), b"h.p.s");
            assert_eq!(*ts, TS);
        }
        other => panic!("unexpected {other:?}"),
    }
    let stats = conn.stats();
    let d = stats.directions[0];
    assert_eq!(
        (
            d.text_frames,
            d.continuation_frames,
            d.ping_frames,
            d.pong_frames,
            d.close_frames
        ),
        (2, 2, 1, 1, 1)
    );
    assert_eq!((d.messages, d.wire_bytes), (2, c2s.len() as u64));
    assert_eq!(stats.close_codes, [Some(1001), None]);
    assert_eq!(
        (stats.packets[0].sio_connect, stats.packets[0].sio_event),
        (1, 1)
    );
    assert_eq!(counters.frames, [7, 0]);
    assert_eq!(counters.messages, [2, 0]);
    assert_eq!(counters.protocol_errors, 0);
}

#[test]
fn joined_mid_stream_is_undecodable() {
    let mut shared = WebSocketShared::default();
    let mut conn = WebSocketConnection::joined_mid_stream(key(), &mut shared);
    let mut out = Vec::new();
    let frame = frame(
        true,
        0,
        Opcode::Text,
        None,
        openwebui::connect("s").as_bytes(),
    );
    conn.on_data(Direction::Response, &frame, TS, &mut shared, &mut out);
    conn.on_data(Direction::Response, &frame, TS, &mut shared, &mut out);
    conn.on_close(TS, &mut shared, &mut out);
    assert_eq!(
        out,
        [
            SocketEvent::Undecodable { ts: TS },
            SocketEvent::Closed { ts: TS }
        ]
    );
    assert_eq!(
        (
            shared.counters.connections,
            shared.counters.undecodable_connections
        ),
        (1, 1)
    );
}

#[test]
fn testutil_round_trip() {
    let mut server = Encoder::server(true);
    let mut client = Encoder::client(true);
    let texts = answer_messages();
    let s2c: Vec<u8> = texts.iter().flat_map(|m| server.text(m)).collect();
    let mut c2s = client.text(&openwebui::client_connect());
    c2s.extend(client.text(&openwebui::user_join("h.p.s")));
    assert_eq!(
        crate::websocket::testutil::decode_messages(
            Direction::Response,
            Some(openwebui::EXTENSIONS),
            &s2c
        )
        .unwrap(),
        texts
    );
    assert_eq!(
        crate::websocket::testutil::decode_messages(
            Direction::Request,
            Some(openwebui::EXTENSIONS),
            &c2s
        )
        .unwrap(),
        [openwebui::client_connect(), openwebui::user_join("h.p.s")]
    );
    assert!(openwebui::switching_protocols().ends_with("\r\n\r\n"));
    assert!(openwebui::upgrade_request("127.0.0.1:8080").starts_with("GET /ws/socket.io/"));
}

#[test]
fn sixty_four_bit_length_message() {
    // The final event carries a long answer before its usage: > 64 KiB needs a 64-bit length.
    let text = openwebui::usage("c1", "m1", 31, 19, true).replace(
        "\"text\":\"answer\"",
        &format!("\"text\":\"{}\"", "a".repeat(70_000)),
    );
    let s2c = frame(true, 0, Opcode::Text, None, text.as_bytes());
    assert_eq!(s2c[1], 127);
    let (out, counters, _) = run(None, WebSocketLimits::default(), &[], &s2c);
    assert_eq!(
        out,
        [
            usage_event("m1", 31, 19, true),
            done_event("m1"),
            SocketEvent::Closed { ts: TS }
        ]
    );
    assert_eq!(counters.messages_truncated, 0);
}

#[test]
fn compressed_with_context_takeover() {
    let mut server = Encoder::server(true);
    let mut client = Encoder::client(true);
    let mut s2c: Vec<u8> = answer_messages()
        .iter()
        .flat_map(|m| server.text(m))
        .collect();
    s2c.extend(server.close(1001));
    let mut c2s = client.text(&openwebui::client_connect());
    c2s.extend(client.text(&openwebui::user_join("h.p.s")));
    // A fragmented compressed message: RSV1 on the first frame only.
    for f in client.text_fragmented(&openwebui::user_join("h.p.t"), 3) {
        c2s.extend(f);
    }
    let (out, counters, conn) = run(
        Some(openwebui::EXTENSIONS),
        WebSocketLimits::default(),
        &c2s,
        &s2c,
    );
    let tokens: Vec<&[u8]> = out
        .iter()
        .filter_map(|e| match e {
            SocketEvent::UserJoin { token, .. } => Some(token.expose()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, [&b"h.p.s"[..], b"h.p.t"]);
    let server_events: Vec<SocketEvent> = out
        .into_iter()
        .filter(|e| !matches!(e, SocketEvent::UserJoin { .. }))
        .collect();
    let mut expected = answer_events();
    expected.push(SocketEvent::Closed { ts: TS });
    assert_eq!(server_events, expected);
    assert_eq!(counters.compressed_frames, [3, 8]);
    assert_eq!(counters.frames, [5, 9]);
    assert_eq!(counters.inflate_errors, 0);
    let stats = conn.stats();
    assert_eq!(stats.packets[1].eio_open, 1);
    assert_eq!(stats.packets[1].sio_ack, 1);
    assert_eq!(stats.packets[1].sio_event, 5);
}

#[test]
fn compressed_without_context_takeover() {
    let ext = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    let mut server = Encoder::server(true).without_context_takeover();
    let s2c: Vec<u8> = answer_messages()
        .iter()
        .flat_map(|m| server.text(m))
        .collect();
    let (out, counters, _) = run(Some(ext), WebSocketLimits::default(), &[], &s2c);
    let mut expected = answer_events();
    expected.push(SocketEvent::Closed { ts: TS });
    assert_eq!(out, expected);
    assert_eq!(counters.inflate_errors, 0);

    // Context-takeover traffic decoded as if the window were reset: never silently accepted.
    let mut server = Encoder::server(true);
    let s2c: Vec<u8> = answer_messages()
        .iter()
        .flat_map(|m| server.text(m))
        .collect();
    let (out, counters, _) = run(Some(ext), WebSocketLimits::default(), &[], &s2c);
    assert!(
        !out.iter().any(|e| matches!(e, SocketEvent::Usage { .. })),
        "{out:?}"
    );
    assert!(counters.inflate_errors + counters.packet_errors + counters.json_errors > 0);
}

#[test]
fn gap_in_compressed_direction_is_undecodable() {
    let mut server = Encoder::server(true);
    let first = server.text(&openwebui::connect("sio-sid"));
    let second = server.text(&openwebui::usage("c1", "m1", 6, 19, true));
    let mut shared = WebSocketShared::default();
    let mut conn = WebSocketConnection::new(key(), Some(openwebui::EXTENSIONS), &mut shared);
    let mut out = Vec::new();
    conn.on_data(Direction::Response, &first, TS, &mut shared, &mut out);
    conn.on_data(Direction::Response, &second[..3], TS, &mut shared, &mut out);
    conn.on_gap(Direction::Response, 5, TS, &mut shared, &mut out);
    conn.on_data(Direction::Response, &second[8..], TS, &mut shared, &mut out);
    conn.on_data(Direction::Request, b"\x81\x00", TS, &mut shared, &mut out);
    conn.on_close(TS, &mut shared, &mut out);
    assert_eq!(
        out,
        [
            SocketEvent::Connected {
                sid: "sio-sid".into(),
                ts: TS
            },
            SocketEvent::Undecodable { ts: TS },
            SocketEvent::Closed { ts: TS },
        ]
    );
    assert_eq!(shared.counters.undecodable_connections, 1);
    assert_eq!((shared.counters.gaps, shared.counters.gaps_skipped), (1, 0));
    assert!(!conn.is_decodable());
}

#[test]
fn gap_inside_uncompressed_payload_is_skipped() {
    let first = frame(
        true,
        0,
        Opcode::Text,
        None,
        openwebui::usage("c1", "m1", 1, 2, false).as_bytes(),
    );
    let second = frame(
        true,
        0,
        Opcode::Text,
        None,
        openwebui::usage("c1", "m2", 3, 4, false).as_bytes(),
    );
    let mut shared = WebSocketShared::default();
    let mut conn = WebSocketConnection::new(key(), None, &mut shared);
    let mut out = Vec::new();
    conn.on_data(Direction::Response, &first[..20], TS, &mut shared, &mut out);
    conn.on_gap(Direction::Response, 10, TS, &mut shared, &mut out);
    conn.on_data(Direction::Response, &first[30..], TS, &mut shared, &mut out);
    conn.on_data(Direction::Response, &second, TS, &mut shared, &mut out);
    let expected = usage_event("m2", 3, 4, false);
    assert_eq!(out, [expected]);
    assert_eq!(shared.counters.gaps_skipped, 1);
    assert_eq!(shared.counters.messages, [0, 2]);
}

#[test]
fn message_cap_truncates_but_keeps_the_window() {
    let mut server = Encoder::server(true);
    let big = openwebui::usage("c1", "m1", 6, 19, true).replace(
        "\"text\":\"answer\"",
        &format!("\"text\":\"{}\"", "b".repeat(10_000)),
    );
    let mut s2c = server.text(&big);
    s2c.extend(server.text(&openwebui::usage("c1", "m2", 1, 1, false)));
    let limits = WebSocketLimits {
        max_message_bytes: 4096,
        ..WebSocketLimits::default()
    };
    let (out, counters, _) = run(Some(openwebui::EXTENSIONS), limits, &[], &s2c);
    assert_eq!(
        out,
        [
            usage_event("m2", 1, 1, false),
            SocketEvent::Closed { ts: TS }
        ]
    );
    assert_eq!(counters.messages_truncated, 1);
    assert_eq!(counters.inflate_errors, 0);
}

#[test]
fn protocol_and_extension_errors() {
    // RSV1 without negotiated permessage-deflate.
    let s2c = frame(true, FrameHeader::RSV1, Opcode::Text, None, b"x");
    let (out, counters, _) = run(None, WebSocketLimits::default(), &[], &s2c);
    assert_eq!(
        out,
        [
            SocketEvent::Undecodable { ts: TS },
            SocketEvent::Closed { ts: TS }
        ]
    );
    assert_eq!(counters.protocol_errors, 1);
    // Continuation without a message.
    let s2c = frame(true, 0, Opcode::Continuation, None, b"x");
    let (_, counters, _) = run(None, WebSocketLimits::default(), &[], &s2c);
    assert_eq!(counters.protocol_errors, 1);
    // Oversized frame.
    let s2c = [0x81, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0];
    let (_, counters, _) = run(None, WebSocketLimits::default(), &[], &s2c);
    assert_eq!(
        (counters.frames_too_large, counters.protocol_errors),
        (1, 0)
    );
    // Corrupt compressed data.
    let s2c = frame(true, FrameHeader::RSV1, Opcode::Text, None, &[0xff; 16]);
    let (_, counters, _) = run(
        Some(openwebui::EXTENSIONS),
        WebSocketLimits::default(),
        &[],
        &s2c,
    );
    assert_eq!(
        (counters.inflate_errors, counters.undecodable_connections),
        (1, 1)
    );
    // Unparseable extension header.
    let (out, counters, _) = run(
        Some("permessage-deflate; server_max_window_bits=99"),
        WebSocketLimits::default(),
        b"\x81\x00",
        &[],
    );
    assert_eq!(
        out,
        [
            SocketEvent::Undecodable { ts: TS },
            SocketEvent::Closed { ts: TS }
        ]
    );
    assert_eq!(
        (counters.extension_errors, counters.undecodable_connections),
        (1, 1)
    );
}

#[test]
fn binary_events_are_counted_and_skipped() {
    let mut s2c = frame(
        true,
        0,
        Opcode::Text,
        None,
        b"451-[\"file\",{\"_placeholder\":true,\"num\":0}]",
    );
    s2c.extend(frame(true, 0, Opcode::Binary, None, &[0, 1, 2, 3]));
    s2c.extend(frame(
        true,
        0,
        Opcode::Text,
        None,
        openwebui::connect("s").as_bytes(),
    ));
    let (out, counters, conn) = run(None, WebSocketLimits::default(), &[], &s2c);
    assert_eq!(
        out,
        [
            SocketEvent::Connected {
                sid: "s".into(),
                ts: TS
            },
            SocketEvent::Closed { ts: TS }
        ]
    );
    assert_eq!(counters.binary_messages_skipped, 2);
    assert_eq!(conn.stats().packets[1].sio_binary, 2);
}

/// Feeds `stream` to one direction cut at `cuts`; all calls share one timestamp so that events
/// compare equal across segmentations.
fn events_with_cuts(
    extensions: Option<&str>,
    direction: Direction,
    stream: &[u8],
    cuts: &[usize],
) -> (Vec<SocketEvent>, WebSocketCounters) {
    let mut shared = WebSocketShared::default();
    let mut conn = WebSocketConnection::new(key(), extensions, &mut shared);
    let mut out = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    for cut in cuts.into_iter().chain([stream.len()]) {
        conn.on_data(direction, &stream[start..cut], TS, &mut shared, &mut out);
        start = cut;
    }
    conn.on_close(TS, &mut shared, &mut out);
    (out, shared.counters)
}

fn synthetic_server_stream() -> Vec<u8> {
    let mut server = Encoder::server(true);
    let mut s2c = Vec::new();
    for m in answer_messages() {
        s2c.extend(server.ping(b"p"));
        for f in server.text_fragmented(&m, 3) {
            s2c.extend(f);
        }
    }
    s2c.extend(server.close(1000));
    s2c
}

proptest! {
    #[test]
    fn any_segmentation_gives_the_same_events(cuts in prop::collection::vec(any::<usize>(), 0..64)) {
        let stream = synthetic_server_stream();
        let whole = events_with_cuts(Some(openwebui::EXTENSIONS), Direction::Response, &stream, &[]);
        let cut = events_with_cuts(Some(openwebui::EXTENSIONS), Direction::Response, &stream, &cuts);
        prop_assert_eq!(&cut, &whole);
        let mut expected = answer_events();
        expected.push(SocketEvent::Closed { ts: TS });
        prop_assert_eq!(whole.0, expected);
    }

    #[test]
    fn any_segmentation_of_the_browser_capture(cuts in prop::collection::vec(any::<usize>(), 0..64)) {
        let capture = browser_capture();
        for (direction, stream) in [(Direction::Request, &capture.c2s), (Direction::Response, &capture.s2c)] {
            let whole = events_with_cuts(Some(openwebui::EXTENSIONS), direction, stream, &[]);
            let cut = events_with_cuts(Some(openwebui::EXTENSIONS), direction, stream, &cuts);
            prop_assert_eq!(cut, whole);
        }
    }

    #[test]
    fn garbage_never_panics(
        c2s in prop::collection::vec(any::<u8>(), 0..2048),
        s2c in prop::collection::vec(any::<u8>(), 0..2048),
        deflate in any::<bool>(),
    ) {
        let ext = deflate.then_some(openwebui::EXTENSIONS);
        let (out, counters, _) = run(ext, WebSocketLimits::default(), &c2s, &s2c);
        prop_assert!(out.len() <= 64);
        prop_assert!(counters.undecodable_connections <= 1);
    }

    #[test]
    fn garbage_after_a_valid_prefix_never_panics(
        tail in prop::collection::vec(any::<u8>(), 0..1024),
        flip in any::<usize>(),
    ) {
        let mut stream = synthetic_server_stream();
        let at = flip % stream.len();
        stream[at] ^= 0x5a;
        stream.extend(tail);
        let (_, counters, _) = run(Some(openwebui::EXTENSIONS), WebSocketLimits::default(), &[], &stream);
        prop_assert!(counters.undecodable_connections <= 1);
    }
}

/// The WebSocket part of `browser.pcap`'s connection 56146, per direction, with the timestamp
/// of each TCP segment.
struct BrowserCapture {
    c2s: Vec<u8>,
    s2c: Vec<u8>,
    c2s_segments: Vec<(Timestamp, std::ops::Range<usize>)>,
    s2c_segments: Vec<(Timestamp, std::ops::Range<usize>)>,
}

/// The client 56146 connection's streams as the crate's pcap reader and dissector see them:
/// the fixture has no loss or retransmission (FIXTURES-README), so payloads concatenate in
/// capture order without a reassembler.
fn browser_capture() -> BrowserCapture {
    let file = std::fs::read(expected_check::fixture_dir().join("browser.pcap")).expect("fixture");
    let mut reader = CaptureReader::new(file.as_slice(), PcapLimits::default()).expect("header");
    let dissector = Dissector::new([8080]);
    let mut streams: [Vec<u8>; 2] = Default::default();
    let mut segments: [Vec<(Timestamp, std::ops::Range<usize>)>; 2] = Default::default();
    while let Some(packet) = reader.next_packet().expect("packet") {
        let Ok(seg) = dissector.dissect(packet.link_type, packet.timestamp, packet.data) else {
            continue;
        };
        if seg.key.client.port() != 56146 || seg.payload.is_empty() {
            continue;
        }
        let d = seg.direction.index();
        let start = streams[d].len();
        streams[d].extend_from_slice(seg.payload);
        segments[d].push((seg.timestamp, start..streams[d].len()));
    }
    // The HTTP part ends with the upgrade request and the 101 response headers.
    let cut = |d: usize| {
        let end = streams[d]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header")
            + 4;
        let body = streams[d][end..].to_vec();
        let segs = segments[d]
            .iter()
            .filter(|(_, r)| r.end > end)
            .map(|(ts, r)| (*ts, r.start.max(end) - end..r.end - end))
            .collect();
        (body, segs)
    };
    let (c2s, c2s_segments) = cut(0);
    let (s2c, s2c_segments) = cut(1);
    BrowserCapture {
        c2s,
        s2c,
        c2s_segments,
        s2c_segments,
    }
}

fn expected_websocket() -> serde_json::Value {
    expected_check::expected("browser")["websocket"][0].clone()
}

/// Replays the capture segment by segment in capture order (both directions interleaved).
fn replay_browser() -> (Vec<SocketEvent>, WebSocketShared, WebSocketConnection) {
    let capture = browser_capture();
    let mut segments: Vec<(Timestamp, Direction, &[u8])> = capture
        .c2s_segments
        .iter()
        .map(|(ts, r)| (*ts, Direction::Request, &capture.c2s[r.clone()]))
        .chain(
            capture
                .s2c_segments
                .iter()
                .map(|(ts, r)| (*ts, Direction::Response, &capture.s2c[r.clone()])),
        )
        .collect();
    segments.sort_by_key(|(ts, ..)| *ts);
    let expected = expected_websocket();
    let extensions = expected["extensions"].as_str().expect("extensions");
    let mut shared = WebSocketShared::default();
    let mut conn = WebSocketConnection::new(key(), Some(extensions), &mut shared);
    let mut out = Vec::new();
    for (ts, direction, data) in &segments {
        conn.on_data(*direction, data, *ts, &mut shared, &mut out);
    }
    let last = segments.last().map_or(TS, |s| s.0);
    conn.on_close(last, &mut shared, &mut out);
    (out, shared, conn)
}

fn ts_of(value: &serde_json::Value) -> Timestamp {
    // Microsecond timestamps: round through integer microseconds to avoid float error.
    let micros = (value.as_f64().expect("ts") * 1e6).round() as u64;
    Timestamp::from_nanos(micros * 1000)
}

#[test]
fn browser_capture_frames_and_bytes() {
    let expected = expected_websocket();
    let (_, shared, conn) = replay_browser();
    let stats = conn.stats();
    let [c2s, s2c] = stats.directions;
    let n = |k: &str| expected[k].as_u64().expect(k);
    assert_eq!(
        (c2s.frames(), c2s.text_frames, c2s.close_frames),
        (n("frames_c2s"), 7, 1)
    );
    assert_eq!(
        (s2c.frames(), s2c.text_frames, s2c.close_frames),
        (n("frames_s2c"), 64, 1)
    );
    assert_eq!(
        (c2s.compressed_frames, s2c.compressed_frames),
        (n("compressed_frames_c2s"), n("compressed_frames_s2c"))
    );
    assert_eq!((c2s.wire_bytes, s2c.wire_bytes), (573, 2539));
    assert_eq!(
        (c2s.wire_bytes, s2c.wire_bytes),
        (n("wire_bytes_c2s"), n("wire_bytes_s2c"))
    );
    assert_eq!(
        (c2s.messages, s2c.messages),
        (n("messages_c2s"), n("messages_s2c"))
    );
    assert_eq!(stats.close_codes, [Some(1001), Some(1001)]);
    let c = &shared.counters;
    assert_eq!(c.connections, 1);
    assert_eq!(c.frames, [8, 65]);
    assert_eq!(c.compressed_frames, [7, 64]);
    assert_eq!(c.wire_bytes, [573, 2539]);
    assert_eq!(c.messages, [7, 64]);
    assert_eq!(
        (
            c.inflate_errors,
            c.protocol_errors,
            c.undecodable_connections,
            c.json_errors,
            c.packet_errors
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(n("inflate_errors"), 0);
    let [p_c2s, p_s2c] = stats.packets;
    assert_eq!((p_c2s.sio_connect, p_c2s.sio_event), (1, 6));
    assert_eq!(
        (
            p_s2c.eio_open,
            p_s2c.sio_connect,
            p_s2c.sio_ack,
            p_s2c.sio_event
        ),
        (1, 1, 1, 61)
    );
}

#[test]
fn browser_capture_events() {
    let expected = expected_websocket();
    let (out, _, _) = replay_browser();
    let connected: Vec<&SocketEvent> = out
        .iter()
        .filter(|e| matches!(e, SocketEvent::Connected { .. }))
        .collect();
    match connected.as_slice() {
        [SocketEvent::Connected { sid, .. }] => {
            assert_eq!(sid, "ra3UWfHOjscDF_mPAAAH");
            assert_eq!(sid, expected["socketio_sid"].as_str().unwrap());
        }
        other => panic!("unexpected {other:?}"),
    }
    // Usage events: exactly the expected ones, in order, with their timestamps.
    let usage: Vec<(Timestamp, String, String, u64, u64, u64, bool)> = out
        .iter()
        .filter_map(|e| match e {
            SocketEvent::Usage {
                chat_id,
                message_id,
                usage,
                done,
                ts,
            } => Some((
                *ts,
                chat_id.clone().unwrap_or_default(),
                message_id.clone(),
                usage.input,
                usage.output,
                usage.input + usage.output,
                *done,
            )),
            _ => None,
        })
        .collect();
    let expected_usage: Vec<(Timestamp, String, String, u64, u64, u64, bool)> =
        expected["usage_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    ts_of(&u["ts"]),
                    u["chat_id"].as_str().unwrap().to_string(),
                    u["message_id"].as_str().unwrap().to_string(),
                    u["prompt_tokens"].as_u64().unwrap(),
                    u["completion_tokens"].as_u64().unwrap(),
                    u["total_tokens"].as_u64().unwrap(),
                    u["done"].as_bool().unwrap(),
                )
            })
            .collect();
    assert_eq!(usage, expected_usage);
    assert_eq!(
        usage
            .iter()
            .map(|u| (&u.2[..8], u.3, u.4))
            .collect::<Vec<_>>(),
        [
            ("1036e29f", 6, 19),
            ("1036e29f", 6, 19),
            ("752d9253", 31, 19),
            ("752d9253", 31, 19)
        ]
    );
    // One usage per answer once deduplicated by message id: the expected `messages[]`.
    let mut per_answer: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for u in &usage {
        per_answer.entry(&u.2).or_insert((u.3, u.4));
    }
    for m in expected["messages"].as_array().unwrap() {
        let id = m["message_id"].as_str().unwrap();
        assert_eq!(
            per_answer.get(id),
            Some(&(
                m["prompt_tokens"].as_u64().unwrap(),
                m["completion_tokens"].as_u64().unwrap()
            ))
        );
    }
    // Done and first deltas: one each per answer; the first delta precedes its usage.
    let done: Vec<(&str, Timestamp)> = out
        .iter()
        .filter_map(|e| match e {
            SocketEvent::Done { message_id, ts, .. } => Some((message_id.as_str(), *ts)),
            _ => None,
        })
        .collect();
    let expected_done: Vec<(&str, Timestamp)> = expected["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["message_id"].as_str().unwrap(), ts_of(&m["ts"])))
        .collect();
    assert_eq!(done, expected_done);
    let first: Vec<(&str, Timestamp)> = out
        .iter()
        .filter_map(|e| match e {
            SocketEvent::FirstDelta { message_id, ts, .. } => Some((message_id.as_str(), *ts)),
            _ => None,
        })
        .collect();
    assert_eq!(first.len(), 2);
    for ((id, ts), (done_id, done_ts)) in first.iter().zip(&done) {
        assert_eq!(id, done_id);
        assert!(ts < done_ts);
    }
    assert!(matches!(out.last(), Some(SocketEvent::Closed { .. })));
    assert!(
        !out.iter()
            .any(|e| matches!(e, SocketEvent::Undecodable { .. }))
    );
}

#[test]
fn browser_capture_user_join_token_verifies() {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use hmac::{Hmac, Mac};
    let expected = expected_websocket();
    let (out, _, _) = replay_browser();
    let joins: Vec<(&[u8], Timestamp)> = out
        .iter()
        .filter_map(|e| match e {
            SocketEvent::UserJoin { token, ts } => Some((token.expose(), *ts)),
            _ => None,
        })
        .collect();
    let [(token, ts)] = joins.as_slice() else {
        panic!("expected one user-join, got {}", joins.len());
    };
    assert_eq!(*ts, ts_of(&expected["user_joins"][0]["ts"]));
    let token = std::str::from_utf8(token).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(b"owui-test-secret-key-0123456789abcdef").unwrap();
    mac.update(signed.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap())
        .expect("HS256 signature");
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split_once('.').unwrap().1)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["id"], "700c1556-9d86-452a-880f-edbc8a74ead8");
    assert_eq!(claims["id"], expected["user_joins"][0]["user_id"]);
    assert!(claims["exp"].as_u64().unwrap() > ts.as_secs());
}

/// Socket.IO events by name (and `data.type`), as the expected file counts them: decoded with
/// the direction decoder directly, test-side only.
#[test]
fn browser_capture_socketio_event_counts() {
    let expected = expected_websocket();
    let capture = browser_capture();
    let limits = WebSocketLimits::default();
    let params =
        crate::websocket::deflate::parse_extensions(expected["extensions"].as_str().unwrap())
            .unwrap()
            .unwrap();
    for (direction, stream, key) in [
        (Direction::Request, &capture.c2s, "events_c2s"),
        (Direction::Response, &capture.s2c, "events_s2c"),
    ] {
        let mut decoder = DirectionDecoder::new(
            direction,
            Some(params.direction(direction)),
            &crate::memory::MemoryAccount::default(),
        );
        let mut counters = WebSocketCounters::default();
        let mut input = &stream[..];
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(decoded) = decoder.next(&mut input, &limits, &mut counters).unwrap() {
            let Decoded::Message {
                bytes,
                intact: true,
                text: true,
            } = decoded
            else {
                continue;
            };
            let text = std::str::from_utf8(bytes).unwrap();
            let name = match text.as_bytes() {
                [b'0', ..] => "eio:open".to_string(),
                [b'4', b'0', ..] => "connect".to_string(),
                [b'4', b'3', ..] => "ack".to_string(),
                [b'4', b'2', ..] => {
                    let json = text[2..].trim_start_matches(|c: char| c.is_ascii_digit());
                    let v: serde_json::Value = serde_json::from_str(json).unwrap();
                    match v[1]["data"]["type"].as_str() {
                        Some(t) => format!("event:{}:{t}", v[0].as_str().unwrap()),
                        None => format!("event:{}", v[0].as_str().unwrap()),
                    }
                }
                _ => "other".to_string(),
            };
            *counts.entry(name).or_default() += 1;
        }
        let want: BTreeMap<String, u64> = expected[key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(counts, want, "{key}");
    }
}

#[test]
fn limits_deserialize_with_defaults() {
    let limits: WebSocketLimits =
        serde_json::from_str("{\"max_message_bytes\": 1024}").expect("limits");
    assert_eq!(
        limits,
        WebSocketLimits {
            max_message_bytes: 1024,
            ..WebSocketLimits::default()
        }
    );
    assert_eq!(WebSocketLimits::default().max_frame_bytes, 64 << 20);
    assert!(serde_json::from_str::<WebSocketLimits>("{\"max_mesage_bytes\": 1}").is_err());
}

/// A compressed message that inflates past `max_inflated_bytes` (40 MiB of spaces in a few
/// kilobytes) gives its connection up as a bomb: counted once, no event from it, and the
/// inflating stops at the cap instead of running to the end.
#[test]
fn inflation_bomb_gives_the_connection_up() {
    let mut server = Encoder::server(true);
    let mut s2c = server.text(&openwebui::connect("sio-sid"));
    let bomb = format!("42[\"events\",{}]", " ".repeat(40 << 20));
    let frame = server.text(&bomb);
    assert!(frame.len() < 64 << 10, "{}", frame.len());
    s2c.extend(frame);
    s2c.extend(server.text(&openwebui::usage("c1", "m1", 6, 19, true)));
    let (out, counters, _) = run(
        Some(openwebui::EXTENSIONS),
        WebSocketLimits::default(),
        &[],
        &s2c,
    );
    assert_eq!(counters.inflated_too_large, 1);
    assert_eq!(
        out,
        [
            SocketEvent::Connected {
                sid: "sio-sid".into(),
                ts: TS
            },
            SocketEvent::Undecodable { ts: TS },
            SocketEvent::Closed { ts: TS },
        ]
    );
}

/// Message buffers grow from the pipeline's memory budget: a connection that leaves a large
/// message unfinished holds what it buffered; another's message is cut where the budget ends
/// (counted), and buffers given back when a message starts over or the connection goes.
#[test]
fn message_buffers_share_one_memory_budget() {
    use crate::memory::{Holder, MemoryAccount, MemoryLimits};
    let mut shared = WebSocketShared::new(WebSocketLimits::default());
    shared.memory = MemoryAccount::new(&MemoryLimits {
        max_held_bytes: 1 << 20,
    });
    let memory = shared.memory.clone();
    let mut out = Vec::new();
    let big = format!("42[\"events\",\"{}\"]", "x".repeat(700 << 10));
    // Connection A: the first 600 KiB of a message, the rest never comes.
    let frame_a = frame(true, 0, Opcode::Text, None, big.as_bytes());
    let mut a = WebSocketConnection::new(key(), None, &mut shared);
    a.on_data(
        Direction::Response,
        &frame_a[..600 << 10],
        TS,
        &mut shared,
        &mut out,
    );
    let held_a = memory.held(Holder::WebSocketMessage);
    assert_eq!(
        held_a,
        (600 << 10) - 10,
        "the payload after the 10-byte header"
    );
    // Connection B: a whole message, cut where the budget ends.
    let mut other = key();
    other.client.set_port(56147);
    let mut b = WebSocketConnection::new(other, None, &mut shared);
    b.on_data(Direction::Response, &frame_a, TS, &mut shared, &mut out);
    assert_eq!(memory.held(Holder::WebSocketMessage), 1 << 20);
    assert_eq!(memory.refused(Holder::WebSocketMessage), 1);
    assert_eq!(shared.counters.messages_truncated, 1);
    // B's next message starts over: its buffer is given back first.
    b.on_data(
        Direction::Response,
        &frame(true, 0, Opcode::Text, None, b"2"),
        TS,
        &mut shared,
        &mut out,
    );
    assert_eq!(memory.held(Holder::WebSocketMessage), held_a + 1);
    drop(a);
    drop(b);
    assert_eq!(memory.held(Holder::WebSocketMessage), 0);
}
