//! Behaviour of the [`Attributor`] on hand-built exchanges and socket events: every
//! authentication outcome, the caps, and the WebSocket join in both event orders.
use std::{net::SocketAddr, sync::Arc};

use prometheus::Registry;

use super::{
    Attributor, OpenWebuiMetrics, SemanticsConfig,
    apikey::{Directory, UserRecord},
    jwt::{
        JwtSecret,
        tests::{ALICE, NOW, SECRET, session_token},
    },
};
use crate::{
    expected_check::Samples,
    http::{
        Exchange,
        exchange::{Anomaly, MessageStats, RequestBodyFields, ResponseBodyFields, StreamSummary},
    },
    secret::Secret,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
    websocket::SocketEvent,
};

const BOB: &str = "11111111-2222-4333-8444-555555555555";
const KEY: &str = "sk-b2f36db1e8f4423697d7fa73f0ac0987";
const SID: &str = "ra3UWfHOjscDF_mPAAAH";
const MSG: &str = "1036e29f-eb1d-4db1-9418-3fc4f3074356";

fn conn(port: u16) -> ConnectionKey {
    ConnectionKey {
        client: SocketAddr::from(([10, 0, 0, 1], port)),
        server: SocketAddr::from(([10, 0, 0, 2], 8080)),
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// A GET at `NOW + dt` seconds, 100-byte request, 1000-byte response.
fn request(path: &str, status: u16, dt: u64) -> Exchange {
    Exchange {
        connection: conn(40000),
        sequence: 0,
        method: "GET".into(),
        path: path.into(),
        has_query: false,
        status: Some(status),
        request: MessageStats {
            header_bytes: 100,
            first_byte: at(NOW + dt),
            last_byte: at(NOW + dt),
            complete: true,
            ..Default::default()
        },
        response: Some(MessageStats {
            header_bytes: 200,
            body_wire_bytes: 800,
            first_byte: at(NOW + dt),
            last_byte: at(NOW + dt),
            complete: true,
            ..Default::default()
        }),
        request_headers: Default::default(),
        response_headers: Default::default(),
        request_fields: Default::default(),
        response_fields: Default::default(),
        upgraded: false,
        anomalies: Vec::new(),
    }
}

fn bearer(mut ex: Exchange, value: &str) -> Exchange {
    ex.request_headers.authorization = Some(Secret::new(format!("Bearer {value}").as_bytes()));
    ex
}

fn cookie(mut ex: Exchange, value: &str) -> Exchange {
    ex.request_headers.cookie_token = Some(Secret::new(value.as_bytes()));
    ex
}

/// A chat completion POST; `session_id` makes it a web-UI one.
fn completion(
    model: &str,
    session_id: Option<&str>,
    message_id: Option<&str>,
    dt: u64,
) -> Exchange {
    let mut ex = request("/api/chat/completions", 200, dt);
    ex.method = "POST".into();
    ex.request_fields = RequestBodyFields {
        json: true,
        model: Some(model.into()),
        stream: Some(true),
        session_id: session_id.map(|s| Some(s.into())),
        chat_id: None,
        id: message_id.map(Into::into),
        has_messages: session_id.is_none(),
    };
    ex
}

fn usage(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
    }
}

fn directory() -> Arc<Directory> {
    let mut d = Directory::default();
    d.insert_key(KEY.as_bytes(), ALICE);
    d.insert_user(
        ALICE,
        UserRecord {
            name: "Alice".into(),
            email: "alice@example.com".into(),
            role: "user".into(),
        },
    );
    Arc::new(d)
}

struct Fixture {
    registry: Registry,
    a: Attributor,
}

impl Fixture {
    fn new(config: SemanticsConfig, secret: bool) -> Self {
        let registry = Registry::new();
        let metrics = OpenWebuiMetrics::register(&registry).unwrap();
        let secret = secret.then(|| JwtSecret::new(SECRET));
        let a = Attributor::new(config, metrics, secret.as_ref());
        Self { registry, a }
    }
    fn with_secret() -> Self {
        Self::new(SemanticsConfig::default(), true)
    }
    fn samples(&self) -> Samples {
        Samples::gather(&self.registry)
    }
    fn users(&self) -> Vec<String> {
        self.samples()
            .label_values("openwebui_user_requests_total", "user")
    }
    fn auth(&self, result: &str) -> f64 {
        self.samples()
            .sum("openwebui_auth_total", &[("result", result)])
    }
}

#[test]
fn verified_bearer_and_cookie_only() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.a.on_exchange(&cookie(
        bearer(request("/api/v1/chats/", 200, 0), &token),
        &token,
    ));
    f.a.on_exchange(&cookie(request("/_app/x.js", 200, 1), &token));
    let s = f.samples();
    let alice = ("user", ALICE);
    assert_eq!(
        s.sum("openwebui_user_requests_total", &[alice, ("auth", "jwt")]),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[alice, ("auth", "cookie")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_user_bytes_total",
            &[alice, ("direction", "request")]
        ),
        200.0
    );
    assert_eq!(
        s.sum(
            "openwebui_user_bytes_total",
            &[alice, ("direction", "response")]
        ),
        2000.0
    );
    assert_eq!(
        s.sum("openwebui_user_last_seen_timestamp_seconds", &[alice]),
        (NOW + 1) as f64
    );
    assert_eq!(f.auth("verified"), 2.0);
    assert_eq!(
        s.sum(
            "openwebui_http_requests_total",
            &[("route", "/_app/*"), ("status", "200")]
        ),
        1.0
    );
}

#[test]
fn forged_expired_and_malformed_tokens_are_invalid_never_the_claimed_id() {
    let mut f = Fixture::with_secret();
    let forged = session_token(ALICE, NOW - 60, b"attacker-guess");
    let expired = session_token(ALICE, NOW - 2_419_200 - 1, SECRET);
    let future = session_token(ALICE, NOW + 3600, SECRET);
    f.a.on_exchange(&bearer(request("/api/v1/chats/", 200, 0), &forged));
    f.a.on_exchange(&bearer(request("/api/v1/chats/", 401, 0), &expired));
    f.a.on_exchange(&bearer(request("/api/version", 200, 0), "undefined"));
    f.a.on_exchange(&cookie(request("/api/config", 200, 0), &future));
    assert_eq!(f.users(), ["invalid"]);
    assert_eq!(
        f.samples()
            .sum("openwebui_user_requests_total", &[("user", "invalid")]),
        4.0
    );
    assert_eq!(f.auth("bad_signature"), 1.0);
    assert_eq!(f.auth("expired"), 1.0);
    assert_eq!(f.auth("malformed"), 1.0);
    assert_eq!(f.auth("not_yet_valid"), 1.0);
}

#[test]
fn without_secret_claimed_id_is_unverified_unless_rejected() {
    let mut f = Fixture::new(SemanticsConfig::default(), false);
    let any_key = session_token(ALICE, NOW, b"unknown-secret");
    f.a.on_exchange(&bearer(request("/api/models", 200, 0), &any_key));
    f.a.on_exchange(&bearer(request("/api/models", 401, 1), &any_key));
    f.a.on_exchange(&bearer(request("/api/version", 200, 2), "undefined"));
    f.a.on_exchange(&request("/api/config", 200, 3));
    let s = f.samples();
    assert_eq!(
        s.sum("openwebui_user_requests_total", &[("user", ALICE)]),
        1.0
    );
    assert_eq!(
        s.sum("openwebui_user_requests_total", &[("user", "invalid")]),
        2.0
    );
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", "anonymous"), ("auth", "none")]
        ),
        1.0
    );
    assert_eq!(f.auth("unverified"), 1.0);
    assert_eq!(f.auth("rejected"), 1.0);
    assert_eq!(f.auth("malformed"), 1.0);
    assert_eq!(f.auth("anonymous"), 1.0);
}

#[test]
fn api_keys_known_unknown_and_without_database() {
    let mut f = Fixture::with_secret();
    f.a.on_exchange(&bearer(request("/api/models", 200, 0), KEY));
    f.a.set_directory(Some(directory()));
    f.a.on_exchange(&bearer(request("/api/models", 200, 1), KEY));
    let mut header = request("/api/models", 401, 2);
    header.request_headers.api_key_header =
        Some(Secret::new(b"sk-00000000000000000000000000000000"));
    f.a.on_exchange(&header);
    let s = f.samples();
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", ALICE), ("auth", "api_key")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", "unresolved_api_key")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", "unknown_api_key")]
        ),
        1.0
    );
    assert_eq!(f.auth("unverified"), 1.0);
    assert_eq!(f.auth("verified"), 1.0);
    assert_eq!(f.auth("unknown_api_key"), 1.0);
    // Fingerprints only; the owner label follows the database once loaded.
    assert_eq!(
        s.label_values("openwebui_api_key_info", "key"),
        ["46e99b8fcc3f", "8acd31c3c56e"]
    );
    assert_eq!(
        s.sum(
            "openwebui_api_key_info",
            &[("key", "46e99b8fcc3f"), ("user", ALICE)]
        ),
        1.0
    );
}

#[test]
fn user_cap_folds_into_other_and_idle_users_expire() {
    let config = SemanticsConfig {
        max_users: 1,
        user_ttl_secs: 100,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let alice = session_token(ALICE, NOW - 60, SECRET);
    let bob = session_token(BOB, NOW - 60, SECRET);
    f.a.on_exchange(&bearer(request("/api/models", 200, 0), &alice));
    f.a.on_exchange(&bearer(request("/api/models", 200, 1), &bob));
    f.a.on_exchange(&bearer(request("/api/models", 200, 2), &bob));
    assert_eq!(f.users(), [ALICE, "other"]);
    let s = f.samples();
    assert_eq!(
        s.sum("openwebui_user_requests_total", &[("user", "other")]),
        2.0
    );
    assert_eq!(
        s.sum(
            "webui_monitor_openwebui_limit_hits_total",
            &[("limit", "max_users")]
        ),
        2.0
    );
    assert_eq!(s.sum("webui_monitor_openwebui_tracked_users", &[]), 1.0);
    // Alice idle for longer than the TTL (traffic time): her series go, Bob gets the slot.
    f.a.on_tick(at(NOW + 101));
    assert_eq!(f.users(), ["other"]);
    f.a.on_exchange(&bearer(request("/api/models", 200, 102), &bob));
    assert_eq!(f.users(), [BOB, "other"]);
    assert_eq!(
        f.samples()
            .sum("webui_monitor_openwebui_users_evicted_total", &[]),
        1.0
    );
    assert!(
        f.samples()
            .label_values("openwebui_user_last_seen_timestamp_seconds", "user")
            .iter()
            .all(|u| u != ALICE)
    );
}

#[test]
fn model_label_is_bounded_and_tokens_need_2xx() {
    let config = SemanticsConfig {
        max_models: 1,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let token = session_token(ALICE, NOW - 60, SECRET);
    let mut ok = bearer(completion("mock-gpt", None, None, 0), &token);
    ok.response_fields = ResponseBodyFields {
        usage: Some(usage(4, 17)),
        sse: Some(StreamSummary {
            events: 21,
            done: true,
            first_event: Some(Timestamp::from_nanos(at(NOW).as_nanos() + 70_000_000)),
            last_event: None,
        }),
        ..Default::default()
    };
    f.a.on_exchange(&ok);
    let mut other = bearer(completion("gpt-x", None, None, 1), &token);
    other.status = Some(500);
    other.response_fields.usage = Some(usage(1, 1));
    f.a.on_exchange(&other);
    let s = f.samples();
    assert_eq!(
        s.label_values("openwebui_chat_completions_total", "model"),
        ["mock-gpt", "other"]
    );
    assert_eq!(
        s.sum(
            "openwebui_chat_completions_total",
            &[
                ("model", "other"),
                ("status_class", "5xx"),
                ("client", "api"),
                ("stream", "true")
            ]
        ),
        1.0
    );
    assert_eq!(
        s.sum("openwebui_llm_tokens_total", &[("direction", "input")]),
        4.0
    );
    assert_eq!(
        s.sum(
            "openwebui_llm_tokens_total",
            &[("direction", "output"), ("source", "http")]
        ),
        17.0
    );
    assert_eq!(
        s.sum(
            "openwebui_chat_time_to_first_token_seconds_count",
            &[("model", "mock-gpt")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_chat_time_to_first_token_seconds_sum",
            &[("model", "mock-gpt")]
        ),
        0.07
    );
}

/// A script calling Ollama's native API through Open WebUI's proxy with a copied session JWT:
/// its tokens come from the NDJSON stream's last line, and a request without `stream` streams.
#[test]
fn ollama_native_completions_count_tokens_and_stream_by_default() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    let mut streamed = bearer(completion("llama3.2", None, None, 0), &token);
    streamed.path = "/ollama/api/chat".into();
    streamed.request_fields.stream = None;
    streamed.response_fields = ResponseBodyFields {
        usage: Some(usage(26, 282)),
        ndjson: Some(StreamSummary {
            events: 3,
            done: true,
            first_event: Some(Timestamp::from_nanos(at(NOW).as_nanos() + 250_000_000)),
            last_event: None,
        }),
        ..Default::default()
    };
    f.a.on_exchange(&streamed);
    let mut whole = bearer(completion("llama3.2", None, None, 1), &token);
    whole.path = "/ollama/api/generate".into();
    whole.request_fields.stream = Some(false);
    whole.response_fields = ResponseBodyFields {
        json: true,
        usage: Some(usage(10, 5)),
        ..Default::default()
    };
    f.a.on_exchange(&whole);
    let s = f.samples();
    let completions = |stream| {
        s.sum(
            "openwebui_chat_completions_total",
            &[
                ("user", ALICE),
                ("model", "llama3.2"),
                ("auth", "jwt"),
                ("client", "api"),
                ("stream", stream),
                ("status_class", "2xx"),
            ],
        )
    };
    assert_eq!((completions("true"), completions("false")), (1.0, 1.0));
    let tokens = |direction| {
        s.sum(
            "openwebui_llm_tokens_total",
            &[
                ("user", ALICE),
                ("model", "llama3.2"),
                ("direction", direction),
                ("source", "http"),
            ],
        )
    };
    assert_eq!((tokens("input"), tokens("output")), (36.0, 287.0));
    assert_eq!(
        s.sum(
            "openwebui_chat_time_to_first_token_seconds_sum",
            &[("model", "llama3.2")]
        ),
        0.25
    );
    assert_eq!(
        s.sum(
            "openwebui_chat_time_to_first_token_seconds_count",
            &[("model", "llama3.2")]
        ),
        1.0
    );
}

/// The browser's socket: upgrade, `40{sid}`, `user-join` with `token`.
fn open_socket(f: &mut Fixture, token: &str) {
    let mut up = request("/ws/socket.io/", 101, 0);
    up.connection = conn(56146);
    up.upgraded = true;
    f.a.on_exchange(&up);
    let sock = conn(56146);
    f.a.on_socket(
        sock,
        &SocketEvent::Connected {
            sid: SID.into(),
            ts: at(NOW),
        },
    );
    let token = Secret::new(token.as_bytes());
    f.a.on_socket(sock, &SocketEvent::UserJoin { token, ts: at(NOW) });
}

fn ws_usage(message_id: &str, u: Usage, done: bool, secs: u64) -> SocketEvent {
    SocketEvent::Usage {
        chat_id: Some("35ae9654-336e-4ee2-9dd7-f234e6760bae".into()),
        message_id: message_id.into(),
        usage: u,
        done,
        ts: at(secs),
    }
}

#[test]
fn websocket_answer_joins_its_request_and_counts_once() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    open_socket(&mut f, &token);
    let post = bearer(completion("mock-gpt", Some(SID), Some(MSG), 2), &token);
    f.a.on_exchange(&post);
    // Deferred: the task was accepted, the answer is not done yet.
    assert_eq!(
        f.samples().sum("openwebui_chat_completions_total", &[]),
        0.0
    );
    let sock = conn(56146);
    let delta = SocketEvent::FirstDelta {
        chat_id: None,
        message_id: MSG.into(),
        ts: Timestamp::from_nanos(at(NOW + 2).as_nanos() + 500_000_000),
    };
    f.a.on_socket(sock, &delta);
    f.a.on_socket(sock, &ws_usage(MSG, usage(6, 19), false, NOW + 3));
    f.a.on_socket(sock, &ws_usage(MSG, usage(6, 19), true, NOW + 3));
    let s = f.samples();
    let alice_ws = [
        ("user", ALICE),
        ("model", "mock-gpt"),
        ("source", "websocket"),
    ];
    assert_eq!(
        s.sum(
            "openwebui_llm_tokens_total",
            &[
                alice_ws[0],
                alice_ws[1],
                alice_ws[2],
                ("direction", "input")
            ]
        ),
        6.0
    );
    assert_eq!(
        s.sum(
            "openwebui_llm_tokens_total",
            &[
                alice_ws[0],
                alice_ws[1],
                alice_ws[2],
                ("direction", "output")
            ]
        ),
        19.0
    );
    assert_eq!(
        s.sum(
            "openwebui_chat_completions_total",
            &[
                ("user", ALICE),
                ("client", "webui"),
                ("auth", "jwt"),
                ("status_class", "2xx")
            ]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_chat_time_to_first_token_seconds_sum",
            &[("model", "mock-gpt")]
        ),
        0.5
    );
    assert_eq!(f.a.counters.duplicate_usage, 1);
}

#[test]
fn websocket_usage_before_its_request_waits_for_the_model() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    open_socket(&mut f, &token);
    let sock = conn(56146);
    f.a.on_socket(sock, &ws_usage(MSG, usage(31, 19), true, NOW + 1));
    assert_eq!(f.samples().sum("openwebui_llm_tokens_total", &[]), 0.0);
    f.a.on_exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    let s = f.samples();
    assert_eq!(
        s.sum(
            "openwebui_llm_tokens_total",
            &[("model", "mock-gpt"), ("user", ALICE)]
        ),
        50.0
    );
    assert_eq!(
        s.sum(
            "openwebui_chat_completions_total",
            &[("status_class", "2xx")]
        ),
        1.0
    );
}

#[test]
fn unjoined_answer_is_credited_with_unknown_model_at_expiry() {
    let mut f = Fixture::with_secret();
    open_socket(&mut f, &session_token(ALICE, NOW - 60, SECRET));
    f.a.on_socket(conn(56146), &ws_usage(MSG, usage(1, 2), true, NOW + 1));
    f.a.finish(at(NOW + 2));
    let s = f.samples();
    assert_eq!(
        s.sum(
            "openwebui_llm_tokens_total",
            &[("model", "unknown"), ("user", ALICE)]
        ),
        3.0
    );
    assert_eq!(f.a.counters.unjoined_answers, 1);
}

#[test]
fn webui_completion_without_done_settles_incomplete_when_socket_closes() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    open_socket(&mut f, &token);
    f.a.on_exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    f.a.on_socket(conn(56146), &SocketEvent::Closed { ts: at(NOW + 5) });
    assert_eq!(
        f.samples().sum(
            "openwebui_chat_completions_total",
            &[("status_class", "incomplete"), ("client", "webui")]
        ),
        1.0
    );
}

#[test]
fn webui_completion_without_decoded_socket_counts_at_once() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.a.on_exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    assert_eq!(
        f.samples().sum(
            "openwebui_chat_completions_total",
            &[("status_class", "2xx"), ("client", "webui")]
        ),
        1.0
    );
}

#[test]
fn forged_user_join_makes_the_socket_invalid() {
    let mut f = Fixture::with_secret();
    let forged = session_token(ALICE, NOW - 60, b"nope");
    open_socket(&mut f, &forged);
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.a.on_exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    f.a.on_socket(conn(56146), &ws_usage(MSG, usage(6, 19), true, NOW + 3));
    let s = f.samples();
    assert_eq!(
        s.sum(
            "openwebui_llm_tokens_total",
            &[("user", "invalid"), ("source", "websocket")]
        ),
        25.0
    );
    assert_eq!(s.sum("openwebui_llm_tokens_total", &[("user", ALICE)]), 0.0);
}

#[test]
fn user_info_only_on_opt_in() {
    for opt_in in [false, true] {
        let config = SemanticsConfig {
            export_user_info: opt_in,
            ..Default::default()
        };
        let mut f = Fixture::new(config, true);
        f.a.set_directory(Some(directory()));
        f.a.on_exchange(&bearer(request("/api/models", 200, 0), KEY));
        let s = f.samples();
        let got = s.sum(
            "openwebui_user_info",
            &[
                ("user", ALICE),
                ("name", "Alice"),
                ("email", "alice@example.com"),
                ("role", "user"),
            ],
        );
        assert_eq!(got, if opt_in { 1.0 } else { 0.0 });
        assert_eq!(
            s.label_values("openwebui_user_info", "email").is_empty(),
            !opt_in
        );
    }
}

#[test]
fn client_kind_for_other_requests_follows_sec_fetch() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    let mut browser = cookie(request("/api/config", 200, 0), &token);
    browser.request_headers.sec_fetch_mode = Some("cors".into());
    browser.request_headers.user_agent = Some("Mozilla/5.0".into());
    f.a.on_exchange(&browser);
    f.a.on_exchange(&bearer(request("/api/config", 200, 0), &token));
    let s = f.samples();
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", ALICE), ("client", "webui")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", ALICE), ("client", "api")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_client_signals_total",
            &[("client", "webui"), ("signal", "sec_fetch")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_client_signals_total",
            &[("client", "webui"), ("signal", "browser_user_agent")]
        ),
        1.0
    );
}

#[test]
fn user_info_follows_database_reloads() {
    let config = SemanticsConfig {
        export_user_info: true,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    f.a.set_directory(Some(directory()));
    f.a.on_exchange(&bearer(request("/api/models", 200, 0), KEY));
    let mut renamed = Directory::default();
    renamed.insert_key(KEY.as_bytes(), ALICE);
    renamed.insert_user(
        ALICE,
        UserRecord {
            name: "Alice B.".into(),
            email: "alice@example.com".into(),
            role: "admin".into(),
        },
    );
    f.a.set_directory(Some(Arc::new(renamed)));
    let s = f.samples();
    assert_eq!(s.label_values("openwebui_user_info", "name"), ["Alice B."]);
    assert_eq!(s.label_values("openwebui_user_info", "role"), ["admin"]);
    f.a.set_directory(None);
    assert!(
        f.samples()
            .label_values("openwebui_user_info", "user")
            .is_empty()
    );
}

#[test]
fn debug_output_holds_no_secret_or_personal_data() {
    let config = SemanticsConfig {
        export_user_info: true,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    f.a.set_directory(Some(directory()));
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.a.on_exchange(&cookie(
        bearer(request("/api/models", 200, 0), &token),
        &token,
    ));
    f.a.on_exchange(&bearer(request("/api/models", 200, 0), KEY));
    open_socket(&mut f, &token);
    let dbg = format!("{:?}", f.a);
    for needle in [
        KEY,
        &token,
        &token[token.rfind('.').unwrap()..],
        std::str::from_utf8(SECRET).unwrap(),
        "alice@example.com",
        "Alice",
    ] {
        assert!(!dbg.contains(needle), "Debug leaks {needle:.12}…");
    }
    assert!(dbg.contains(ALICE), "ids (pseudonymous) are fine to show");
}

#[test]
fn websocket_upgrade_with_origin_is_webui() {
    let mut f = Fixture::with_secret();
    let mut up = request("/ws/socket.io/", 101, 0);
    up.upgraded = true;
    up.request_headers.upgrade = Some("websocket".into());
    up.request_headers.origin = Some("http://127.0.0.1:8080".into());
    f.a.on_exchange(&up);
    let s = f.samples();
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", "anonymous"), ("client", "webui"), ("auth", "none")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "openwebui_http_requests_total",
            &[("route", "/ws/socket.io/"), ("status", "101")]
        ),
        1.0
    );
}

#[test]
fn random_event_storm_stays_within_every_cap() {
    let config = SemanticsConfig {
        max_users: 3,
        max_models: 2,
        max_pending_answers: 8,
        max_sockets: 4,
        max_api_key_info: 2,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    f.a.set_directory(Some(directory()));
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let ids: Vec<String> = (0..10).map(|i| format!("user-{i}")).collect();
    let tokens: Vec<String> = ids
        .iter()
        .map(|id| session_token(id, NOW - 60, SECRET))
        .collect();
    for step in 0..5_000u64 {
        let dt = step / 10;
        let port = 50_000 + next(16) as u16;
        let msg = format!("m{}", next(40));
        let token = &tokens[next(10) as usize];
        match next(9) {
            0 => {
                let mut up = request("/ws/socket.io/", 101, dt);
                up.connection = conn(port);
                up.upgraded = true;
                f.a.on_exchange(&up);
            }
            1 => f.a.on_socket(
                conn(port),
                &SocketEvent::Connected {
                    sid: format!("s{}", next(8)),
                    ts: at(NOW + dt),
                },
            ),
            2 => f.a.on_socket(
                conn(port),
                &SocketEvent::UserJoin {
                    token: Secret::new(token.as_bytes()),
                    ts: at(NOW + dt),
                },
            ),
            3 => f.a.on_socket(
                conn(port),
                &ws_usage(&msg, usage(next(50), next(50)), next(2) == 0, NOW + dt),
            ),
            4 => f.a.on_socket(
                conn(port),
                &SocketEvent::FirstDelta {
                    chat_id: None,
                    message_id: msg,
                    ts: at(NOW + dt),
                },
            ),
            5 => {
                f.a.on_socket(conn(port), &SocketEvent::Closed { ts: at(NOW + dt) })
            }
            6 => f.a.on_socket(
                conn(port),
                &SocketEvent::Done {
                    chat_id: None,
                    message_id: msg,
                    ts: at(NOW + dt),
                },
            ),
            7 => {
                let model = format!("model-{}", next(5));
                let sid = format!("s{}", next(8));
                f.a.on_exchange(&bearer(
                    completion(&model, Some(&sid), Some(&msg), dt),
                    token,
                ));
            }
            _ => {
                let key = format!("sk-{:032x}", next(4));
                f.a.on_exchange(&bearer(request("/api/models", 200, dt), &key));
            }
        }
        let (users, sockets, sessions, answers) = f.a.sizes();
        assert!(
            users <= 3 && sockets <= 4 && sessions <= 4 && answers <= 8,
            "step {step}: {:?}",
            f.a.sizes()
        );
    }
    f.a.finish(at(NOW + 1_000));
    let s = f.samples();
    assert!(
        s.label_values("openwebui_chat_completions_total", "model")
            .len()
            <= 4
    ); // 2 + other + unknown
    assert!(s.label_values("openwebui_api_key_info", "key").len() <= 2);
    assert!(s.sum("webui_monitor_openwebui_limit_hits_total", &[]) > 0.0);
}

fn ws_done(message_id: &str, secs: u64) -> SocketEvent {
    SocketEvent::Done {
        chat_id: None,
        message_id: message_id.into(),
        ts: at(secs),
    }
}

/// Answers without token counts are counted where their tokens would have been: per user,
/// model and source, once each, whichever order request and answer arrive in.
#[test]
fn completions_without_token_counts_are_counted_per_user_model_and_source() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    // HTTP: a 2xx answer that arrived whole without usage counts. One with usage, a failed
    // one, a stream the client broke off, a body the monitor cut, an answer that was neither
    // JSON nor a stream, and Ollama's model-load reply do not.
    let whole = |dt| {
        let mut ex = bearer(completion("mock-gpt", None, None, dt), &token);
        ex.response_fields.sse = Some(StreamSummary {
            events: 9,
            done: true,
            ..Default::default()
        });
        ex
    };
    f.a.on_exchange(&whole(0));
    let mut counted = whole(1);
    counted.response_fields.usage = Some(usage(1, 2));
    f.a.on_exchange(&counted);
    let mut failed = whole(2);
    failed.status = Some(500);
    f.a.on_exchange(&failed);
    let mut broken_off = whole(2);
    if let Some(r) = broken_off.response.as_mut() {
        r.complete = false;
    }
    f.a.on_exchange(&broken_off);
    let mut capped = whole(2);
    capped.anomalies.push(Anomaly::DecodeCapped);
    f.a.on_exchange(&capped);
    let mut opaque = whole(2);
    opaque.response_fields.sse = None;
    f.a.on_exchange(&opaque);
    let mut load = bearer(completion("mock-gpt", None, None, 2), &token);
    load.path = "/ollama/api/chat".into();
    load.response_fields.json = true;
    load.response_fields.model_load = true;
    f.a.on_exchange(&load);

    // The web UI: its HTTP reply only accepts the task (never counted here); the answer's
    // `done` on the socket without any usage is.
    open_socket(&mut f, &token);
    let sock = conn(56146);
    let task = |model, message_id, dt| {
        let mut ex = bearer(completion(model, Some(SID), Some(message_id), dt), &token);
        ex.response_fields.has_task_ids = true;
        ex
    };
    f.a.on_exchange(&task("mock-gpt", "m1", 3));
    f.a.on_socket(sock, &ws_done("m1", NOW + 4));
    f.a.on_socket(sock, &ws_done("m1", NOW + 4));
    // Done before its request: counted once the request names the model.
    f.a.on_socket(sock, &ws_done("m2", NOW + 5));
    let without = |f: &Fixture, labels: &[(&str, &str)]| {
        f.samples()
            .sum("openwebui_chat_completions_without_usage_total", labels)
    };
    assert_eq!(without(&f, &[("source", "websocket")]), 1.0);
    f.a.on_exchange(&task("gpt-x", "m2", 6));
    // Done with usage: its tokens are known.
    f.a.on_exchange(&task("mock-gpt", "m3", 7));
    f.a.on_socket(sock, &ws_usage("m3", usage(3, 4), true, NOW + 8));
    f.a.on_socket(sock, &ws_done("m3", NOW + 8));
    // Done without usage and never joined to a request: model unknown at expiry.
    f.a.on_socket(sock, &ws_done("m4", NOW + 9));
    f.a.finish(at(NOW + 10));

    let alice = ("user", ALICE);
    for (model, source, n) in [
        ("mock-gpt", "http", 1.0),
        ("mock-gpt", "websocket", 1.0),
        ("gpt-x", "websocket", 1.0),
        ("unknown", "websocket", 1.0),
    ] {
        assert_eq!(
            without(&f, &[alice, ("model", model), ("source", source)]),
            n,
            "{model} {source}"
        );
    }
    assert_eq!(without(&f, &[]), 4.0);
    assert_eq!(
        f.samples().sum(
            "openwebui_llm_tokens_total",
            &[("model", "mock-gpt"), ("source", "websocket")]
        ),
        7.0
    );
}

/// A script embedding documents through Open WebUI spends input tokens without any chat
/// completion: they count under the embedding model, with no output series; a failed call
/// and one without counts add nothing.
#[test]
fn embedding_tokens_count_as_input_of_their_model() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    let embed = |path: &str, model: &str, status, usage| {
        let mut ex = bearer(request(path, status, 0), &token);
        ex.method = "POST".into();
        ex.request_fields.model = Some(model.into());
        ex.response_fields.json = true;
        ex.response_fields.usage = usage;
        ex
    };
    let openai_usage = Usage {
        prompt_tokens: 42,
        completion_tokens: 0,
        total_tokens: 42,
    };
    f.a.on_exchange(&embed(
        "/api/embeddings",
        "text-embedding-3-small",
        200,
        Some(openai_usage),
    ));
    f.a.on_exchange(&embed(
        "/ollama/api/embed",
        "nomic-embed-text",
        200,
        Some(usage(12, 0)),
    ));
    f.a.on_exchange(&embed(
        "/api/embeddings",
        "text-embedding-3-small",
        500,
        Some(openai_usage),
    ));
    f.a.on_exchange(&embed(
        "/ollama/api/embeddings",
        "nomic-embed-text",
        200,
        None,
    ));
    let s = f.samples();
    let input = |model| {
        s.sum(
            "openwebui_llm_tokens_total",
            &[
                ("user", ALICE),
                ("model", model),
                ("direction", "input"),
                ("source", "http"),
            ],
        )
    };
    assert_eq!(input("text-embedding-3-small"), 42.0);
    assert_eq!(input("nomic-embed-text"), 12.0);
    assert!(
        s.label_values("openwebui_llm_tokens_total", "direction")
            .iter()
            .all(|d| d == "input")
    );
    assert_eq!(s.sum("openwebui_chat_completions_total", &[]), 0.0);
    assert_eq!(
        s.sum("openwebui_chat_completions_without_usage_total", &[]),
        0.0
    );
}
