//! Hostile requests on a connection that also carries other users' chat completions — as
//! behind a reverse proxy that pools its upstream connections — must not move usage from one
//! user to another. Each test replays crafted TCP segments through a [`Monitor`] and reads
//! every user's completions and tokens back from its registry.
use std::{collections::BTreeMap, net::SocketAddr};

use webui_monitor_core::{
    Monitor, MonitorConfig,
    segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp},
    usage_summary::summarize,
};

#[path = "support/cast.rs"]
mod cast;

use cast::{
    ALICE, ALICE_KEY, BOB, BOB_KEY, MALLORY, MALLORY_KEY, answer, completion_with, directory,
};

/// A chat completion request of the user with `key`, with `extra` header lines (each ending in
/// CRLF) before the blank line.
fn completion(key: &str, extra: &str) -> Vec<u8> {
    completion_with(key, extra)
}

/// A request body that holds what looks like Bob's completion request: text a user uploads.
fn body_with_a_request_line() -> String {
    let inner = String::from_utf8(completion(BOB_KEY, "")).unwrap();
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x\r\n{inner}\r\n"}}]}}"#)
}

/// One TCP connection: handshake, then each message in order as one segment, then FINs.
fn replay(messages: &[(Direction, Vec<u8>)]) -> BTreeMap<String, (u64, u64, u64)> {
    let key = ConnectionKey {
        client: SocketAddr::from(([10, 0, 0, 1], 40000)),
        server: SocketAddr::from(([10, 0, 0, 2], 8080)),
    };
    let registry = prometheus::Registry::new();
    let mut monitor = Monitor::new(&MonitorConfig::default(), None, &registry).unwrap();
    monitor.set_directory(Some(directory()));
    let isn = [1000u32, 5000];
    let mut next = [isn[0] + 1, isn[1] + 1];
    let mut t = 1_700_000_000u64;
    let mut send =
        |monitor: &mut Monitor, direction: Direction, seq: u32, flags: u8, payload: &[u8]| {
            t += 1;
            monitor.on_segment(
                &Segment {
                    key,
                    direction,
                    seq,
                    flags: TcpFlags(flags),
                    payload,
                    timestamp: Timestamp::from_secs(t),
                    after_capture_loss: false,
                    capture_skip: None,
                },
                |_| {},
            );
        };
    send(&mut monitor, Direction::Request, isn[0], TcpFlags::SYN, &[]);
    send(
        &mut monitor,
        Direction::Response,
        isn[1],
        TcpFlags::SYN | TcpFlags::ACK,
        &[],
    );
    for (direction, data) in messages {
        let d = direction.index();
        send(&mut monitor, *direction, next[d], TcpFlags::ACK, data);
        next[d] = next[d].wrapping_add(data.len() as u32);
    }
    for direction in Direction::ALL {
        let d = direction.index();
        send(
            &mut monitor,
            direction,
            next[d],
            TcpFlags::FIN | TcpFlags::ACK,
            &[],
        );
    }
    monitor.finish(Timestamp::from_secs(t + 1), |_| {});
    summarize(&registry.gather(), 0.0)
        .users
        .into_iter()
        .filter(|u| u.completions > 0 || u.tokens().total() > 0)
        .map(|u| {
            let tokens = u.tokens();
            (u.user, (u.completions, tokens.input, tokens.output))
        })
        .collect()
}

const REQ: Direction = Direction::Request;
const RESP: Direction = Direction::Response;

/// Alice and Bob's completions around `attack` and its answer.
fn around(attack: Vec<u8>, attack_answer: Vec<u8>) -> BTreeMap<String, (u64, u64, u64)> {
    replay(&[
        (REQ, completion(ALICE_KEY, "")),
        (RESP, answer(10, 20)),
        (REQ, attack),
        (RESP, attack_answer),
        (REQ, completion(BOB_KEY, "")),
        (RESP, answer(3, 4)),
        (REQ, completion(ALICE_KEY, "")),
        (RESP, answer(100, 200)),
    ])
}

fn users(entries: &[(&str, (u64, u64, u64))]) -> BTreeMap<String, (u64, u64, u64)> {
    entries.iter().map(|(u, v)| (u.to_string(), *v)).collect()
}

#[test]
fn without_an_attack_each_user_gets_their_own_usage() {
    assert_eq!(
        around(completion(MALLORY_KEY, ""), answer(1000, 2000)),
        users(&[
            (ALICE, (2, 110, 220)),
            (BOB, (1, 3, 4)),
            (MALLORY, (1, 1000, 2000)),
        ])
    );
}

/// uvicorn (httptools and h11) limits a header block by size, not by its number of fields:
/// 201 short fields are a valid request, answered as such.
#[test]
fn a_request_with_201_header_fields_is_read_and_keeps_its_answer() {
    let extra: String = (0..201).map(|i| format!("X-F{i}: {i}\r\n")).collect();
    assert_eq!(
        around(completion(MALLORY_KEY, &extra), answer(1000, 2000)),
        users(&[
            (ALICE, (2, 110, 220)),
            (BOB, (1, 3, 4)),
            (MALLORY, (1, 1000, 2000)),
        ])
    );
}

/// A header block over the monitor's cap (httptools has none) is not read, but it still takes
/// its answer, and its body — here carrying a request line with Bob's key — is skipped whole.
#[test]
fn an_oversized_head_takes_its_answer_and_its_body_is_skipped() {
    let body = body_with_a_request_line();
    let attack = format!(
        "POST /api/chat/completions HTTP/1.1\r\nAuthorization: Bearer {MALLORY_KEY}\r\n\
         X-Pad: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        "p".repeat(70 * 1024),
        body.len()
    );
    assert_eq!(
        around(attack.into_bytes(), answer(1000, 2000)),
        users(&[(ALICE, (2, 110, 220)), (BOB, (1, 3, 4))])
    );
}

/// A request uvicorn refuses (a header line without a colon: `400`, then it closes) takes the
/// `400`; the request line inside its body is no request.
#[test]
fn a_refused_request_takes_the_400_and_its_body_holds_no_request() {
    let body = body_with_a_request_line();
    let attack = format!(
        "POST /api/chat/completions HTTP/1.1\r\nAuthorization: Bearer {MALLORY_KEY}\r\n\
         Not a header line\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let refused = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         connection: close\r\ncontent-length: 30\r\n\r\nInvalid HTTP request received."
        .to_vec();
    assert_eq!(
        replay(&[
            (REQ, completion(ALICE_KEY, "")),
            (RESP, answer(10, 20)),
            (REQ, completion(BOB_KEY, "")),
            (RESP, answer(3, 4)),
            (REQ, attack.into_bytes()),
            (RESP, refused),
        ]),
        users(&[(ALICE, (1, 10, 20)), (BOB, (1, 3, 4))])
    );
}

/// uvicorn percent-decodes the path before Starlette routes on it (`%2F` included), so an
/// encoded completion path is served — and must count — as a completion.
#[test]
fn percent_encoded_completion_paths_count_as_completions() {
    let encoded = |path: &str| {
        String::from_utf8(completion(ALICE_KEY, ""))
            .unwrap()
            .replacen("/api/chat/completions", path, 1)
            .into_bytes()
    };
    assert_eq!(
        replay(&[
            (REQ, encoded("/api/chat/%63ompletions")),
            (RESP, answer(10, 20)),
            (REQ, encoded("/api%2Fchat%2Fcompletions?x=%2F")),
            (RESP, answer(100, 200)),
        ]),
        users(&[(ALICE, (2, 110, 220))])
    );
}
