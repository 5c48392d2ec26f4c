//! The Attributor, with the users and API keys [`db::load`] reads from the fixture database,
//! against every capture's expected JSON: each expected exchange (and WebSocket
//! usage event) is rebuilt as the `Exchange`/`SocketEvent` the pipeline will hand over, with
//! the capture's real credentials (`testdata/credentials.json`, SHA-256 fingerprint → value,
//! extracted from the pcaps with tshark), and the resulting metrics must equal the expected
//! per-user totals exactly.
#[path = "../../webui-monitor-core/tests/support/expected_check.rs"]
mod expected_check;

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use expected_check::{CAPTURES, Samples, assert_matches_expected, expected, fixture_dir};
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::Value;
use webui_monitor::db;
use webui_monitor_core::{
    http::{
        Exchange,
        exchange::{
            MessageStats, RequestBodyFields, RequestField, RequestHeaders, ResponseBodyFields,
            StreamSummary,
        },
    },
    metrics::{OpenWebuiMetrics, PrometheusSink},
    openwebui::{Attributor, JwtSecret, SemanticsConfig},
    pipeline::PipelineEvent,
    secret::Secret,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
    websocket::SocketEvent,
};

/// `WEBUI_SECRET_KEY` of the captures (FIXTURES-README).
const SECRET: &[u8] = b"owui-test-secret-key-0123456789abcdef";

fn ts(v: &Value) -> Timestamp {
    Timestamp::from_nanos((v.as_f64().unwrap() * 1e9).round() as u64)
}

fn key(port: &Value) -> ConnectionKey {
    let port = u16::try_from(port.as_u64().unwrap()).unwrap();
    ConnectionKey {
        client: SocketAddr::from(([127, 0, 0, 1], port)),
        server: SocketAddr::from(([127, 0, 0, 1], 8080)),
    }
}

fn credentials() -> HashMap<String, String> {
    let text = include_str!("testdata/credentials.json");
    serde_json::from_str(text).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The `Exchange` the pipeline produces for one expected exchange.
fn exchange(e: &Value, creds: &HashMap<String, String>) -> Exchange {
    let fp = e["credential_fp"].as_str();
    let effective = fp.map(|fp| creds[fp].clone());
    let any_jwt = creds["bc02aeb386f4"].clone();
    let mut headers = RequestHeaders::default();
    if let Some(ua) = e["user_agent"].as_str() {
        headers.set(RequestField::UserAgent, ua);
    }
    for part in e["auth_carrier"].as_str().unwrap().split('+') {
        match part {
            "bearer_jwt" | "bearer_apikey" | "bearer_other" => {
                let v = effective.clone().unwrap();
                headers.set(RequestField::Authorization, format!("Bearer {v}"));
            }
            "cookie_jwt" => {
                let v = if e["credential_source"] == "cookie" || e["cookie_same_as_bearer"] == true
                {
                    effective.clone().unwrap()
                } else {
                    any_jwt.clone()
                };
                headers.set(RequestField::CookieToken, v);
            }
            "none" => {}
            other => panic!("carrier {other} not in the fixtures"),
        }
    }
    let chat = &e["chat"];
    let mut request_fields = RequestBodyFields::default();
    let mut response_fields = ResponseBodyFields::default();
    if chat.is_object() {
        request_fields = RequestBodyFields {
            json: true,
            model: chat["model"].as_str().map(String::from),
            stream: chat["stream"].as_bool(),
            session_id: (chat["has_session_id"] == true)
                .then(|| chat["session_id"].as_str().map(String::from)),
            chat_id: (chat["has_chat_id"] == true)
                .then(|| chat["chat_id"].as_str().map(String::from)),
            id: chat["message_id"].as_str().map(String::from),
            has_messages: chat["has_messages"] == true,
        };
        response_fields = ResponseBodyFields {
            json: chat["response_kind"] != "sse",
            usage: chat["usage"].is_object().then(|| {
                Usage::io(
                    u(&chat["usage"]["prompt_tokens"]),
                    u(&chat["usage"]["completion_tokens"]),
                )
            }),
            has_task_ids: chat["response_kind"] == "json_task",
            sse: chat["sse"].is_object().then(|| StreamSummary {
                events: u(&chat["sse"]["events"]) as u32,
                done: chat["sse"]["done"] == true,
                first_event: Some(ts(&chat["sse"]["first_event_ts"])),
                last_event: None,
            }),
            ndjson: None,
            model_load: false,
        };
    }
    let status = e["status"].as_u64().map(|s| s as u16);
    Exchange {
        connection: key(&e["connection"]),
        sequence: 0,
        method: e["method"].as_str().unwrap().into(),
        path: e["path"].as_str().unwrap().into(),
        has_query: e["has_query"] == true,
        status,
        request: MessageStats {
            header_bytes: u(&e["request_header_bytes"]),
            body_wire_bytes: u(&e["request_body_bytes"]),
            body_bytes: u(&e["request_body_bytes"]),
            first_byte: ts(&e["ts_request"]),
            last_byte: ts(&e["ts_request_end"]),
            complete: true,
            ..Default::default()
        },
        response: Some(MessageStats {
            header_bytes: u(&e["response_header_bytes"]),
            body_wire_bytes: u(&e["response_body_wire_bytes"]),
            body_bytes: u(&e["response_body_bytes"]),
            chunked: e["response_chunked"] == true,
            first_byte: ts(&e["ts_response"]),
            last_byte: ts(&e["ts_response_end"]),
            complete: true,
            ..Default::default()
        }),
        request_headers: headers,
        response_headers: Default::default(),
        request_fields,
        response_fields,
        upgraded: status == Some(101),
        anomalies: Vec::new(),
    }
}

/// Every event of a capture in the order the pipeline emits them (exchanges when their response
/// ends, socket events at their own time).
fn events(name: &str) -> Vec<PipelineEvent> {
    let json = expected(name);
    let creds = credentials();
    let mut timed: Vec<(Timestamp, u8, PipelineEvent)> = Vec::new();
    for e in json["exchanges"].as_array().unwrap() {
        let ex = exchange(e, &creds);
        let at = ex.response.as_ref().unwrap().last_byte;
        timed.push((at, 0, PipelineEvent::Exchange(Box::new(ex))));
    }
    for ws in json["websocket"].as_array().unwrap() {
        let connection = key(&ws["connection"]);
        let mut push = |at: Timestamp, event: SocketEvent| {
            timed.push((at, 1, PipelineEvent::Socket { connection, event }));
        };
        for join in ws["user_joins"].as_array().unwrap() {
            let at = ts(&join["ts"]);
            let sid = ws["socketio_sid"].as_str().unwrap().to_string();
            push(at, SocketEvent::Connected { sid, ts: at });
            let token = Secret::new(creds[join["credential_fp"].as_str().unwrap()].as_bytes());
            push(at, SocketEvent::UserJoin { token, ts: at });
        }
        let mut last = Timestamp::default();
        for ev in ws["usage_events"].as_array().unwrap() {
            let at = ts(&ev["ts"]);
            last = last.max(at);
            push(
                at,
                SocketEvent::Usage {
                    chat_id: ev["chat_id"].as_str().map(String::from),
                    message_id: ev["message_id"].as_str().unwrap().into(),
                    usage: Usage::io(u(&ev["prompt_tokens"]), u(&ev["completion_tokens"])),
                    done: ev["done"] == true,
                    ts: at,
                },
            );
        }
        push(
            Timestamp::from_nanos(last.as_nanos() + 1),
            SocketEvent::Closed {
                ts: Timestamp::from_nanos(last.as_nanos() + 1),
            },
        );
    }
    timed.sort_by_key(|(at, order, _)| (*at, *order));
    timed.into_iter().map(|(_, _, e)| e).collect()
}

/// Samples of the text exposition: (name, labels) → value.
/// An attributor with the captures' secret and database, and the sink its facts go to.
fn attributor(registry: &Registry) -> (Attributor, PrometheusSink) {
    let metrics = OpenWebuiMetrics::register(registry, "USD").unwrap();
    let config = SemanticsConfig::default();
    let mut sink = PrometheusSink::new(metrics, &config, Default::default());
    let mut a = Attributor::new(config, Some(&JwtSecret::new(SECRET)));
    a.set_directory(
        Some(Arc::new(db::load(&fixture_dir().join("webui.db")).unwrap())),
        &mut sink,
    );
    (a, sink)
}

fn run(name: &str) -> (Registry, Attributor) {
    let registry = Registry::new();
    let (mut a, mut sink) = attributor(&registry);
    let events = events(name);
    let end = events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::Exchange(ex) => ex.response.as_ref().map(|r| r.last_byte),
            _ => None,
        })
        .max()
        .unwrap();
    for e in &events {
        a.on_event(e, &mut sink);
    }
    a.finish(end, &mut sink);
    (registry, a)
}

#[test]
fn setup_capture_per_user_numbers() {
    let (registry, _) = run("setup");
    assert_matches_expected("setup", &Samples::gather(&registry));
}

#[test]
fn setup_model_access_capture_per_user_numbers() {
    let (registry, _) = run("setup_model_access");
    assert_matches_expected("setup_model_access", &Samples::gather(&registry));
}

#[test]
fn script_jwt_capture_per_user_numbers() {
    let (registry, _) = run("script_jwt");
    let s = Samples::gather(&registry);
    assert_matches_expected("script_jwt", &s);
    // One TTFT observation per SSE completion.
    assert_eq!(
        s.sum(
            "openwebui_chat_time_to_first_token_seconds_count",
            &[("model", "mock-gpt")]
        ),
        1.0
    );
}

#[test]
fn script_apikey_capture_per_user_numbers() {
    let (registry, _) = run("script_apikey");
    let s = Samples::gather(&registry);
    assert_matches_expected("script_apikey", &s);
    assert_eq!(
        s.sum(
            "openwebui_api_key_info",
            &[
                ("key", "46e99b8fcc3f"),
                ("user", "700c1556-9d86-452a-880f-edbc8a74ead8")
            ]
        ),
        1.0
    );
}

#[test]
fn browser_capture_per_user_numbers_and_websocket_tokens() {
    let (registry, a) = run("browser");
    let s = Samples::gather(&registry);
    assert_matches_expected("browser", &s);
    // Each answer's usage arrives twice; counted once.
    assert_eq!(a.counters.duplicate_usage, 2);
    assert_eq!(a.counters.unjoined_answers, 0);
    assert_eq!(a.counters.session_mismatches, 0);
    // Browser evidence: the web UI's requests carry the cookie next to Bearer.
    assert_eq!(
        s.sum(
            "openwebui_client_signals_total",
            &[("signal", "cookie_with_authorization")]
        ),
        35.0
    );
}

#[test]
fn no_credential_value_reaches_the_exposition() {
    let creds = credentials();
    for name in CAPTURES {
        let (registry, _) = run(name);
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        for v in creds.values().filter(|v| v.len() > 9) {
            assert!(!text.contains(v.as_str()), "{name}: a credential leaked");
            assert!(
                !text.contains(&v[..20]),
                "{name}: a credential prefix leaked"
            );
        }
    }
}
