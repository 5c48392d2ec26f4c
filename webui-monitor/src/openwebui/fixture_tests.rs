//! The Attributor against every capture's expected JSON: each expected exchange (and WebSocket
//! usage event) is rebuilt as the `Exchange`/`SocketEvent` the pipeline will hand over, with
//! the capture's real credentials (`testdata/credentials.json`, SHA-256 fingerprint → value,
//! extracted from the pcaps with tshark), and the resulting metrics must equal the expected
//! per-user totals exactly.
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::Value;

use super::{
    Attributor, OpenWebuiMetrics, SemanticsConfig, db,
    jwt::{JwtSecret, tests::SECRET},
};
use crate::{
    http::{
        Exchange,
        exchange::{
            MessageStats, RequestBodyFields, RequestHeaders, ResponseBodyFields, Secret,
            SseSummary, Usage,
        },
    },
    pipeline::PipelineEvent,
    segment::{ConnectionKey, Timestamp},
    websocket::SocketEvent,
};

pub(crate) const CAPTURES: [&str; 5] = [
    "setup",
    "setup_model_access",
    "browser",
    "script_jwt",
    "script_apikey",
];

pub(crate) fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui")
}

pub(crate) fn expected(name: &str) -> Value {
    let text =
        std::fs::read_to_string(fixture_dir().join(format!("{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

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
    let mut headers = RequestHeaders {
        user_agent: e["user_agent"].as_str().map(String::from),
        ..Default::default()
    };
    for part in e["auth_carrier"].as_str().unwrap().split('+') {
        match part {
            "bearer_jwt" | "bearer_apikey" | "bearer_other" => {
                let v = effective.clone().unwrap();
                headers.authorization = Some(Secret::new(format!("Bearer {v}").as_bytes()));
            }
            "cookie_jwt" => {
                let v = if e["credential_source"] == "cookie" || e["cookie_same_as_bearer"] == true
                {
                    effective.clone().unwrap()
                } else {
                    any_jwt.clone()
                };
                headers.cookie_token = Some(Secret::new(v.as_bytes()));
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
            usage: chat["usage"].is_object().then(|| Usage {
                prompt_tokens: u(&chat["usage"]["prompt_tokens"]),
                completion_tokens: u(&chat["usage"]["completion_tokens"]),
                total_tokens: u(&chat["usage"]["total_tokens"]),
            }),
            has_task_ids: chat["response_kind"] == "json_task",
            sse: chat["sse"].is_object().then(|| SseSummary {
                events: u(&chat["sse"]["events"]) as u32,
                done: chat["sse"]["done"] == true,
                first_event: Some(ts(&chat["sse"]["first_event_ts"])),
                last_event: None,
            }),
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
pub(crate) fn events(name: &str) -> Vec<PipelineEvent> {
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
                    usage: Usage {
                        prompt_tokens: u(&ev["prompt_tokens"]),
                        completion_tokens: u(&ev["completion_tokens"]),
                        total_tokens: u(&ev["total_tokens"]),
                    },
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
type Sample = (String, Vec<(String, String)>, f64);

/// Samples of the text exposition.
pub(crate) struct Samples(Vec<Sample>);

impl Samples {
    pub(crate) fn gather(registry: &Registry) -> Self {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").unwrap();
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            out.push((name.to_string(), labels, value.parse().unwrap()));
        }
        Self(out)
    }

    /// Sum of `name` over series whose labels include all of `filter`.
    pub(crate) fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    pub(crate) fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .iter()
            .filter(|(n, _, _)| n == name)
            .flat_map(|(_, labels, _)| {
                labels
                    .iter()
                    .filter(|(k, _)| k == label)
                    .map(|(_, v)| v.clone())
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The `auth` label an expected exchange's effective credential maps to.
pub(crate) fn auth_label(effective_credential: &str) -> &'static str {
    match effective_credential {
        "authorization/jwt" | "authorization/other" => "jwt",
        "cookie/jwt" | "cookie/other" => "cookie",
        "authorization/api_key" | "x-api-key/api_key" => "api_key",
        "none/none" => "none",
        other => panic!("unexpected credential {other}"),
    }
}

/// Check `samples` against the totals of a capture's expected JSON.
pub(crate) fn assert_matches_expected(name: &str, samples: &Samples) {
    let json = expected(name);
    let totals = &json["totals"];
    // Routes.
    for row in totals["by_method_route_status"].as_array().unwrap() {
        let status = row["status"].to_string();
        let got = samples.sum(
            "openwebui_http_requests_total",
            &[
                ("method", row["method"].as_str().unwrap()),
                ("route", row["route"].as_str().unwrap()),
                ("status", &status),
            ],
        );
        assert_eq!(got, row["count"].as_f64().unwrap(), "{name}: {row}");
    }
    assert_eq!(
        samples.sum("openwebui_http_requests_total", &[]),
        totals["exchanges"].as_f64().unwrap(),
        "{name}: exchanges"
    );
    // Per user.
    let per_user = totals["per_user"].as_object().unwrap();
    let mut users: Vec<&str> = per_user.keys().map(String::as_str).collect();
    users.sort();
    assert_eq!(
        samples.label_values("openwebui_user_requests_total", "user"),
        users,
        "{name}: user label values"
    );
    for (user, t) in per_user {
        let u = [("user", user.as_str())];
        assert_eq!(
            samples.sum("openwebui_user_requests_total", &u),
            t["requests"].as_f64().unwrap(),
            "{name} {user}"
        );
        for (cred, n) in t["by_effective_credential"].as_object().unwrap() {
            let auth = auth_label(cred);
            let mut want = n.as_f64().unwrap();
            // Several credentials can share one auth label.
            want += t["by_effective_credential"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(c, _)| *c != cred && auth_label(c) == auth)
                .map(|(_, n)| n.as_f64().unwrap())
                .sum::<f64>();
            assert_eq!(
                samples.sum(
                    "openwebui_user_requests_total",
                    &[("user", user), ("auth", auth)]
                ),
                want,
                "{name} {user} {cred}"
            );
        }
        for (dir, field) in [("request", "request_bytes"), ("response", "response_bytes")] {
            assert_eq!(
                samples.sum(
                    "openwebui_user_bytes_total",
                    &[("user", user), ("direction", dir)]
                ),
                t[field].as_f64().unwrap(),
                "{name} {user} {field}"
            );
        }
        for c in t["chat_completions"].as_array().unwrap() {
            let status = c["status"].as_u64().unwrap();
            let class = format!("{}xx", status / 100);
            let stream = c["stream"].to_string();
            assert_eq!(
                samples.sum(
                    "openwebui_chat_completions_total",
                    &[
                        ("user", user),
                        ("model", c["model"].as_str().unwrap()),
                        ("auth", c["auth"].as_str().unwrap()),
                        ("client", c["client_kind"].as_str().unwrap()),
                        ("stream", &stream),
                        ("status_class", &class),
                    ]
                ),
                c["count"].as_f64().unwrap(),
                "{name} {user} {c}"
            );
        }
        let completions: f64 = t["chat_completions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_f64().unwrap())
            .sum();
        assert_eq!(
            samples.sum("openwebui_chat_completions_total", &[("user", user)]),
            completions
        );
        for source in ["http", "websocket"] {
            for (dir, field) in [("input", "prompt"), ("output", "completion")] {
                assert_eq!(
                    samples.sum(
                        "openwebui_llm_tokens_total",
                        &[("user", user), ("source", source), ("direction", dir)]
                    ),
                    t["tokens"][source][field].as_f64().unwrap(),
                    "{name} {user} {source} {field}"
                );
            }
        }
    }
    for row in totals["tokens_by_user_model_source"].as_array().unwrap() {
        for (dir, field) in [("input", "prompt"), ("output", "completion")] {
            let f = [
                ("user", row["user"].as_str().unwrap()),
                ("model", row["model"].as_str().unwrap()),
                ("source", row["source"].as_str().unwrap()),
                ("direction", dir),
            ];
            assert_eq!(
                samples.sum("openwebui_llm_tokens_total", &f),
                row[field].as_f64().unwrap(),
                "{name} {row}"
            );
        }
    }
    // Auth results: JWT verdicts as such; no credential → anonymous; known key → verified.
    let mut results: HashMap<&str, f64> = HashMap::new();
    for e in json["exchanges"].as_array().unwrap() {
        let r = match (
            e["jwt_verdict"].as_str().unwrap(),
            e["user"].as_str().unwrap(),
        ) {
            ("n/a", "anonymous") => "anonymous",
            ("n/a", "unknown_api_key") => "unknown_api_key",
            ("n/a", _) => "verified",
            (v, _) => v,
        };
        *results.entry(r).or_default() += 1.0;
    }
    for (r, n) in results {
        assert_eq!(
            samples.sum("openwebui_auth_total", &[("result", r)]),
            n,
            "{name} auth {r}"
        );
    }
}

pub(crate) fn attributor(registry: &Registry) -> Attributor {
    let metrics = OpenWebuiMetrics::register(registry).unwrap();
    let mut a = Attributor::new(
        SemanticsConfig::default(),
        metrics,
        Some(&JwtSecret::new(SECRET)),
    );
    a.set_directory(Some(Arc::new(
        db::load(&fixture_dir().join("webui.db")).unwrap(),
    )));
    a
}

fn run(name: &str) -> (Registry, Attributor) {
    let registry = Registry::new();
    let mut a = attributor(&registry);
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
        a.on_event(e);
    }
    a.finish(end);
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
