//! [`replay_capture`] over the real Open WebUI captures, compared with
//! `<capture>.expected.json`.
#[path = "support/expected_check.rs"]
mod expected_check;

use std::{collections::BTreeMap, fs::File, io::BufReader};

use expected_check::{CAPTURES, expected, fixture_dir};
use webui_monitor_core::{
    Monitor, MonitorConfig,
    http::Exchange,
    pipeline::PipelineEvent,
    replay::{self, ReplayStats, path_template, replay_capture},
    websocket::SocketEvent,
};

fn replay_fixture(name: &str) -> (Vec<Exchange>, ReplayStats) {
    let (exchanges, _, stats) = replay_all(name);
    (exchanges, stats)
}

/// Exchanges, socket events (with the client port) and totals of one capture.
fn replay_all(name: &str) -> (Vec<Exchange>, Vec<(u16, SocketEvent)>, ReplayStats) {
    let f = File::open(fixture_dir().join(format!("{name}.pcap"))).expect("pcap");
    let mut exchanges = Vec::new();
    let mut sockets = Vec::new();
    // Every body decoded, unused ones too: the expected files give each one's decoded size.
    let mut config = MonitorConfig::default();
    config.pipeline.http.decode_unused_bodies = true;
    let registry = prometheus::Registry::new();
    let mut monitor = Monitor::new(&config, None, &registry).expect("monitor");
    let stats = replay_capture(
        BufReader::new(f),
        &[8080],
        &mut monitor,
        |e| match e {
            PipelineEvent::Exchange(e) => exchanges.push((**e).clone()),
            PipelineEvent::Socket { connection, event } => {
                sockets.push((connection.client.port(), event.clone()));
            }
        },
        |_| {},
    )
    .expect("replay");
    let pipeline = monitor.pipeline();
    let c = pipeline.reassembly_counters();
    assert_eq!(c.gaps, 0, "{name}");
    assert_eq!(pipeline.active_connections(), 0, "{name}");
    (exchanges, sockets, stats)
}

#[test]
fn every_packet_is_read_and_dissected() {
    for name in CAPTURES {
        let want = expected(name);
        let (_, stats) = replay_fixture(name);
        assert_eq!(
            stats.packets,
            want["meta"]["packets"].as_u64().expect("packets"),
            "{name}"
        );
        assert_eq!(stats.segments, stats.packets, "{name}");
        assert_eq!(stats.skipped.iter().sum::<u64>(), 0, "{name}");
    }
}

/// Seconds as the expected files write them (pcap µs resolution).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 2e-6
}

#[test]

fn exchanges_match_expected() {
    for name in CAPTURES {
        let want = expected(name);
        let (mut got, _) = replay_fixture(name);
        // Expected order: capture time of the request's first byte.
        got.sort_by_key(|e| (e.request.first_byte, e.connection.client.port(), e.sequence));

        let mut counts: BTreeMap<(String, String, u64), u64> = BTreeMap::new();
        for e in &got {
            let status = u64::from(e.status.unwrap_or(0));
            *counts
                .entry((e.method.clone(), path_template(&e.path), status))
                .or_default() += 1;
        }
        let want_counts: BTreeMap<(String, String, u64), u64> =
            want["totals"]["by_method_path_status"]
                .as_array()
                .expect("by_method_path_status")
                .iter()
                .map(|r| {
                    (
                        (
                            r["method"].as_str().expect("method").to_owned(),
                            r["path"].as_str().expect("path").to_owned(),
                            r["status"].as_u64().expect("status"),
                        ),
                        r["count"].as_u64().expect("count"),
                    )
                })
                .collect();
        assert_eq!(
            counts, want_counts,
            "{name}: per (method, path template, status)"
        );

        let exchanges = want["exchanges"].as_array().expect("exchanges");
        assert_eq!(got.len(), exchanges.len(), "{name}");
        for (i, (e, w)) in got.iter().zip(exchanges).enumerate() {
            let ctx = format!("{name} exchange {i}");
            let u = |k: &str| w[k].as_u64();
            let f = |k: &str| w[k].as_f64().expect(k);
            assert_eq!(
                u64::from(e.connection.client.port()),
                u("connection").expect("port"),
                "{ctx}"
            );
            assert_eq!(e.method, w["method"].as_str().expect("method"), "{ctx}");
            assert_eq!(e.path, w["path"].as_str().expect("path"), "{ctx}");
            assert_eq!(
                e.has_query,
                w["has_query"].as_bool().expect("has_query"),
                "{ctx}"
            );
            assert_eq!(e.status.map(u64::from), u("status"), "{ctx}");
            assert_eq!(e.upgraded, w["upgrade"].is_string(), "{ctx}");
            assert_eq!(
                Some(e.request.header_bytes),
                u("request_header_bytes"),
                "{ctx}"
            );
            assert_eq!(
                Some(e.request.body_wire_bytes),
                u("request_body_bytes"),
                "{ctx}"
            );
            assert!(
                close(e.request.first_byte.as_secs_f64(), f("ts_request")),
                "{ctx}"
            );
            assert!(
                close(e.request.last_byte.as_secs_f64(), f("ts_request_end")),
                "{ctx}"
            );
            let r = e.response.as_ref().expect("response");
            assert_eq!(Some(r.header_bytes), u("response_header_bytes"), "{ctx}");
            assert_eq!(
                Some(r.body_wire_bytes),
                u("response_body_wire_bytes"),
                "{ctx}"
            );
            assert_eq!(Some(r.body_bytes), u("response_body_bytes"), "{ctx}");
            if let Some(decoded) = u("response_body_decoded_bytes") {
                assert_eq!(r.body_decoded_bytes, Some(decoded), "{ctx}");
            }
            assert_eq!(
                r.chunked,
                w["response_chunked"].as_bool().expect("chunked"),
                "{ctx}"
            );
            if let Some(chunks) = u("response_chunks") {
                assert_eq!(u64::from(r.chunks), chunks, "{ctx}");
            }
            assert_eq!(
                r.complete,
                w["response_complete"].as_bool().expect("complete"),
                "{ctx}"
            );
            assert!(close(r.first_byte.as_secs_f64(), f("ts_response")), "{ctx}");
            assert!(
                close(r.last_byte.as_secs_f64(), f("ts_response_end")),
                "{ctx}"
            );
            assert_eq!(
                e.response_headers.content_type(),
                w["response_content_type"].as_str(),
                "{ctx}"
            );
            assert_eq!(
                e.response_headers.content_encoding(),
                w["response_content_encoding"].as_str(),
                "{ctx}"
            );
            if let Some(usage) = w["chat"]["usage"].as_object() {
                let got_usage = e.response_fields.usage.expect("usage");
                assert_eq!(
                    Some(got_usage.input),
                    usage["prompt_tokens"].as_u64(),
                    "{ctx}"
                );
                assert_eq!(
                    Some(got_usage.output),
                    usage["completion_tokens"].as_u64(),
                    "{ctx}"
                );
            }
        }
    }
}

#[test]
fn socket_events_match_expected() {
    for name in CAPTURES {
        let want = expected(name);
        let (_, sockets, _) = replay_all(name);
        let sockets_expected = want["websocket"].as_array().expect("websocket");
        if sockets_expected.is_empty() {
            assert!(sockets.is_empty(), "{name}");
            continue;
        }
        for w in sockets_expected {
            let port = w["connection"].as_u64().expect("connection") as u16;
            let events: Vec<&SocketEvent> = sockets
                .iter()
                .filter(|(p, _)| *p == port)
                .map(|(_, e)| e)
                .collect();
            let sids: Vec<&str> = events
                .iter()
                .filter_map(|e| match e {
                    SocketEvent::Connected { sid, .. } => Some(sid.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(sids, [w["socketio_sid"].as_str().expect("sid")], "{name}");
            let joins = events
                .iter()
                .filter(|e| matches!(e, SocketEvent::UserJoin { .. }))
                .count();
            assert_eq!(
                joins,
                w["user_joins"].as_array().expect("user_joins").len(),
                "{name}"
            );
            let usage: Vec<(String, u64, u64, bool)> = events
                .iter()
                .filter_map(|e| match e {
                    SocketEvent::Usage {
                        message_id,
                        usage,
                        done,
                        ..
                    } => Some((message_id.clone(), usage.input, usage.output, *done)),
                    _ => None,
                })
                .collect();
            let want_usage: Vec<(String, u64, u64, bool)> = w["usage_events"]
                .as_array()
                .expect("usage_events")
                .iter()
                .map(|u| {
                    (
                        u["message_id"].as_str().expect("message_id").to_owned(),
                        u["prompt_tokens"].as_u64().expect("prompt_tokens"),
                        u["completion_tokens"].as_u64().expect("completion_tokens"),
                        u["done"].as_bool().expect("done"),
                    )
                })
                .collect();
            assert_eq!(usage, want_usage, "{name}");
            assert!(
                matches!(events.last(), Some(SocketEvent::Closed { .. })),
                "{name}: the socket ends with Closed"
            );
        }
    }
}

/// The `--json` line of every exchange of every capture carries no credential and no body text:
/// not the API key, not a JWT (all start `eyJ`), not the prompts, not a `Set-Cookie` value.
#[test]
fn json_lines_carry_no_secret() {
    let forbidden = [
        "sk-b2f36db1e8f4423697d7fa73f0ac0987",
        "eyJ",
        "Hello from the browser",
        "Second browser message",
        "Mock reply",
        "token=",
        "Bearer",
    ];
    for name in CAPTURES {
        let (exchanges, _) = replay_fixture(name);
        for e in &exchanges {
            let line = replay::exchange_json(e).to_string();
            for secret in forbidden {
                assert!(!line.contains(secret), "{name}: {secret:?} in a JSON line");
            }
        }
    }
}
