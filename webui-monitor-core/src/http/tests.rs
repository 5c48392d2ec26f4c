//! Static byte fixtures for every feature of the HTTP engine, and split-invariance properties.
use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
};

use proptest::prelude::*;

use super::{
    HttpConnection, HttpEvent, HttpLimits, HttpShared,
    exchange::{Anomaly, Exchange},
};
use crate::{
    secret::SecretRef,
    segment::{ConnectionKey, Direction, Timestamp},
    usage::Usage,
};

const REQ: Direction = Direction::Request;
const RESP: Direction = Direction::Response;

fn key() -> ConnectionKey {
    ConnectionKey {
        client: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000)),
        server: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)),
    }
}

/// A scripted connection: pieces of data per direction with timestamps (seconds).
enum Step<'a> {
    Data(Direction, &'a [u8], u64),
    Gap(Direction, u64),
    Fin(Direction),
    Close,
}

struct Run {
    exchanges: Vec<Exchange>,
    upgrades: Vec<(Option<String>, [Vec<u8>; 2])>,
    shared: HttpShared,
}

fn run_with(limits: HttpLimits, mid_stream: bool, steps: &[Step<'_>]) -> Run {
    run_in(HttpShared::new(limits), mid_stream, steps)
}

fn run_in(mut shared: HttpShared, mid_stream: bool, steps: &[Step<'_>]) -> Run {
    let mut c = HttpConnection::new(key(), mid_stream);
    let mut out = Vec::new();
    let mut last = Timestamp::default();
    for step in steps {
        match *step {
            Step::Data(d, data, s) => {
                last = Timestamp::from_secs(s);
                // After an upgrade the pipeline hands the bytes to the WebSocket decoder; here
                // they are appended to the leftovers.
                if let Some(HttpEvent::Upgraded { leftover, .. }) = out
                    .iter_mut()
                    .find(|e| matches!(e, HttpEvent::Upgraded { .. }))
                {
                    leftover[d.index()].extend_from_slice(data);
                    continue;
                }
                c.on_data(d, data, last, &mut shared, &mut out);
            }
            Step::Gap(d, n) => c.on_gap(d, n, last, &mut shared, &mut out),
            Step::Fin(d) => c.on_fin(d, last, &mut shared, &mut out),
            Step::Close => c.on_close(last, &mut shared, &mut out),
        }
    }
    let mut r = Run {
        exchanges: Vec::new(),
        upgrades: Vec::new(),
        shared,
    };
    for e in out {
        match e {
            HttpEvent::Exchange(x) => r.exchanges.push(*x),
            HttpEvent::Upgraded {
                websocket_extensions,
                leftover,
            } => r.upgrades.push((websocket_extensions, leftover)),
        }
    }
    r
}

fn run(steps: &[Step<'_>]) -> Run {
    run_with(HttpLimits::default(), false, steps)
}

fn sizes(x: &Exchange) -> [u64; 6] {
    let r = x.response.as_ref().expect("response");
    [
        x.request.header_bytes,
        x.request.body_wire_bytes,
        r.header_bytes,
        r.body_wire_bytes,
        r.body_bytes,
        r.body_decoded_bytes.unwrap_or(u64::MAX),
    ]
}

const GET: &[u8] = b"GET /api/config HTTP/1.1\r\nHost: x\r\n\r\n"; // 37 bytes
const OK5: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"; // 38 + 5

#[test]
fn keep_alive_with_timestamps() {
    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(RESP, &OK5[..20], 2),
        Step::Data(RESP, &OK5[20..], 3),
        Step::Data(
            REQ,
            b"POST /a?q=secret HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            4,
        ),
        Step::Data(REQ, b"{}", 5),
        Step::Data(RESP, b"HTTP/1.1 204 No Content\r\n\r\n", 6),
    ]);
    assert_eq!(r.exchanges.len(), 2);
    let (a, b) = (&r.exchanges[0], &r.exchanges[1]);
    assert_eq!(
        (a.sequence, a.method.as_str(), a.path.as_str(), a.status),
        (0, "GET", "/api/config", Some(200))
    );
    assert_eq!(sizes(a), [37, 0, 38, 5, 5, 5]);
    let ar = a.response.as_ref().unwrap();
    assert_eq!(
        (a.request.first_byte, a.request.last_byte),
        (Timestamp::from_secs(1), Timestamp::from_secs(1))
    );
    assert_eq!(
        (ar.first_byte, ar.last_byte),
        (Timestamp::from_secs(2), Timestamp::from_secs(3))
    );
    assert!(ar.complete && a.request.complete);
    assert_eq!(
        (b.sequence, b.path.as_str(), b.has_query, b.status),
        (1, "/a", true, Some(204))
    );
    assert_eq!(sizes(b), [48, 2, 27, 0, 0, 0]);
    assert!(b.request_fields.json);
    assert_eq!(b.request.last_byte, Timestamp::from_secs(5));
    assert!(a.anomalies.is_empty() && b.anomalies.is_empty());
}

#[test]
fn pipelined_responses_match_requests_in_order() {
    let reqs = b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    let resps = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n";
    let r = run(&[Step::Data(REQ, reqs, 1), Step::Data(RESP, resps, 2)]);
    let got: Vec<_> = r
        .exchanges
        .iter()
        .map(|x| {
            (
                x.path.as_str(),
                x.status,
                x.response.as_ref().unwrap().body_wire_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/1", Some(200), 1),
            ("/2", Some(200), 0),
            ("/3", Some(304), 0)
        ]
    );
}

#[test]
fn responses_before_their_request_are_held() {
    let r = run(&[Step::Data(RESP, OK5, 1), Step::Data(REQ, GET, 2)]);
    assert_eq!(r.exchanges.len(), 1);
    assert_eq!(sizes(&r.exchanges[0]), [37, 0, 38, 5, 5, 5]);
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: y\r\n\r\n";
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut steps = vec![Step::Data(REQ, GET, 1), Step::Data(RESP, head, 2)];
    steps.extend(
        body.iter()
            .enumerate()
            .map(|(i, b)| Step::Data(RESP, std::slice::from_ref(b), 3 + i as u64)),
    );
    steps.push(Step::Data(REQ, GET, 100));
    steps.push(Step::Data(RESP, OK5, 101));
    let r = run(&steps);
    assert_eq!(r.exchanges.len(), 2);
    let x = &r.exchanges[0];
    let resp = x.response.as_ref().unwrap();
    assert_eq!(sizes(x), [37, 0, 47, body.len() as u64, 9, 9]);
    assert!(resp.chunked && resp.complete);
    assert_eq!(resp.chunks, 2);
    assert_eq!(
        resp.last_byte,
        Timestamp::from_secs(3 + body.len() as u64 - 1)
    );
    assert_eq!(r.exchanges[1].status, Some(200));
}

#[test]
fn close_delimited_bodies_end_at_fin_or_close() {
    let head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(RESP, head, 2),
        Step::Data(RESP, b"abc", 3),
        Step::Data(RESP, b"defg", 4),
        Step::Fin(RESP),
    ]);
    assert_eq!(r.exchanges.len(), 1);
    let resp = r.exchanges[0].response.as_ref().unwrap();
    assert_eq!(
        (resp.body_wire_bytes, resp.complete, resp.last_byte),
        (7, true, Timestamp::from_secs(4))
    );

    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(RESP, head, 2),
        Step::Data(RESP, b"abc", 3),
        Step::Close,
    ]);
    assert_eq!(r.exchanges[0].response.as_ref().unwrap().body_bytes, 3);
}

#[test]
fn interim_100_continue_is_skipped() {
    let r = run(&[
        Step::Data(
            REQ,
            b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            1,
        ),
        Step::Data(RESP, b"HTTP/1.1 100 Continue\r\n\r\n", 2),
        Step::Data(REQ, b"abc", 3),
        Step::Data(
            RESP,
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            4,
        ),
    ]);
    assert_eq!(r.exchanges.len(), 1);
    let x = &r.exchanges[0];
    assert_eq!(x.status, Some(201));
    assert_eq!(x.response.as_ref().unwrap().header_bytes, 43);
    assert_eq!(
        x.response.as_ref().unwrap().first_byte,
        Timestamp::from_secs(4)
    );
    assert_eq!(r.shared.counters.interim_responses, 1);
}

const UPGRADE: &[u8] =
    b"GET /ws/socket.io/?EIO=4 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

#[test]
fn upgrade_hands_over_leftovers() {
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n\r\n\x81\x02hi";
    let r = run(&[
        Step::Data(REQ, UPGRADE, 1),
        Step::Data(REQ, b"\x81\x82mask", 2),
        Step::Data(RESP, resp, 3),
        Step::Data(REQ, b"more", 4),
    ]);
    assert_eq!(r.exchanges.len(), 1);
    let x = &r.exchanges[0];
    assert!(x.upgraded);
    assert_eq!(
        (x.status, x.has_query, x.request_headers.upgrade()),
        (Some(101), true, Some("websocket"))
    );
    assert_eq!(r.upgrades.len(), 1);
    let (ext, leftover) = &r.upgrades[0];
    assert_eq!(
        ext.as_deref(),
        Some("permessage-deflate; server_max_window_bits=12")
    );
    assert_eq!(leftover[0], b"\x81\x82maskmore");
    assert_eq!(leftover[1], b"\x81\x02hi");
    assert_eq!(r.shared.counters.upgrades, 1);
}

#[test]
fn refused_upgrade_releases_held_requests() {
    let r = run(&[
        Step::Data(REQ, UPGRADE, 1),
        Step::Data(REQ, GET, 2),
        Step::Data(
            RESP,
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            3,
        ),
        Step::Data(RESP, OK5, 4),
    ]);
    let got: Vec<_> = r
        .exchanges
        .iter()
        .map(|x| (x.path.as_str(), x.status, x.upgraded))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/ws/socket.io/", Some(400), false),
            ("/api/config", Some(200), false)
        ]
    );
    assert_eq!(r.exchanges[1].request.first_byte, Timestamp::from_secs(2));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn encoded_response(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

const USAGE_JSON: &[u8] = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":4,"completion_tokens":17,"total_tokens":21}}"#;

#[test]
fn content_encodings_are_decoded() {
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(USAGE_JSON).unwrap();
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    raw.write_all(USAGE_JSON).unwrap();
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        w.write_all(USAGE_JSON).unwrap();
    }
    let zstd = zstd::stream::encode_all(USAGE_JSON, 3).unwrap();
    let cases = [
        ("gzip", gzip(USAGE_JSON)),
        ("deflate", zlib.finish().unwrap()),
        ("deflate", raw.finish().unwrap()),
        ("br", br),
        ("zstd", zstd),
        ("identity", USAGE_JSON.to_vec()),
    ];
    for (coding, body) in cases {
        let resp = encoded_response(coding, &body);
        for split in [1, 3, resp.len()] {
            let mut steps = vec![Step::Data(REQ, GET, 1)];
            steps.extend(resp.chunks(split).map(|c| Step::Data(RESP, c, 2)));
            let r = run(&steps);
            let x = &r.exchanges[0];
            let resp = x.response.as_ref().unwrap();
            assert_eq!(resp.body_bytes, body.len() as u64, "{coding}");
            assert_eq!(
                resp.body_decoded_bytes,
                Some(USAGE_JSON.len() as u64),
                "{coding}"
            );
            assert_eq!(x.response_headers.content_encoding(), Some(coding));
            assert!(x.response_fields.json, "{coding}");
            assert_eq!(x.response_fields.usage, Some(Usage::io(4, 17)));
            assert!(x.anomalies.is_empty(), "{coding}: {:?}", x.anomalies);
        }
    }
}

/// The Anthropic Messages and Responses doors, JSON and streamed, each compressed with every
/// coding a proxy or Open WebUI may apply: the same usage comes out.
#[test]
fn messages_and_responses_usage_through_every_coding() {
    let messages_json = br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":25,"cache_read_input_tokens":5,"cache_creation_input_tokens":3,"output_tokens":15}}"#.to_vec();
    let messages_sse = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":3,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_vec();
    let responses_sse = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":10},\"output_tokens\":20,\"output_tokens_details\":{\"reasoning_tokens\":7},\"total_tokens\":50}}}\n\n".to_vec();
    let anthropic = Usage {
        input: 33,
        output: 15,
        cached_input: 5,
        reasoning: 0,
        cache_write_input: 3,
    };
    let responses = Usage {
        input: 30,
        output: 20,
        cached_input: 10,
        reasoning: 7,
        cache_write_input: 0,
    };
    let cases = [
        (
            "/api/v1/messages",
            "application/json",
            &messages_json,
            anthropic,
        ),
        (
            "/api/v1/messages",
            "text/event-stream",
            &messages_sse,
            anthropic,
        ),
        (
            "/openai/responses",
            "text/event-stream",
            &responses_sse,
            responses,
        ),
    ];
    for (path, content_type, body, usage) in cases {
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(body).unwrap();
        }
        let zstd = zstd::stream::encode_all(&body[..], 3).unwrap();
        for (coding, encoded) in [("gzip", gzip(body)), ("br", br), ("zstd", zstd)] {
            let request = format!("POST {path} HTTP/1.1\r\ncontent-length: 2\r\n\r\n{{}}");
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
                encoded.len()
            )
            .into_bytes();
            resp.extend_from_slice(&encoded);
            for split in [7, resp.len()] {
                let mut steps = vec![Step::Data(REQ, request.as_bytes(), 1)];
                steps.extend(resp.chunks(split).map(|c| Step::Data(RESP, c, 2)));
                let r = run(&steps);
                let x = &r.exchanges[0];
                assert_eq!(
                    x.response_fields.usage,
                    Some(usage),
                    "{path} {content_type} {coding} split {split}"
                );
                assert!(x.anomalies.is_empty(), "{coding}: {:?}", x.anomalies);
            }
        }
    }
}

/// A zstd body of `mib` MiB of zeros (a few hundred bytes on the wire) as a request to `path`.
fn zstd_bomb_request(path: &str, mib: usize) -> Vec<u8> {
    let bomb = zstd::stream::encode_all(&vec![0u8; mib << 20][..], 19).unwrap();
    let mut v = format!(
        "POST {path} HTTP/1.1\r\ncontent-type: application/json\r\ncontent-encoding: zstd\r\ncontent-length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    v.extend_from_slice(&bomb);
    v
}

const OK_EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

/// Bombs to routes whose body nobody reads are neither decompressed nor scanned; to a route
/// that is read they stop at the body cap; either way the exchange and its answer stay paired.
#[test]
fn request_bombs_cost_their_wire_bytes_unless_their_route_is_read() {
    let mut shared = HttpShared::new(HttpLimits {
        max_decoded_body_bytes: 1 << 20,
        ..HttpLimits::default()
    });
    // As the semantics layer says for Open WebUI's routes: a model call's body is read.
    shared
        .reads_request_body
        .set(|_, path| path == "/api/chat/completions");
    let unread = zstd_bomb_request("/api/v1/files/", 64);
    let read = zstd_bomb_request("/api/chat/completions", 64);
    assert!(unread.len() < 4096, "{}", unread.len());
    let r = run_in(
        shared,
        false,
        &[
            Step::Data(REQ, &unread, 1),
            Step::Data(RESP, OK_EMPTY, 1),
            Step::Data(REQ, &read, 2),
            Step::Data(RESP, OK_EMPTY, 2),
        ],
    );
    let c = &r.shared.counters;
    assert_eq!((c.request_bodies_unread, c.decode_capped), (1, 1));
    assert_eq!(r.exchanges.len(), 2);
    assert_eq!(r.exchanges[0].request.body_decoded_bytes, None);
    assert!(r.exchanges[0].anomalies.is_empty());
    assert_eq!(r.exchanges[1].anomalies, [Anomaly::DecodeCapped]);
    assert_eq!(r.exchanges[1].status, Some(200));
}

/// The decode budget per second of traffic time: a stream of bombs spends it and then decodes
/// nothing more in that second; a second later honest compressed answers decode again.
#[test]
fn decode_budget_per_second_stops_a_stream_of_bombs() {
    let shared = HttpShared::new(HttpLimits {
        max_decoded_bytes_per_second: 8 << 20,
        max_decoded_bytes_per_connection_per_second: 0,
        ..HttpLimits::default()
    });
    let bomb = zstd_bomb_request("/api/chat/completions", 16);
    let honest = encoded_response("gzip", &gzip(USAGE_JSON));
    let r = run_in(
        shared,
        false,
        &[
            Step::Data(REQ, &bomb, 1),
            Step::Data(RESP, OK_EMPTY, 1),
            Step::Data(REQ, &bomb, 1),
            Step::Data(RESP, OK_EMPTY, 1),
            Step::Data(REQ, GET, 3),
            Step::Data(RESP, &honest, 3),
        ],
    );
    assert_eq!(r.shared.counters.decode_over_budget, 2);
    let anomalies: Vec<_> = r.exchanges.iter().map(|x| x.anomalies.clone()).collect();
    assert_eq!(
        anomalies,
        [
            vec![Anomaly::DecodeOverBudget],
            vec![Anomaly::DecodeOverBudget],
            vec![]
        ]
    );
    assert_eq!(r.exchanges[2].response_fields.usage, Some(Usage::io(4, 17)));
}

/// One connection cannot spend the budget of all: its bombs stop at its own budget while
/// another connection's answers decode in the same second.
#[test]
fn decode_budget_per_connection_leaves_the_rest_to_others() {
    let mut shared = HttpShared::new(HttpLimits {
        max_decoded_bytes_per_second: 64 << 20,
        max_decoded_bytes_per_connection_per_second: 4 << 20,
        ..HttpLimits::default()
    });
    let bomb = zstd_bomb_request("/api/chat/completions", 16);
    let honest = encoded_response("gzip", &gzip(USAGE_JSON));
    let mut out = Vec::new();
    let ts = Timestamp::from_secs(1);
    let mut attacker = HttpConnection::new(key(), false);
    let mut other = key();
    other.client.set_port(40001);
    let mut user = HttpConnection::new(other, false);
    for _ in 0..3 {
        attacker.on_data(REQ, &bomb, ts, &mut shared, &mut out);
        attacker.on_data(RESP, OK_EMPTY, ts, &mut shared, &mut out);
        user.on_data(REQ, GET, ts, &mut shared, &mut out);
        user.on_data(RESP, &honest, ts, &mut shared, &mut out);
    }
    assert_eq!(shared.counters.decode_over_budget, 3);
    let usages: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            HttpEvent::Exchange(x) if x.connection == other => Some(x.response_fields.usage),
            _ => None,
        })
        .collect();
    assert_eq!(usages, [Some(Usage::io(4, 17)); 3]);
}

/// A brotli stream declaring a window over `max_brotli_window_log` is not decoded: its
/// window would stay allocated for the connection's body.
#[test]
fn brotli_windows_over_the_cap_are_refused() {
    for lgwin in [10u32, 16, 18, 22, 24] {
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, lgwin);
            w.write_all(USAGE_JSON).unwrap();
        }
        let r = run(&[
            Step::Data(REQ, GET, 1),
            Step::Data(RESP, &encoded_response("br", &br), 1),
        ]);
        let x = &r.exchanges[0];
        let refused = lgwin > 22;
        assert_eq!(
            r.shared.counters.decode_errors,
            u64::from(refused),
            "{lgwin}"
        );
        let usage = (!refused).then_some(Usage::io(4, 17));
        assert_eq!(x.response_fields.usage, usage, "{lgwin}");
    }
}

#[test]
fn decode_errors_and_caps_are_flagged() {
    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(RESP, &encoded_response("gzip", b"not gzip at all"), 2),
    ]);
    let x = &r.exchanges[0];
    assert_eq!(x.response.as_ref().unwrap().body_decoded_bytes, None);
    assert_eq!(x.anomalies, vec![Anomaly::DecodeError]);
    assert_eq!(r.shared.counters.decode_errors, 1);

    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(RESP, &encoded_response("compress", b"xx"), 2),
    ]);
    assert_eq!(r.exchanges[0].anomalies, vec![Anomaly::DecodeError]);

    // A bomb: 10 MB of zeros in a few KB, against a 1 MB cap.
    let bomb = gzip(&vec![0u8; 10_000_000]);
    let limits = HttpLimits {
        max_decoded_body_bytes: 1_000_000,
        ..HttpLimits::default()
    };
    let r = run_with(
        limits,
        false,
        &[
            Step::Data(REQ, GET, 1),
            Step::Data(RESP, &encoded_response("gzip", &bomb), 2),
        ],
    );
    let x = &r.exchanges[0];
    assert_eq!(x.response.as_ref().unwrap().body_decoded_bytes, None);
    assert_eq!(x.response.as_ref().unwrap().body_bytes, bomb.len() as u64);
    assert_eq!(x.anomalies, vec![Anomaly::DecodeCapped]);
    assert_eq!(r.shared.counters.decode_capped, 1);
}

#[test]
fn unused_bodies_can_be_left_encoded() {
    let limits = HttpLimits {
        decode_unused_bodies: false,
        ..HttpLimits::default()
    };
    let script = b"HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nxyz";
    let json = encoded_response("gzip", &gzip(USAGE_JSON));
    let r = run_with(
        limits,
        false,
        &[
            Step::Data(REQ, GET, 1),
            Step::Data(RESP, script, 2),
            Step::Data(REQ, GET, 3),
            Step::Data(RESP, &json, 4),
        ],
    );
    let (a, b) = (&r.exchanges[0], &r.exchanges[1]);
    assert_eq!(a.response.as_ref().unwrap().body_decoded_bytes, None);
    assert!(a.anomalies.is_empty());
    // A body whose fields are needed is still decoded.
    assert_eq!(
        b.response.as_ref().unwrap().body_decoded_bytes,
        Some(USAGE_JSON.len() as u64)
    );
    assert_eq!(
        b.response_fields.usage.map(|u| u.input + u.output),
        Some(21)
    );
    assert_eq!(r.shared.counters.decode_errors, 0);
}

/// Open WebUI's SSE: each event is two chunks, `data: …\n` then `\n`.
fn sse_response(events: &[&str]) -> Vec<u8> {
    let mut v = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for e in events {
        let line = format!("data: {e}\n");
        v.extend_from_slice(format!("{:x}\r\n{line}\r\n1\r\n\n\r\n", line.len()).as_bytes());
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

#[test]
fn sse_events_usage_and_done() {
    let resp = sse_response(&[
        r#"{"choices":[{"delta":{"role":"assistant"}}],"usage":null}"#,
        r#"{"choices":[{"delta":{"content":"Mock"}}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":17,"total_tokens":21}}"#,
        "[DONE]",
    ]);
    let mid = resp.len() / 2;
    let r = run(&[
        Step::Data(REQ, b"POST /api/chat/completions HTTP/1.1\r\ncontent-length: 40\r\n\r\n{\"model\":\"mock-gpt\",\"stream\":true,\"x\":1}", 1),
        Step::Data(RESP, &resp[..150], 2),
        Step::Data(RESP, &resp[150..mid], 3),
        Step::Data(RESP, &resp[mid..], 4),
    ]);
    let x = &r.exchanges[0];
    let sse = x.response_fields.sse.as_ref().unwrap();
    assert_eq!((sse.events, sse.done), (4, true));
    assert_eq!(sse.first_event, Some(Timestamp::from_secs(3)));
    assert_eq!(sse.last_event, Some(Timestamp::from_secs(4)));
    assert_eq!(x.response_fields.usage.map(|u| u.output), Some(17));
    assert_eq!(x.response.as_ref().unwrap().chunks, 8);
    assert_eq!(x.request_fields.model.as_deref(), Some("mock-gpt"));
    assert_eq!(x.request_fields.stream, Some(true));
}

/// Ollama's native chat stream through Open WebUI's `/ollama` proxy: NDJSON, one line per
/// chunk, the counts in the last line.
const OLLAMA_LINES: [&str; 3] = [
    r#"{"model":"llama3.2","created_at":"2026-11-27T10:00:00.1Z","message":{"role":"assistant","content":"Hi"},"done":false}"#,
    r#"{"model":"llama3.2","created_at":"2026-11-27T10:00:00.2Z","message":{"role":"assistant","content":"!"},"done":false}"#,
    r#"{"model":"llama3.2","created_at":"2026-11-27T10:00:00.3Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":488358345,"prompt_eval_count":26,"prompt_eval_duration":3425460,"eval_count":282,"eval_duration":45355990}"#,
];
const OLLAMA_USAGE: Usage = Usage::io(26, 282);

#[test]
fn ollama_ndjson_stream_lines_and_counts() {
    let mut resp = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for line in OLLAMA_LINES {
        let line = format!("{line}\n");
        resp.extend_from_slice(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes());
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    // Cut in the middle of the second line: the first is complete in the first piece.
    let second_chunk = resp.windows(3).position(|w| w == b"\"!\"").unwrap();
    let r = run(&[
        Step::Data(
            REQ,
            b"POST /ollama/api/chat HTTP/1.1\r\ncontent-length: 20\r\n\r\n{\"model\":\"llama3.2\"}",
            1,
        ),
        Step::Data(RESP, &resp[..second_chunk], 2),
        Step::Data(RESP, &resp[second_chunk..], 3),
    ]);
    let x = &r.exchanges[0];
    let lines = x.response_fields.ndjson.as_ref().unwrap();
    assert_eq!((lines.events, lines.done), (3, true));
    assert_eq!(lines.first_event, Some(Timestamp::from_secs(2)));
    assert_eq!(lines.last_event, Some(Timestamp::from_secs(3)));
    assert_eq!(x.response_fields.stream(), Some(lines));
    assert_eq!(x.response_fields.sse, None);
    assert_eq!(x.response_fields.usage, Some(OLLAMA_USAGE));
    assert!(x.anomalies.is_empty(), "{:?}", x.anomalies);
    assert_eq!(x.request_fields.stream, None);
}

#[test]
fn ollama_ndjson_compressed_and_cut_short() {
    let body: String = OLLAMA_LINES.iter().map(|l| format!("{l}\n")).collect();
    let packed = gzip(body.as_bytes());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson; charset=utf-8\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        packed.len()
    );
    let request: &[u8] = b"POST /ollama/api/generate HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}";
    let r = run(&[
        Step::Data(REQ, request, 1),
        Step::Data(RESP, head.as_bytes(), 2),
        Step::Data(RESP, &packed, 3),
    ]);
    let x = &r.exchanges[0];
    assert_eq!(x.response_fields.usage, Some(OLLAMA_USAGE));
    assert_eq!(x.response_fields.ndjson.as_ref().map(|l| l.events), Some(3));

    // The connection closes in the middle of the last line: the lines before it are counted,
    // the cut one is neither a value nor malformed JSON, and carries no counts.
    let cut = body.len() - 40;
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let r = run(&[
        Step::Data(REQ, request, 1),
        Step::Data(RESP, head.as_bytes(), 2),
        Step::Data(RESP, &body.as_bytes()[..cut], 3),
        Step::Close,
    ]);
    let x = &r.exchanges[0];
    let lines = x.response_fields.ndjson.as_ref().unwrap();
    assert_eq!((lines.events, lines.done), (2, false));
    assert_eq!(x.response_fields.usage, None);
    assert!(!x.anomalies.contains(&Anomaly::JsonTruncated));
}

/// A non-streamed `/ollama/api/chat` exchange answered with `body` as JSON.
fn ollama_json_exchange(body: &str) -> Exchange {
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut r = run(&[
        Step::Data(
            REQ,
            b"POST /ollama/api/chat HTTP/1.1\r\ncontent-length: 16\r\n\r\n{\"stream\":false}",
            1,
        ),
        Step::Data(RESP, resp.as_bytes(), 2),
    ]);
    r.exchanges.remove(0)
}

#[test]
fn ollama_json_answer_counts() {
    let x = &ollama_json_exchange(OLLAMA_LINES[2]);
    assert!(x.response_fields.json);
    assert_eq!(x.response_fields.usage, Some(OLLAMA_USAGE));
    assert_eq!(x.response_fields.stream(), None);
    assert_eq!(x.request_fields.stream, Some(false));
    assert!(!x.response_fields.model_load);

    // A request without messages only loads the model: Ollama says so in `done_reason`.
    let x = &ollama_json_exchange(
        r#"{"model":"llama3.2","created_at":"2026-11-27T10:00:00Z","message":{"role":"assistant","content":""},"done_reason":"load","done":true}"#,
    );
    assert!(x.response_fields.json && x.response_fields.model_load);
    assert_eq!(x.response_fields.usage, None);
}

#[test]
fn request_fields_from_a_large_body() {
    let big = "A".repeat(3_000_000);
    let body = format!(
        r#"{{"stream":true,"model":"mock-gpt","params":{{"model":"inner"}},"files":["{big}"],"session_id":"ra3UWf","chat_id":null,"id":"1036e29f","messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let head = format!(
        "POST /api/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut steps = vec![Step::Data(REQ, head.as_bytes(), 1)];
    steps.extend(
        body.as_bytes()
            .chunks(65_000)
            .map(|c| Step::Data(REQ, c, 2)),
    );
    steps.push(Step::Data(RESP, OK5, 3));
    let r = run(&steps);
    let f = &r.exchanges[0].request_fields;
    assert!(f.json);
    assert_eq!(f.model.as_deref(), Some("mock-gpt"));
    assert_eq!(f.stream, Some(true));
    assert_eq!(f.session_id, Some(Some("ra3UWf".to_owned())));
    assert_eq!(f.chat_id, Some(None));
    assert_eq!(f.id.as_deref(), Some("1036e29f"));
    assert!(f.has_messages);
    assert_eq!(r.exchanges[0].request.body_wire_bytes, body.len() as u64);
}

#[test]
fn request_headers_and_secrets() {
    let req = b"GET /x HTTP/1.1\r\nAuthorization: Bearer eyJ.a.b\r\nCookie: a=1; b=2\r\nCookie: token=eyJ.c.d; z=9\r\nX-Api-Key: sk-1\r\nUser-Agent: curl/7.88.1\r\nOrigin: http://h\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\nHost: h:8080\r\n\r\n";
    let r = run(&[Step::Data(REQ, req, 1), Step::Data(RESP, OK5, 2)]);
    let h = &r.exchanges[0].request_headers;
    assert_eq!(
        h.authorization().map(SecretRef::expose),
        Some(&b"Bearer eyJ.a.b"[..])
    );
    assert_eq!(
        h.cookie_token().map(SecretRef::expose),
        Some(&b"eyJ.c.d"[..])
    );
    assert_eq!(
        h.api_key_header().map(SecretRef::expose),
        Some(&b"sk-1"[..])
    );
    assert_eq!(h.user_agent(), Some("curl/7.88.1"));
    assert_eq!(h.origin(), Some("http://h"));
    assert_eq!(
        (h.sec_fetch_site(), h.sec_fetch_mode(), h.sec_fetch_dest()),
        (Some("same-origin"), Some("cors"), Some("empty"))
    );
    assert_eq!(h.host(), Some("h:8080"));
    let debug = format!("{:?}", r.exchanges[0]);
    assert!(!debug.contains("eyJ") && !debug.contains("sk-1"), "{debug}");

    let limits = HttpLimits {
        api_key_header: "x-openwebui-key".to_owned(),
        ..HttpLimits::default()
    };
    let r = run_with(
        limits,
        false,
        &[
            Step::Data(
                REQ,
                b"GET / HTTP/1.1\r\nx-api-key: a\r\nX-OpenWebUI-Key: b\r\n\r\n",
                1,
            ),
            Step::Close,
        ],
    );
    let h = &r.exchanges[0].request_headers;
    assert_eq!(h.api_key_header().map(SecretRef::expose), Some(&b"b"[..]));
}

#[test]
fn malformed_input_resynchronises() {
    let r = run(&[
        Step::Data(REQ, b"\x16\x03\x01garbage\r\nmore junk\r\n", 1),
        Step::Data(REQ, GET, 2),
        Step::Data(RESP, OK5, 3),
    ]);
    assert_eq!(r.exchanges.len(), 1);
    assert_eq!(r.exchanges[0].path, "/api/config");
    assert_eq!(r.exchanges[0].anomalies, vec![Anomaly::MidStreamPickup]);
    assert_eq!(r.shared.counters.malformed_messages, 1);

    // More header fields than the cap: those past it are read for framing only. A header
    // block over the size cap is skipped to its end (its body too) and still takes its answer.
    let limits = HttpLimits {
        max_headers: 2,
        max_header_bytes: 100,
        ..HttpLimits::default()
    };
    let many = b"GET /m HTTP/1.1\r\na: 1\r\nb: 2\r\nUser-Agent: u\r\n\r\n";
    let big = [
        b"POST /b HTTP/1.1\r\nx: ".as_slice(),
        &[b'y'; 200],
        b"\r\nContent-Length: 18\r\n\r\nGET /p HTTP/1.1\r\n\r\n",
    ]
    .concat();
    let r = run_with(
        limits,
        false,
        &[
            Step::Data(REQ, many, 1),
            Step::Data(REQ, &big, 2),
            Step::Data(REQ, GET, 3),
            Step::Data(RESP, OK5, 4),
            Step::Data(
                RESP,
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
                5,
            ),
            Step::Data(RESP, OK5, 6),
        ],
    );
    assert_eq!(
        r.exchanges
            .iter()
            .map(|x| (
                x.path.as_str(),
                x.status,
                x.request_headers.user_agent().is_some()
            ))
            .collect::<Vec<_>>(),
        vec![("/m", Some(200), false), ("/api/config", Some(200), false)]
    );
    assert_eq!(r.shared.counters.too_many_headers, 1);
    assert_eq!(r.shared.counters.headers_too_large, 1);
    assert_eq!(r.shared.counters.malformed_messages, 1);

    // A broken chunked body.
    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(
            RESP,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            2,
        ),
        Step::Data(REQ, GET, 3),
        Step::Data(RESP, OK5, 4),
    ]);
    assert_eq!(r.exchanges.len(), 2);
    assert!(!r.exchanges[0].response.as_ref().unwrap().complete);
    assert_eq!(r.exchanges[1].status, Some(200));
    assert_eq!(r.shared.counters.chunked_errors, 1);
}

#[test]
fn mid_stream_pickup_starts_at_a_plausible_message() {
    let r = run_with(
        HttpLimits::default(),
        true,
        &[
            Step::Data(REQ, b"\"tail of a body\"}", 1),
            Step::Data(
                RESP,
                b"ody of an earlier response\r\nHTTP/1.1 200 OK\r\n\r\n",
                2,
            ),
            Step::Data(REQ, GET, 3),
            Step::Data(RESP, OK5, 4),
        ],
    );
    assert_eq!(r.exchanges.len(), 1);
    let x = &r.exchanges[0];
    assert_eq!((x.path.as_str(), x.status), ("/api/config", Some(200)));
    assert_eq!(x.anomalies, vec![Anomaly::MidStreamPickup]);
}

#[test]
fn gaps_inside_bodies_are_skipped_elsewhere_resynchronised() {
    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 2),
        Step::Gap(RESP, 5),
        Step::Data(RESP, b"cde", 3),
        Step::Data(REQ, GET, 4),
        Step::Data(RESP, OK5, 5),
    ]);
    assert_eq!(r.exchanges.len(), 2);
    let x = &r.exchanges[0];
    let resp = x.response.as_ref().unwrap();
    assert_eq!((resp.body_wire_bytes, resp.body_decoded_bytes), (10, None));
    assert_eq!(x.anomalies, vec![Anomaly::BodyGap]);
    assert_eq!(r.exchanges[1].status, Some(200));
    assert_eq!(r.shared.counters.body_gaps, 1);

    // A gap in a request head: that request is lost, but its response still comes and must
    // not be paired with the next request.
    let r = run(&[
        Step::Data(REQ, b"GET /lost HTTP/1.1\r\nHo", 1),
        Step::Gap(REQ, 10),
        Step::Data(REQ, b"st: x\r\n\r\n", 2),
        Step::Data(REQ, GET, 3),
        Step::Data(
            RESP,
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            4,
        ),
        Step::Data(RESP, OK5, 5),
    ]);
    let got: Vec<_> = r
        .exchanges
        .iter()
        .map(|x| (x.path.as_str(), x.status))
        .collect();
    assert_eq!(got, vec![("/api/config", Some(200))]);
    assert_eq!(
        (
            r.shared.counters.stream_gaps,
            r.shared.counters.lost_messages
        ),
        (1, 1)
    );

    // A gap that swallows a response head: its request is reported without a response, and
    // the next response goes to the next request.
    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Gap(RESP, 43),
        Step::Data(REQ, b"GET /next HTTP/1.1\r\n\r\n", 2),
        Step::Data(RESP, OK5, 3),
    ]);
    let got: Vec<_> = r
        .exchanges
        .iter()
        .map(|x| (x.path.as_str(), x.status, x.anomalies.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/api/config", None, vec![Anomaly::MissingResponse]),
            ("/next", Some(200), vec![]),
        ]
    );
}

#[test]
fn requests_without_response_are_flushed_on_close() {
    let r = run(&[
        Step::Data(REQ, GET, 1),
        Step::Data(REQ, GET, 2),
        Step::Data(RESP, OK5, 3),
        Step::Close,
    ]);
    assert_eq!(r.exchanges.len(), 2);
    assert_eq!(r.exchanges[1].status, None);
    assert!(r.exchanges[1].response.is_none());
    assert_eq!(r.exchanges[1].anomalies, vec![Anomaly::MissingResponse]);
    assert_eq!(r.shared.counters.missing_responses, 1);
}

/// A connection exercising most features, as one byte stream per direction.
fn composite() -> (Vec<u8>, Vec<u8>) {
    let mut req = Vec::new();
    let mut resp = Vec::new();
    req.extend_from_slice(GET);
    resp.extend_from_slice(&encoded_response("gzip", &gzip(USAGE_JSON)));
    req.extend_from_slice(b"POST /api/chat/completions HTTP/1.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"mod\r\n1c;x=y\r\nel\":\"m\",\"stream\":true,\"z\":1}\r\n0\r\n\r\n");
    resp.extend_from_slice(&sse_response(&[
        r#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        "[DONE]",
    ]));
    req.extend_from_slice(b"HEAD /h HTTP/1.1\r\n\r\n");
    resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
    req.extend_from_slice(UPGRADE);
    req.extend_from_slice(b"\x81\x81abcdy");
    resp.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x01x",
    );
    (req, resp)
}

fn summary(r: &Run) -> Vec<String> {
    let mut v: Vec<String> = r.exchanges.iter().map(|x| format!("{x:?}")).collect();
    v.extend(r.upgrades.iter().map(|u| format!("{u:?}")));
    v
}

proptest! {
    /// Any split of the two streams into data calls, interleaved in any request-first order,
    /// gives identical exchanges (timestamps are all equal here so they compare too).
    #[test]
    fn any_split_gives_identical_exchanges(
        req_cuts in proptest::collection::vec(0usize..2000, 0..12),
        resp_cuts in proptest::collection::vec(0usize..2000, 0..12),
    ) {
        let (req, resp) = composite();
        let whole = run(&[Step::Data(REQ, &req, 1), Step::Data(RESP, &resp, 1), Step::Close]);
        prop_assert_eq!(whole.exchanges.len(), 4);
        prop_assert_eq!(whole.upgrades.len(), 1);
        prop_assert_eq!(whole.shared.counters.malformed_messages, 0);

        let pieces = |data: &[u8], cuts: &[usize]| -> Vec<(usize, usize)> {
            let mut c: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            c.push(0);
            c.push(data.len());
            c.sort_unstable();
            c.dedup();
            c.windows(2).map(|w| (w[0], w[1])).collect()
        };
        // All request pieces first, then responses: always a valid arrival order.
        let mut steps: Vec<Step<'_>> = Vec::new();
        for (a, b) in pieces(&req, &req_cuts) {
            steps.push(Step::Data(REQ, &req[a..b], 1));
        }
        for (a, b) in pieces(&resp, &resp_cuts) {
            steps.push(Step::Data(RESP, &resp[a..b], 1));
        }
        steps.push(Step::Close);
        let split = run(&steps);
        prop_assert_eq!(summary(&whole), summary(&split));
        prop_assert_eq!(whole.shared.counters, split.shared.counters);
    }

    /// Any interleaving of the two directions (responses may even arrive before their
    /// requests are parsed) gives identical exchanges.
    #[test]
    fn any_interleaving_gives_identical_exchanges(
        req_cuts in proptest::collection::vec(0usize..2000, 0..12),
        resp_cuts in proptest::collection::vec(0usize..2000, 0..12),
        order in proptest::collection::vec(any::<bool>(), 0..30),
    ) {
        let (req, resp) = composite();
        let whole = run(&[Step::Data(REQ, &req, 1), Step::Data(RESP, &resp, 1), Step::Close]);
        let pieces = |data: &[u8], cuts: &[usize]| -> Vec<(usize, usize)> {
            let mut c: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            c.push(0);
            c.push(data.len());
            c.sort_unstable();
            c.dedup();
            c.windows(2).map(|w| (w[0], w[1])).collect()
        };
        let (mut a, mut b) = (pieces(&req, &req_cuts).into_iter(), pieces(&resp, &resp_cuts).into_iter());
        let mut steps: Vec<Step<'_>> = Vec::new();
        let mut pick = order.into_iter();
        loop {
            let next = if pick.next().unwrap_or(true) { a.next().map(|p| (REQ, p)).or_else(|| b.next().map(|p| (RESP, p))) } else { b.next().map(|p| (RESP, p)).or_else(|| a.next().map(|p| (REQ, p))) };
            let Some((d, (x, y))) = next else { break };
            let data = if d == REQ { &req[x..y] } else { &resp[x..y] };
            steps.push(Step::Data(d, data, 1));
        }
        steps.push(Step::Close);
        let split = run(&steps);
        prop_assert_eq!(summary(&whole), summary(&split));
    }

    /// Valid traffic with random byte flips, cuts and gaps never panics, and what comes out
    /// stays consistent.
    #[test]
    fn mutated_traffic_never_panics(
        flips in proptest::collection::vec((any::<bool>(), 0usize..2000, any::<u8>()), 0..6),
        cuts in proptest::collection::vec((any::<bool>(), 0usize..2000, 0u64..50), 0..6),
        mid in any::<bool>(),
    ) {
        let (mut req, mut resp) = composite();
        for (is_req, at, b) in flips {
            let v = if is_req { &mut req } else { &mut resp };
            let n = v.len();
            v[at % n] = b;
        }
        let mut steps = Vec::new();
        let (mut ri, mut si) = (0, 0);
        for (is_req, at, gap) in cuts {
            let (v, i, d) = if is_req { (&req, &mut ri, REQ) } else { (&resp, &mut si, RESP) };
            let end = (*i + at % 300).min(v.len());
            steps.push(Step::Data(d, &v[*i..end], 1));
            *i = end;
            steps.push(Step::Gap(d, gap));
        }
        steps.push(Step::Data(REQ, &req[ri..], 2));
        steps.push(Step::Data(RESP, &resp[si..], 2));
        steps.push(Step::Fin(RESP));
        steps.push(Step::Close);
        let r = run_with(HttpLimits::default(), mid, &steps);
        prop_assert!(r.exchanges.len() <= 4);
        for x in &r.exchanges {
            if let Some(resp) = &x.response {
                prop_assert!(resp.body_bytes <= resp.body_wire_bytes);
            }
            prop_assert!(x.request.body_bytes <= x.request.body_wire_bytes);
        }
    }

    /// Random bytes in either direction never panic and leave bounded state.
    #[test]
    fn garbage_never_panics(
        a in proptest::collection::vec(any::<u8>(), 0..512),
        b in proptest::collection::vec(any::<u8>(), 0..512),
        mid in any::<bool>(),
    ) {
        let (req, resp) = composite();
        let _ = run_with(HttpLimits::default(), mid, &[
            Step::Data(REQ, &a, 1),
            Step::Data(RESP, &b, 1),
            Step::Data(REQ, &req, 2),
            Step::Gap(RESP, 3),
            Step::Data(RESP, &resp, 2),
            Step::Data(REQ, &b, 3),
            Step::Fin(RESP),
            Step::Close,
        ]);
    }
}

/// The pipeline may move connections across threads.
#[test]
fn connection_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<HttpConnection>();
    assert_send::<HttpShared>();
}

#[test]
fn limits_deserialize_with_defaults() {
    let l: HttpLimits =
        serde_json::from_str(r#"{"max_headers": 5, "json": {"max_depth": 3}}"#).unwrap();
    let d = HttpLimits::default();
    assert_eq!(
        (l.max_headers, l.json.max_depth, l.json.max_string_bytes),
        (5, 3, d.json.max_string_bytes)
    );
    assert_eq!(
        (l.max_header_bytes, l.api_key_header.as_str()),
        (64 * 1024, "x-api-key")
    );
    assert!(serde_json::from_str::<HttpLimits>(r#"{"max_headerz": 5}"#).is_err());
}

#[test]
fn connect_tunnels_end_http() {
    let r = run(&[
        Step::Data(REQ, b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 1),
        Step::Data(
            RESP,
            b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01",
            2,
        ),
        Step::Data(REQ, b"\x16\x03\x01\x00", 3),
    ]);
    assert_eq!(r.exchanges.len(), 1);
    let x = &r.exchanges[0];
    assert_eq!(
        (x.method.as_str(), x.status, x.upgraded),
        ("CONNECT", Some(200), false)
    );
    assert!(x.response.as_ref().unwrap().complete);
    assert_eq!(
        (
            r.shared.counters.tunnels,
            r.shared.counters.malformed_messages
        ),
        (1, 0)
    );
}

/// Debug output of a connection holds no byte of a half-read header block or request body.
#[test]
fn debug_output_carries_no_traffic_bytes() {
    let mut conn = HttpConnection::new(key(), false);
    let mut shared = HttpShared::default();
    let mut out = Vec::new();
    let secret = b"sk-0123456789abcdef";
    let mut head = b"POST /api/chat/completions HTTP/1.1\r\nAuthorization: Bearer ".to_vec();
    head.extend_from_slice(secret);
    conn.on_data(REQ, &head, Timestamp::default(), &mut shared, &mut out);
    let debug = format!("{conn:?}");
    // Vec<u8> would print as decimal bytes: neither form may appear.
    let as_numbers = format!("{:?}", &secret[..4]);
    let as_numbers = as_numbers.trim_matches(|c| c == '[' || c == ']');
    assert!(!debug.contains("sk-0123"), "{debug}");
    assert!(!debug.contains(as_numbers), "{debug}");
    assert!(debug.contains("buf_bytes"), "{debug}");
}

/// Decompressors take their window from the pipeline's memory budget: connections that leave
/// zstd bodies unfinished hold it until they end; beyond it a compressed body is not decoded
/// (counted) while honest ones decode again once memory is given back.
#[test]
fn decompressors_share_one_memory_budget() {
    use crate::memory::{Holder, MemoryAccount, MemoryLimits};
    let mut shared = HttpShared::new(HttpLimits::default());
    // Two zstd decompressors (8 MiB window + state each) fit, a third does not.
    shared.memory = MemoryAccount::new(&MemoryLimits {
        max_held_bytes: 17 << 20,
    });
    let ts = Timestamp::from_secs(1);
    let zstd_head = |len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: zstd\r\ncontent-length: {len}\r\n\r\n"
        )
    };
    let body = zstd::stream::encode_all(USAGE_JSON, 3).unwrap();
    let mut out = Vec::new();
    let mut connections: Vec<HttpConnection> = (0..3)
        .map(|i| {
            let mut k = key();
            k.client.set_port(41000 + i);
            let mut c = HttpConnection::new(k, false);
            c.on_data(REQ, GET, ts, &mut shared, &mut out);
            // The head and half the body: the decompressor is held.
            let mut resp = zstd_head(body.len()).into_bytes();
            resp.extend_from_slice(&body[..body.len() / 2]);
            c.on_data(RESP, &resp, ts, &mut shared, &mut out);
            c
        })
        .collect();
    let memory = shared.memory.clone();
    let zstd = (8 << 20) + (128 << 10);
    assert_eq!(memory.held(Holder::Decoder), 2 * zstd);
    assert_eq!(memory.refused(Holder::Decoder), 1);
    for c in &mut connections {
        c.on_data(RESP, &body[body.len() / 2..], ts, &mut shared, &mut out);
    }
    assert_eq!(
        memory.held(Holder::Decoder),
        0,
        "given back when the bodies end"
    );
    assert_eq!(shared.counters.decode_memory_refused, 1);
    let usages: Vec<_> = out
        .iter()
        .map(|e| match e {
            HttpEvent::Exchange(x) => x.response_fields.usage,
            HttpEvent::Upgraded { .. } => None,
        })
        .collect();
    assert_eq!(
        usages,
        [Some(Usage::io(4, 17)), Some(Usage::io(4, 17)), None]
    );
    // Memory is back: the refused connection's next answer decodes.
    let mut resp = zstd_head(body.len()).into_bytes();
    resp.extend_from_slice(&body);
    connections[2].on_data(REQ, GET, ts, &mut shared, &mut out);
    connections[2].on_data(RESP, &resp, ts, &mut shared, &mut out);
    let Some(HttpEvent::Exchange(x)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(x.response_fields.usage, Some(Usage::io(4, 17)));
    // A dropped connection gives its decompressor back too.
    connections[0].on_data(REQ, GET, ts, &mut shared, &mut out);
    connections[0].on_data(
        RESP,
        zstd_head(body.len()).as_bytes(),
        ts,
        &mut shared,
        &mut out,
    );
    connections[0].on_data(RESP, &body[..4], ts, &mut shared, &mut out);
    assert_eq!(memory.held(Holder::Decoder), zstd);
    drop(connections);
    assert_eq!(memory.held(Holder::Decoder), 0);
}
