//! The HTTP engine against the real Open WebUI captures: every exchange field that the
//! `*.expected.json` files define must come out exactly.
//!
//! The crate's pcap reader and dissector read the captures; a minimal in-order delivery (no
//! loss in these fixtures, retransmitted bytes dropped by sequence number) stands in for the
//! reassembler, so that the HTTP engine alone is under test and segments can be re-cut at will.
#[path = "support/expected_check.rs"]
mod expected_check;

use std::collections::{BTreeMap, HashMap};

use expected_check::{expected, fixture_dir};
use serde_json::Value;
use webui_monitor_core::{
    http::{Exchange, HttpConnection, HttpEvent, HttpLimits, HttpShared},
    pcap::{CaptureReader, Dissector, PcapLimits},
    segment::{ConnectionKey, Timestamp},
};

const PORT: u16 = 8080;

/// Per connection and direction: the next expected sequence number and segments that came early.
#[derive(Default)]
struct Stream {
    next: Option<u32>,
    early: BTreeMap<u32, (Vec<u8>, Timestamp)>,
}

/// Runs a capture through one `HttpConnection` per TCP connection.
/// Every body decoded, unused ones too: the expected files give each one's decoded size.
fn run(pcap: &[u8], split: Option<usize>) -> (Vec<Exchange>, HttpShared) {
    let limits = HttpLimits {
        decode_unused_bodies: true,
        ..HttpLimits::default()
    };
    run_with(pcap, split, limits)
}

fn run_with(pcap: &[u8], split: Option<usize>, limits: HttpLimits) -> (Vec<Exchange>, HttpShared) {
    let mut shared = HttpShared {
        limits,
        ..HttpShared::default()
    };
    let mut conns: HashMap<ConnectionKey, (HttpConnection, [Stream; 2], [bool; 2])> =
        HashMap::new();
    let mut out = Vec::new();
    let mut last_ts = Timestamp::default();
    let mut reader = CaptureReader::new(pcap, PcapLimits::default()).expect("pcap header");
    let dissector = Dissector::new([PORT]);
    while let Some(packet) = reader.next_packet().expect("pcap record") {
        let Ok(p) = dissector.dissect(packet.link_type, packet.timestamp, packet.data) else {
            continue;
        };
        last_ts = p.timestamp;
        let (conn, streams, fins) = conns.entry(p.key).or_insert_with(|| {
            (
                HttpConnection::new(p.key, false),
                Default::default(),
                [false; 2],
            )
        });
        let d = p.direction.index();
        let s = &mut streams[d];
        if p.flags.syn() {
            s.next = Some(p.seq.wrapping_add(1));
        }
        if !p.payload.is_empty() {
            let next = s.next.expect("SYN seen");
            s.early.insert(p.seq, (p.payload.to_vec(), p.timestamp));
            // Deliver whatever is now contiguous; drop what was already delivered.
            let mut next = next;
            while let Some(&seq) = s
                .early
                .keys()
                .find(|seq| (seq.wrapping_sub(next) as i32) <= 0)
            {
                let (data, ts) = s.early.remove(&seq).unwrap();
                let skip = next.wrapping_sub(seq) as usize;
                if skip < data.len() {
                    let fresh = &data[skip..];
                    match split {
                        None => conn.on_data(p.direction, fresh, ts, &mut shared, &mut out),
                        Some(n) => {
                            for part in fresh.chunks(n) {
                                conn.on_data(p.direction, part, ts, &mut shared, &mut out)
                            }
                        }
                    }
                    next = next.wrapping_add(fresh.len() as u32);
                }
            }
            s.next = Some(next);
        }
        if p.flags.fin() && !fins[d] {
            fins[d] = true;
            conn.on_fin(p.direction, p.timestamp, &mut shared, &mut out);
            if fins[0] && fins[1] {
                conn.on_close(p.timestamp, &mut shared, &mut out);
            }
        }
        if p.flags.rst() {
            conn.on_close(p.timestamp, &mut shared, &mut out);
        }
    }
    for (conn, _, _) in conns.values_mut() {
        conn.on_close(last_ts, &mut shared, &mut out);
    }
    let exchanges = out
        .into_iter()
        .filter_map(|e| match e {
            HttpEvent::Exchange(x) => Some(*x),
            HttpEvent::Upgraded { .. } => None,
        })
        .collect();
    (exchanges, shared)
}

fn micros(ts: Timestamp) -> i64 {
    (ts.as_nanos() / 1000) as i64
}

fn exp_micros(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 1e6).round() as i64
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Compares one exchange with its expected JSON; returns the mismatches.
fn diff(x: &Exchange, e: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let mut check = |name: &str, got: String, want: String| {
        if got != want {
            bad.push(format!("{name}: got {got}, want {want}"));
        }
    };
    let resp = x.response.as_ref().expect("response");
    check(
        "method",
        x.method.clone(),
        e["method"].as_str().unwrap().into(),
    );
    check("path", x.path.clone(), e["path"].as_str().unwrap().into());
    check(
        "has_query",
        x.has_query.to_string(),
        e["has_query"].to_string(),
    );
    check(
        "status",
        format!("{:?}", x.status),
        format!("{:?}", e["status"].as_u64().map(|s| s as u16)),
    );
    check(
        "upgraded",
        x.upgraded.to_string(),
        (e["status"] == 101).to_string(),
    );
    let u = |v: &Value| v.as_u64().map(|n| n.to_string()).unwrap_or("null".into());
    check(
        "request_header_bytes",
        x.request.header_bytes.to_string(),
        u(&e["request_header_bytes"]),
    );
    check(
        "request_body_bytes",
        x.request.body_wire_bytes.to_string(),
        u(&e["request_body_bytes"]),
    );
    check(
        "request_chunked",
        x.request.chunked.to_string(),
        e["request_chunked"].to_string(),
    );
    check(
        "response_header_bytes",
        resp.header_bytes.to_string(),
        u(&e["response_header_bytes"]),
    );
    check(
        "response_body_wire_bytes",
        resp.body_wire_bytes.to_string(),
        u(&e["response_body_wire_bytes"]),
    );
    check(
        "response_body_bytes",
        resp.body_bytes.to_string(),
        u(&e["response_body_bytes"]),
    );
    check(
        "response_body_decoded_bytes",
        resp.body_decoded_bytes
            .map_or("null".into(), |n| n.to_string()),
        u(&e["response_body_decoded_bytes"]),
    );
    check(
        "response_chunked",
        resp.chunked.to_string(),
        e["response_chunked"].to_string(),
    );
    check(
        "response_chunks",
        if resp.chunked {
            resp.chunks.to_string()
        } else {
            "null".into()
        },
        u(&e["response_chunks"]),
    );
    check(
        "response_complete",
        resp.complete.to_string(),
        e["response_complete"].to_string(),
    );
    check(
        "ts_request",
        micros(x.request.first_byte).to_string(),
        exp_micros(&e["ts_request"]).to_string(),
    );
    check(
        "ts_request_end",
        micros(x.request.last_byte).to_string(),
        exp_micros(&e["ts_request_end"]).to_string(),
    );
    check(
        "ts_response",
        micros(resp.first_byte).to_string(),
        exp_micros(&e["ts_response"]).to_string(),
    );
    check(
        "ts_response_end",
        micros(resp.last_byte).to_string(),
        exp_micros(&e["ts_response_end"]).to_string(),
    );
    check(
        "response_content_type",
        format!("{:?}", x.response_headers.content_type()),
        format!("{:?}", opt_str(&e["response_content_type"])),
    );
    check(
        "response_content_encoding",
        format!("{:?}", x.response_headers.content_encoding()),
        format!("{:?}", opt_str(&e["response_content_encoding"])),
    );
    check(
        "request_content_type",
        format!("{:?}", x.request_headers.content_type()),
        format!("{:?}", opt_str(&e["request_content_type"])),
    );
    check(
        "upgrade",
        format!("{:?}", x.request_headers.upgrade()),
        format!("{:?}", opt_str(&e["upgrade"])),
    );
    check(
        "user_agent",
        format!("{:?}", x.request_headers.user_agent()),
        format!("{:?}", opt_str(&e["user_agent"])),
    );
    check("anomalies", format!("{:?}", x.anomalies), "[]".into());
    if let Some(chat) = e.get("chat") {
        let f = &x.request_fields;
        check(
            "chat.body_json",
            f.json.to_string(),
            chat["body_json"].to_string(),
        );
        check(
            "chat.model",
            format!("{:?}", f.model),
            format!("{:?}", opt_str(&chat["model"])),
        );
        check(
            "chat.stream",
            f.stream.unwrap_or(false).to_string(),
            chat["stream"].to_string(),
        );
        check(
            "chat.has_session_id",
            matches!(f.session_id, Some(Some(_))).to_string(),
            chat["has_session_id"].to_string(),
        );
        check(
            "chat.session_id",
            format!("{:?}", f.session_id.clone().flatten()),
            format!("{:?}", opt_str(&chat["session_id"])),
        );
        check(
            "chat.has_chat_id",
            matches!(f.chat_id, Some(Some(_))).to_string(),
            chat["has_chat_id"].to_string(),
        );
        check(
            "chat.chat_id",
            format!("{:?}", f.chat_id.clone().flatten()),
            format!("{:?}", opt_str(&chat["chat_id"])),
        );
        check(
            "chat.message_id",
            format!("{:?}", f.id),
            format!("{:?}", opt_str(&chat["message_id"])),
        );
        check(
            "chat.has_messages",
            f.has_messages.to_string(),
            chat["has_messages"].to_string(),
        );
        let r = &x.response_fields;
        let usage = r.usage.map(|u| (u.input, u.output, u.input + u.output));
        let want = chat["usage"].as_object().map(|o| {
            (
                o["prompt_tokens"].as_u64().unwrap(),
                o["completion_tokens"].as_u64().unwrap(),
                o["total_tokens"].as_u64().unwrap(),
            )
        });
        check("chat.usage", format!("{usage:?}"), format!("{want:?}"));
        check(
            "chat.task_ids",
            r.has_task_ids.to_string(),
            (!chat["task_ids"].is_null()).to_string(),
        );
        let sse = r
            .sse
            .as_ref()
            .map(|s| (s.events, s.done, micros(s.first_event.unwrap_or_default())));
        let want = chat.get("sse").filter(|s| !s.is_null()).map(|s| {
            (
                s["events"].as_u64().unwrap() as u32,
                s["done"].as_bool().unwrap(),
                exp_micros(&s["first_event_ts"]),
            )
        });
        check("chat.sse", format!("{sse:?}"), format!("{want:?}"));
    }
    bad
}

fn check_capture(name: &str, split: Option<usize>) {
    let pcap = std::fs::read(fixture_dir().join(format!("{name}.pcap"))).unwrap();
    let expected = expected(name);
    let want = expected["exchanges"].as_array().unwrap();
    let (mut got, shared) = run(&pcap, split);
    // Expected order: capture time of the request's first byte.
    got.sort_by_key(|x| (x.request.first_byte, x.connection.client.port(), x.sequence));
    assert_eq!(got.len(), want.len(), "{name}: number of exchanges");
    let mut failures = Vec::new();
    for (i, (x, e)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            u64::from(x.connection.client.port()),
            e["connection"].as_u64().unwrap(),
            "{name} #{i}: connection"
        );
        for d in diff(x, e) {
            failures.push(format!("{name} #{i} {} {}: {d}", x.method, x.path));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(shared.counters.malformed_messages, 0);
    assert_eq!(shared.counters.missing_responses, 0);
    assert_eq!(shared.counters.decode_errors, 0);
}

#[test]
fn setup_capture() {
    check_capture("setup", None);
}

#[test]
fn setup_model_access_capture() {
    check_capture("setup_model_access", None);
}

#[test]
fn script_jwt_capture() {
    check_capture("script_jwt", None);
}

#[test]
fn script_apikey_capture() {
    check_capture("script_apikey", None);
}

#[test]
fn browser_capture() {
    check_capture("browser", None);
}

/// The same exchanges when every segment is cut into 7-byte pieces (timestamps are per segment,
/// so they do not change either).
#[test]
fn browser_capture_split_small() {
    check_capture("browser", Some(7));
}

#[test]
fn script_jwt_capture_split_bytes() {
    check_capture("script_jwt", Some(1));
}

/// The comparison itself catches a wrong number (guards against a vacuous test).
#[test]
fn diff_detects_mismatches() {
    let pcap = std::fs::read(fixture_dir().join("script_jwt.pcap")).unwrap();
    let expected = expected("script_jwt");
    let (mut got, _) = run(&pcap, None);
    got.sort_by_key(|x| x.request.first_byte);
    let mut e = expected["exchanges"][2].clone();
    assert!(diff(&got[2], &e).is_empty());
    assert_eq!(
        got[2].response_fields.sse.as_ref().map(|s| s.events),
        Some(21)
    );
    assert_eq!(got[2].response_fields.usage.map(|u| u.output), Some(17));
    assert_eq!(got[2].request_fields.model.as_deref(), Some("mock-gpt"));
    e["response_body_bytes"] = 4268.into();
    e["chat"]["usage"]["prompt_tokens"] = 5.into();
    assert_eq!(diff(&got[2], &e).len(), 2);
}

/// Throughput of the HTTP engine alone on the browser capture (`--ignored --nocapture`, in
/// release). Prints, asserts nothing about time.
#[test]
#[ignore]
fn throughput_report() {
    let pcap = std::fs::read(fixture_dir().join("browser.pcap")).unwrap();
    let rounds = 20;
    for decode_unused_bodies in [true, false] {
        let limits = HttpLimits {
            decode_unused_bodies,
            ..HttpLimits::default()
        };
        let start = std::time::Instant::now();
        let mut exchanges = 0;
        for _ in 0..rounds {
            exchanges += run_with(&pcap, None, limits.clone()).0.len();
        }
        let secs = start.elapsed().as_secs_f64();
        let bits = (pcap.len() * rounds * 8) as f64;
        eprintln!(
            "decode_unused_bodies={decode_unused_bodies}: {exchanges} exchanges, {:.2} Gbit/s of capture, {:.0} exchanges/s (test harness included)",
            bits / secs / 1e9,
            exchanges as f64 / secs
        );
    }
}
