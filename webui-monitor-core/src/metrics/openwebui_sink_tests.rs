//! The [`PrometheusSink`] end to end: an [`Attributor`]'s facts applied to a registry, read
//! back as metric text. What only the sink decides — user labels folded into `other` and
//! expired, API-key and account-detail series following the database, every cap under a storm
//! — is tested here; what attribution concludes is tested on its facts (`openwebui`).
use std::sync::Arc;

use prometheus::Registry;

use super::{OpenWebuiMetrics, PrometheusSink};
use crate::{
    expected_check::Samples,
    openwebui::{
        Attributor, Directory, SemanticsConfig, UserRecord, jwt::JwtSecret, test_exchanges::*,
    },
    pricing::{ModelPrice, Prices},
    secret::Secret,
    segment::{ConnectionKey, Timestamp},
    websocket::SocketEvent,
};

struct Fixture {
    registry: Registry,
    a: Attributor,
    sink: PrometheusSink,
}

impl Fixture {
    fn new(config: SemanticsConfig, secret: bool) -> Self {
        Self::priced(config, secret, Prices::new("USD"))
    }
    fn priced(config: SemanticsConfig, secret: bool, prices: Prices) -> Self {
        let registry = Registry::new();
        let metrics = OpenWebuiMetrics::register(&registry, &prices.currency).unwrap();
        let sink = PrometheusSink::new(metrics, &config, Arc::new(prices));
        let secret = secret.then(|| JwtSecret::new(SECRET));
        let a = Attributor::new(config, secret.as_ref());
        Self { registry, a, sink }
    }
    fn with_secret() -> Self {
        Self::new(SemanticsConfig::default(), true)
    }
    fn exchange(&mut self, ex: &crate::http::Exchange) {
        self.a.on_exchange(ex, &mut self.sink);
    }
    fn socket(&mut self, connection: ConnectionKey, event: &SocketEvent) {
        self.a.on_socket(connection, event, &mut self.sink);
    }
    fn tick(&mut self, now: Timestamp) {
        self.a.on_tick(now, &mut self.sink);
    }
    fn finish(&mut self, now: Timestamp) {
        self.a.finish(now, &mut self.sink);
    }
    fn set_directory(&mut self, directory: Option<Arc<Directory>>) {
        self.a.set_directory(directory, &mut self.sink);
    }
    fn open_socket(&mut self, token: &str) {
        open_socket(&mut self.a, &mut self.sink, token);
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
    f.exchange(&cookie(
        bearer(request("/api/v1/chats/", 200, 0), &token),
        &token,
    ));
    f.exchange(&cookie(request("/_app/x.js", 200, 1), &token));
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
fn api_keys_known_unknown_and_without_database() {
    let mut f = Fixture::with_secret();
    f.exchange(&bearer(request("/api/models", 200, 0), KEY));
    f.set_directory(Some(directory()));
    f.exchange(&bearer(request("/api/models", 200, 1), KEY));
    let mut header = request("/api/models", 401, 2);
    header.request_headers.set(
        crate::http::exchange::RequestField::ApiKeyHeader,
        b"sk-00000000000000000000000000000000",
    );
    f.exchange(&header);
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
    // Fingerprints only; the owner label follows the database once loaded. The unknown key
    // Open WebUI refused is not exported.
    assert_eq!(
        s.label_values("openwebui_api_key_info", "key"),
        ["46e99b8fcc3f"]
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
    f.exchange(&bearer(request("/api/models", 200, 0), &alice));
    f.exchange(&bearer(request("/api/models", 200, 1), &bob));
    f.exchange(&bearer(request("/api/models", 200, 2), &bob));
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
    f.tick(at(NOW + 101));
    assert_eq!(f.users(), ["other"]);
    f.exchange(&bearer(request("/api/models", 200, 102), &bob));
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

/// Requests of alternating users, one of them expiring and coming back into a reused slot:
/// every request is counted under its own user.
#[test]
fn alternating_users_and_reused_slots_keep_their_own_counts() {
    const CAROL: &str = "22222222-3333-4444-8555-666666666666";
    let config = SemanticsConfig {
        user_ttl_secs: 100,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let token = |id| session_token(id, NOW - 60, SECRET);
    let (alice, bob, carol) = (token(ALICE), token(BOB), token(CAROL));
    for (dt, who) in [(0, &alice), (1, &bob), (2, &bob), (3, &alice), (4, &bob)] {
        f.exchange(&bearer(request("/api/models", 200, dt), who));
    }
    // Alice expires; Carol takes her slot, then Alice comes back.
    f.exchange(&bearer(request("/api/models", 200, 60), &bob));
    f.tick(at(NOW + 110));
    for (dt, who) in [(111, &carol), (112, &carol), (113, &alice), (114, &carol)] {
        f.exchange(&bearer(request("/api/models", 200, dt), who));
    }
    let s = f.samples();
    let requests = |user| s.sum("openwebui_user_requests_total", &[("user", user)]);
    assert_eq!(
        [requests(ALICE), requests(BOB), requests(CAROL)],
        [1.0, 4.0, 3.0]
    );
    assert_eq!(s.sum("webui_monitor_openwebui_tracked_users", &[]), 3.0);
}

#[test]
fn model_label_is_bounded_and_tokens_need_2xx() {
    let config = SemanticsConfig {
        max_models: 1,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let token = session_token(ALICE, NOW - 60, SECRET);
    let ok = streamed(bearer(completion("mock-gpt", None, None, 0), &token));
    f.exchange(&ok);
    let mut other = bearer(completion("gpt-x", None, None, 1), &token);
    other.status = Some(500);
    other.response_fields.usage = Some(usage(1, 1));
    f.exchange(&other);
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

#[test]
fn websocket_answer_joins_its_request_and_counts_once() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.open_socket(&token);
    let post = bearer(completion("mock-gpt", Some(SID), Some(MSG), 2), &token);
    f.exchange(&post);
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
    f.socket(sock, &delta);
    f.socket(sock, &ws_usage(MSG, usage(6, 19), false, NOW + 3));
    f.socket(sock, &ws_usage(MSG, usage(6, 19), true, NOW + 3));
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
fn user_info_only_on_opt_in() {
    for opt_in in [false, true] {
        let config = SemanticsConfig {
            export_user_info: opt_in,
            ..Default::default()
        };
        let mut f = Fixture::new(config, true);
        f.set_directory(Some(directory()));
        f.exchange(&bearer(request("/api/models", 200, 0), KEY));
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
fn user_info_follows_database_reloads() {
    let config = SemanticsConfig {
        export_user_info: true,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    f.set_directory(Some(directory()));
    f.exchange(&bearer(request("/api/models", 200, 0), KEY));
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
    f.set_directory(Some(Arc::new(renamed)));
    let s = f.samples();
    assert_eq!(s.label_values("openwebui_user_info", "name"), ["Alice B."]);
    assert_eq!(s.label_values("openwebui_user_info", "role"), ["admin"]);
    f.set_directory(None);
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
    f.set_directory(Some(directory()));
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.exchange(&cookie(
        bearer(request("/api/models", 200, 0), &token),
        &token,
    ));
    f.exchange(&bearer(request("/api/models", 200, 0), KEY));
    f.open_socket(&token);
    let dbg = format!("{:?} {:?}", f.a, f.sink);
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
    f.set_directory(Some(directory()));
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
                f.exchange(&up);
            }
            1 => f.socket(
                conn(port),
                &SocketEvent::Connected {
                    sid: format!("s{}", next(8)),
                    ts: at(NOW + dt),
                },
            ),
            2 => f.socket(
                conn(port),
                &SocketEvent::UserJoin {
                    token: Secret::new(token.as_bytes()),
                    ts: at(NOW + dt),
                },
            ),
            3 => f.socket(
                conn(port),
                &ws_usage(&msg, usage(next(50), next(50)), next(2) == 0, NOW + dt),
            ),
            4 => f.socket(
                conn(port),
                &SocketEvent::FirstDelta {
                    chat_id: None,
                    message_id: msg,
                    ts: at(NOW + dt),
                },
            ),
            5 => f.socket(conn(port), &SocketEvent::Closed { ts: at(NOW + dt) }),
            6 => f.socket(
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
                f.exchange(&bearer(
                    completion(&model, Some(&sid), Some(&msg), dt),
                    token,
                ));
            }
            _ => {
                let key = format!("sk-{:032x}", next(4));
                f.exchange(&bearer(request("/api/models", 200, dt), &key));
            }
        }
        let users = f.sink.tracked_users();
        let (sockets, sessions, answers) = f.a.sizes();
        assert!(
            users <= 3 && sockets <= 4 && sessions <= 4 && answers <= 8,
            "step {step}: {users} {:?}",
            f.a.sizes()
        );
    }
    f.finish(at(NOW + 1_000));
    let s = f.samples();
    assert!(
        s.label_values("openwebui_chat_completions_total", "model")
            .len()
            <= 4
    ); // 2 + other + unknown
    assert!(s.label_values("openwebui_api_key_info", "key").len() <= 2);
    assert!(s.sum("webui_monitor_openwebui_limit_hits_total", &[]) > 0.0);
}

#[test]
fn reconfigured_user_info_export_follows_the_current_snapshot() {
    let mut f = Fixture::with_secret();
    f.set_directory(Some(directory()));
    f.exchange(&bearer(request("/api/models", 200, 0), KEY));
    let emails = |f: &Fixture| f.samples().label_values("openwebui_user_info", "email");
    assert!(emails(&f).is_empty());
    let on = SemanticsConfig {
        export_user_info: true,
        ..Default::default()
    };
    let prices = || Arc::new(Prices::new("USD"));
    f.sink.reconfigure(&on, prices());
    assert_eq!(emails(&f), ["alice@example.com"]);
    f.sink.reconfigure(&SemanticsConfig::default(), prices());
    assert!(emails(&f).is_empty());
}

/// Every model-calling door counts a completion under its `api`; cached input and reasoning go
/// to their own family (parts of the totals, which stay the totals) and leave with their user.
#[test]
fn completions_by_api_and_token_details() {
    let config = SemanticsConfig {
        user_ttl_secs: 100,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let token = session_token(ALICE, NOW - 60, SECRET);
    let detailed = crate::usage::Usage {
        input: 40,
        output: 12,
        cached_input: 8,
        reasoning: 5,
        cache_write_input: 0,
    };
    for (path, dt) in [
        ("/api/v1/messages", 0),
        ("/openai/responses", 1),
        ("/api/chat/completions", 2),
        ("/ollama/api/chat", 3),
        ("/api/v1/messages/count_tokens", 4),
    ] {
        let mut ex = streamed(bearer(completion("mock-gpt", None, None, dt), &token));
        ex.path = path.into();
        ex.response_fields.usage = Some(detailed);
        f.exchange(&ex);
    }
    let s = f.samples();
    for api in ["messages", "responses", "chat", "ollama"] {
        assert_eq!(
            s.sum(
                "openwebui_chat_completions_total",
                &[("user", ALICE), ("api", api), ("model", "mock-gpt")]
            ),
            1.0,
            "{api}"
        );
    }
    // count_tokens is no model call.
    assert_eq!(s.sum("openwebui_chat_completions_total", &[]), 4.0);
    for (direction, n) in [("input", 160.0), ("output", 48.0)] {
        assert_eq!(
            s.sum(
                "openwebui_llm_tokens_total",
                &[("user", ALICE), ("direction", direction)]
            ),
            n
        );
    }
    for (kind, n) in [("cached_input", 32.0), ("reasoning", 20.0)] {
        assert_eq!(
            s.sum(
                "openwebui_llm_token_details_total",
                &[("user", ALICE), ("kind", kind), ("source", "http")]
            ),
            n
        );
    }
    f.tick(at(NOW + 200));
    assert!(
        f.samples()
            .label_values("openwebui_llm_token_details_total", "user")
            .is_empty()
    );
}

/// Spend is every part of an answer's usage times its price, per user and model, on both
/// sources; a model without a price adds its tokens to the unpriced count and no spend; a
/// user's spend leaves with their other series; new prices apply from SIGHUP on.
#[test]
fn spend_is_tokens_times_prices_and_unpriced_models_are_counted() {
    let mut prices = Prices::new("EUR");
    prices.insert(
        "mock-gpt",
        ModelPrice {
            input: 2.0,
            output: 8.0,
            cached_input: Some(0.5),
            cache_write_input: Some(2.5),
            reasoning: Some(10.0),
        },
    );
    prices.alias("mock-gpt-team", "mock-gpt");
    let config = SemanticsConfig {
        user_ttl_secs: 100,
        ..Default::default()
    };
    let mut f = Fixture::priced(config.clone(), true, prices);
    let token = session_token(ALICE, NOW - 60, SECRET);
    let usage = crate::usage::Usage {
        input: 1_000,
        output: 500,
        cached_input: 200,
        reasoning: 100,
        cache_write_input: 300,
    };
    for (model, dt) in [("mock-gpt", 0), ("mock-gpt-team", 1), ("free-model", 2)] {
        let mut ex = streamed(bearer(completion(model, None, None, dt), &token));
        ex.response_fields.usage = Some(usage);
        f.exchange(&ex);
    }
    // (500 × 2 + 200 × 0.5 + 300 × 2.5 + 400 × 8 + 100 × 10) / 1e6 = 0.00605
    let one = 0.006_05;
    let s = f.samples();
    let spend = |model| {
        s.sum(
            "openwebui_llm_spend_total",
            &[("user", ALICE), ("model", model)],
        )
    };
    assert!(
        (spend("mock-gpt") - one).abs() < 1e-12,
        "{}",
        spend("mock-gpt")
    );
    assert!((spend("mock-gpt-team") - one).abs() < 1e-12);
    assert_eq!(spend("free-model"), 0.0);
    assert_eq!(
        s.label_values("openwebui_llm_spend_total", "model"),
        ["mock-gpt", "mock-gpt-team"]
    );
    assert_eq!(
        s.sum(
            "openwebui_llm_unpriced_tokens_total",
            &[("model", "free-model")]
        ),
        1_500.0
    );
    assert_eq!(s.sum("openwebui_llm_unpriced_tokens_total", &[]), 1_500.0);
    let help = f
        .registry
        .gather()
        .into_iter()
        .find(|m| m.name() == "openwebui_llm_spend_total")
        .map(|m| m.help().to_owned())
        .unwrap();
    assert!(
        help.starts_with("What users' tokens cost, in EUR (pricing.currency)"),
        "{help}"
    );

    // New prices: the free model now costs 1 per million of everything.
    let mut cheaper = Prices::new("EUR");
    cheaper.insert(
        "free-model",
        ModelPrice {
            input: 1.0,
            output: 1.0,
            ..ModelPrice::default()
        },
    );
    f.sink.reconfigure(&config, Arc::new(cheaper));
    let mut ex = streamed(bearer(completion("free-model", None, None, 3), &token));
    ex.response_fields.usage = Some(usage);
    f.exchange(&ex);
    let s = f.samples();
    assert!(
        (s.sum("openwebui_llm_spend_total", &[("model", "free-model")]) - 0.0015).abs() < 1e-12
    );
    assert_eq!(s.sum("openwebui_llm_unpriced_tokens_total", &[]), 1_500.0);

    f.tick(at(NOW + 200));
    assert!(
        f.samples()
            .label_values("openwebui_llm_spend_total", "user")
            .is_empty()
    );
}

/// A retired model's series leave every user that had them; the user's other series stay.
#[test]
fn a_retired_models_series_leave_with_it() {
    let mut prices = Prices::new("USD");
    for model in ["old-model", "kept-model"] {
        prices.insert(
            model,
            ModelPrice {
                input: 1.0,
                output: 1.0,
                ..ModelPrice::default()
            },
        );
    }
    let config = SemanticsConfig {
        user_ttl_secs: 100,
        pending_ttl_secs: 50,
        ..Default::default()
    };
    let mut f = Fixture::priced(config, true, prices);
    let token = session_token(ALICE, NOW - 60, SECRET);
    for (model, dt) in [("old-model", 0), ("kept-model", 90), ("kept-model", 110)] {
        f.exchange(&streamed(bearer(completion(model, None, None, dt), &token)));
    }
    let s = f.samples();
    for family in [
        "openwebui_chat_completions_total",
        "openwebui_llm_tokens_total",
        "openwebui_llm_spend_total",
        "openwebui_chat_time_to_first_token_seconds_count",
    ] {
        assert_eq!(s.label_values(family, "model"), ["kept-model"], "{family}");
    }
    assert_eq!(
        s.sum("openwebui_chat_completions_total", &[("user", ALICE)]),
        2.0
    );
}

/// A key unused for the user TTL leaves `openwebui_api_key_info`; a key still in use stays.
#[test]
fn idle_api_keys_leave_the_info_family() {
    let config = SemanticsConfig {
        user_ttl_secs: 100,
        ..Default::default()
    };
    // No database: Open WebUI's 200 is what admits a key.
    let mut f = Fixture::new(config, true);
    f.exchange(&bearer(request("/api/models", 200, 0), KEY));
    let other_key = "sk-00000000000000000000000000000001";
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.exchange(&bearer(request("/api/models", 200, 50), other_key));
    let keys = |f: &Fixture| f.samples().label_values("openwebui_api_key_info", "key");
    assert_eq!(keys(&f).len(), 2);
    // 120 s on: the first key has been idle for 120 s, the second for 70 s.
    f.exchange(&bearer(request("/api/config", 200, 120), &token));
    f.tick(at(NOW + 120));
    assert_eq!(keys(&f).len(), 1);
    assert!(!keys(&f).contains(&"46e99b8fcc3f".to_string()));
}
