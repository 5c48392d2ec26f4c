//! `webui-monitor replay` over the SDK captures (`fixtures/openwebui-sdk/`: the Anthropic and
//! OpenAI SDKs on `/api/v1/messages`, `/openai/responses`, both embeddings routes and the Ollama
//! router's `/v1/messages`, `/v1/responses`, `/v1/embeddings` of a real Open WebUI 0.12.4), with the captures' secret and database, checked against
//! `<capture>.expected.json` exactly.
#[path = "../../webui-monitor-core/tests/support/expected_check.rs"]
mod expected_check;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use expected_check::Samples;
use serde_json::Value;
use webui_monitor::{
    config::ConfigArgs,
    replay::{self, ReplayArgs},
};

const CAPTURES: [&str; 6] = [
    "sdk_anthropic",
    "sdk_anthropic_passthrough",
    "sdk_responses",
    "sdk_embeddings",
    "sdk_ollama",
    "sdk_aliases",
];

/// `WEBUI_SECRET_KEY` of the captures (fixtures/openwebui-sdk/README.md).
const SECRET: &str = "owui-test-secret-key-0123456789abcdef";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui-sdk")
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(format!("{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The exposition `replay --metrics-out` writes for one capture, as text.
fn replay_text(name: &str) -> String {
    replay_with(name, "")
}

/// [`replay_text`] with `config` as the configuration file.
fn replay_with(name: &str, config: &str) -> String {
    // Tests run in parallel threads of one process: one scratch directory per call.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("wm-sdk-{name}-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let secret = scratch.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let out = scratch.join("metrics.prom");
    let config_file = scratch.join("config.toml");
    std::fs::write(&config_file, config).unwrap();
    replay::run(ReplayArgs {
        file: dir().join(format!("{name}.pcap")),
        json: false,
        metrics_out: Some(out.clone()),
        audit_out: None,
        config: ConfigArgs {
            config: Some(config_file),
            ports: vec![18080],
            webui_secret_file: Some(secret),
            openwebui_db: Some(dir().join("webui.db")),
            ..ConfigArgs::default()
        },
    })
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_dir_all(&scratch).ok();
    text
}

fn per_user(want: &Value) -> &serde_json::Map<String, Value> {
    want["totals"]["per_user"].as_object().unwrap()
}

fn n(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn requests_auth_and_routes_per_user() {
    for name in CAPTURES {
        let want = expected(name);
        let got = Samples::parse(&replay_text(name));
        assert_eq!(
            got.sum("webui_monitor_pcap_packets_total", &[]),
            n(&want["meta"]["packets"]),
            "{name}"
        );
        let exchanges = n(&want["totals"]["exchanges"]);
        assert_eq!(
            got.sum("openwebui_http_requests_total", &[]),
            exchanges,
            "{name}"
        );
        // Every request's credential verifies: JWTs with the secret, keys through webui.db.
        assert_eq!(
            got.sum("openwebui_auth_total", &[("result", "verified")]),
            exchanges,
            "{name}"
        );
        let mut users: Vec<&str> = per_user(&want).keys().map(String::as_str).collect();
        users.sort();
        assert_eq!(
            got.label_values("openwebui_user_requests_total", "user"),
            users,
            "{name}"
        );
        for (user, t) in per_user(&want) {
            let u = ("user", user.as_str());
            assert_eq!(
                got.sum("openwebui_user_requests_total", &[u]),
                n(&t["requests"]),
                "{name} {user}"
            );
            for (auth, count) in t["by_auth"].as_object().unwrap() {
                assert_eq!(
                    got.sum(
                        "openwebui_user_requests_total",
                        &[u, ("auth", auth), ("client", "api")]
                    ),
                    n(count),
                    "{name} {user} {auth}"
                );
            }
        }
        // Routes: the labels of Open WebUI's table, summed over users.
        let mut routes = std::collections::BTreeMap::<String, f64>::new();
        for t in per_user(&want).values() {
            for (key, count) in t["by_route"].as_object().unwrap() {
                *routes.entry(key.clone()).or_default() += n(count);
            }
        }
        for (key, count) in routes {
            let [method, route, status] = key.split(' ').collect::<Vec<_>>()[..] else {
                panic!("{key}")
            };
            assert_eq!(
                got.sum(
                    "openwebui_http_requests_total",
                    &[("method", method), ("route", route), ("status", status)]
                ),
                count,
                "{name} {key}"
            );
        }
    }
}

/// Bob's `sk-` key travels in `x-api-key` on the Messages calls and as a Bearer value on the
/// others; both resolve to him through the database.
#[test]
fn api_keys_in_x_api_key_resolve_to_their_owner() {
    const BOB: &str = "42ed8f22-79bd-4502-b5f3-150e6f01d298";
    for name in [
        "sdk_anthropic",
        "sdk_anthropic_passthrough",
        "sdk_ollama",
        "sdk_aliases",
    ] {
        let want = expected(name);
        let via_header = want["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["credential_source"] == "x-api-key" && e["user"] == BOB)
            .count();
        let calls = if name == "sdk_ollama" { 2 } else { 3 };
        assert_eq!(via_header, calls, "{name}");
        let got = Samples::parse(&replay_text(name));
        assert_eq!(
            got.sum(
                "openwebui_user_requests_total",
                &[("user", BOB), ("auth", "api_key")]
            ),
            n(&expected(name)["totals"]["per_user"][BOB]["requests"]),
            "{name}"
        );
        assert_eq!(
            got.label_values("openwebui_api_key_info", "key"),
            ["9b1e31c08377"],
            "{name}"
        );
    }
}

#[test]
fn embeddings_count_input_tokens_on_both_routes() {
    let want = expected("sdk_embeddings");
    let got = Samples::parse(&replay_text("sdk_embeddings"));
    for (user, t) in per_user(&want) {
        for (direction, field) in [("input", "input"), ("output", "output")] {
            assert_eq!(
                got.sum(
                    "openwebui_llm_tokens_total",
                    &[
                        ("user", user),
                        ("model", "mock-embed"),
                        ("direction", direction)
                    ]
                ),
                n(&t["tokens"][field]),
                "{user} {direction}"
            );
        }
    }
}

#[test]
fn metrics_carry_no_secret_or_text() {
    for name in CAPTURES {
        let text = replay_text(name);
        for forbidden in [
            "sk-5e1dd3e9297040f0af5c629158c9a5ea",
            "5e1dd3e9297040f0af5c629158c9a5ea",
            SECRET,
            "eyJ",
            "Say hello",
            "/api/message.",
            "Stream a hello",
            "first text",
            "Mock answer",
        ] {
            assert!(!text.contains(forbidden), "{name}: {forbidden}");
        }
    }
}

/// Tokens of one kind for a user, as the usage normaliser exports them: input and output (the
/// totals) as `openwebui_llm_tokens_total{direction}`, cached input and reasoning (parts of
/// those totals, never added to them) as `openwebui_llm_token_details_total{kind}`.
/// The one place that knows that representation.
fn tokens(got: &Samples, user: &str, kind: &str) -> f64 {
    match kind {
        "input" | "output" => got.sum(
            "openwebui_llm_tokens_total",
            &[("user", user), ("direction", kind)],
        ),
        _ => got.sum(
            "openwebui_llm_token_details_total",
            &[("user", user), ("kind", kind)],
        ),
    }
}

#[test]
fn completions_by_api_kind_per_user() {
    for name in CAPTURES {
        let want = expected(name);
        let got = Samples::parse(&replay_text(name));
        for (user, t) in per_user(&want) {
            let mut total = 0.0;
            for c in t["completions"].as_array().unwrap() {
                let stream = c["stream"].to_string();
                assert_eq!(
                    got.sum(
                        "openwebui_chat_completions_total",
                        &[
                            ("user", user),
                            ("model", c["model"].as_str().unwrap()),
                            ("api", c["api_kind"].as_str().unwrap()),
                            ("auth", c["auth"].as_str().unwrap()),
                            ("stream", &stream),
                            ("status_class", "2xx"),
                        ]
                    ),
                    n(&c["count"]),
                    "{name} {user} {c}"
                );
                total += n(&c["count"]);
            }
            assert_eq!(
                got.sum("openwebui_chat_completions_total", &[("user", user)]),
                total,
                "{name} {user}"
            );
        }
    }
}

#[test]
fn tokens_by_kind_per_user() {
    for name in CAPTURES {
        let want = expected(name);
        let got = Samples::parse(&replay_text(name));
        for (user, t) in per_user(&want) {
            for kind in ["input", "output", "cached_input", "reasoning"] {
                assert_eq!(
                    tokens(&got, user, kind),
                    n(&t["tokens"][kind]),
                    "{name} {user} {kind}"
                );
            }
        }
    }
}

/// Prices per million tokens for the spend tests: (model, input, output, cached input, cache
/// write, reasoning). The Ollama router's model takes mock-gpt's through an alias.
const PRICES: [(&str, f64, f64, f64, f64, f64); 2] = [
    ("mock-gpt", 3.0, 15.0, 0.3, 3.75, 20.0),
    ("mock-embed", 0.02, 0.0, 0.02, 0.02, 0.0),
];

fn pricing_config(priced: &[(&str, f64, f64, f64, f64, f64)]) -> String {
    let mut text = String::from("[pricing]\ncurrency = \"EUR\"\n");
    for (model, input, output, cached, write, reasoning) in priced {
        text += &format!(
            "[pricing.models.\"{model}\"]\ninput = {input}\noutput = {output}\n\
             cached_input = {cached}\ncache_write_input = {write}\nreasoning = {reasoning}\n"
        );
    }
    text + "[pricing.aliases]\n\"mock-llama:latest\" = \"mock-gpt\"\n"
}

/// What one exchange's served tokens cost at `price`: each part at its own price, once.
fn cost(tokens: &Value, price: &(&str, f64, f64, f64, f64, f64)) -> f64 {
    let (_, input, output, cached, write, reasoning) = *price;
    let t = |k: &str| n(&tokens[k]);
    let plain_in = t("input") - t("cached_input") - t("cache_creation_input");
    let plain_out = t("output") - t("reasoning");
    (plain_in * input
        + t("cached_input") * cached
        + t("cache_creation_input") * write
        + plain_out * output
        + t("reasoning") * reasoning)
        / 1e6
}

/// Spend per user and model equals the tokens the mock backend served times the configured
/// prices, on every door (Messages with cache reads and writes, Responses with reasoning,
/// embeddings, the Ollama router through an alias).
#[test]
fn spend_per_user_is_tokens_times_prices() {
    let config = pricing_config(&PRICES);
    for name in CAPTURES {
        let want = expected(name);
        let got = Samples::parse(&replay_with(name, &config));
        let mut expected_spend = std::collections::BTreeMap::<(String, String), f64>::new();
        for e in want["exchanges"].as_array().unwrap() {
            if !matches!(e["status"].as_u64(), Some(200..=299)) || e["api_kind"] == "count_tokens" {
                continue;
            }
            let model = e["model"].as_str().unwrap();
            let priced_as = if model == "mock-llama:latest" {
                "mock-gpt"
            } else {
                model
            };
            let price = PRICES.iter().find(|p| p.0 == priced_as).unwrap();
            *expected_spend
                .entry((e["user"].as_str().unwrap().into(), model.into()))
                .or_default() += cost(&e["tokens"], price);
        }
        assert!(!expected_spend.is_empty(), "{name}");
        for ((user, model), spend) in &expected_spend {
            let got = got.sum(
                "openwebui_llm_spend_total",
                &[("user", user), ("model", model)],
            );
            assert!(
                (got - spend).abs() < 1e-12,
                "{name} {user} {model}: {got} vs {spend}"
            );
        }
        let total: f64 = expected_spend.values().sum();
        let got_total = got.sum("openwebui_llm_spend_total", &[]);
        assert!(
            (got_total - total).abs() < 1e-12,
            "{name}: {got_total} vs {total}"
        );
        assert_eq!(
            got.sum("openwebui_llm_unpriced_tokens_total", &[]),
            0.0,
            "{name}"
        );
    }
    // The embedding model unpriced: no spend for it, its tokens counted as unpriced.
    let want = expected("sdk_embeddings");
    let got = Samples::parse(&replay_with(
        "sdk_embeddings",
        &pricing_config(&PRICES[..1]),
    ));
    assert_eq!(got.sum("openwebui_llm_spend_total", &[]), 0.0);
    let served: f64 = per_user(&want)
        .values()
        .map(|t| n(&t["tokens"]["input"]))
        .sum();
    assert_eq!(
        got.sum(
            "openwebui_llm_unpriced_tokens_total",
            &[("model", "mock-embed")]
        ),
        served
    );
}

/// The OpenTelemetry GenAI histograms carry the same tokens, per model call and token type,
/// without a user label; every call answered over HTTP has a duration.
#[test]
fn genai_histograms_match_the_served_tokens() {
    for name in CAPTURES {
        let want = expected(name);
        let got = Samples::parse(&replay_text(name));
        let calls: Vec<&Value> = want["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["api_kind"] != "count_tokens")
            .collect();
        for kind in ["input", "output"] {
            let served: f64 = per_user(&want)
                .values()
                .map(|t| n(&t["tokens"][kind]))
                .sum();
            assert_eq!(
                got.sum(
                    "gen_ai_client_token_usage_sum",
                    &[("gen_ai_token_type", kind)]
                ),
                served,
                "{name} {kind}"
            );
        }
        let embeddings = calls
            .iter()
            .filter(|e| e["api_kind"] == "embeddings")
            .count() as f64;
        assert_eq!(
            got.sum(
                "gen_ai_client_token_usage_count",
                &[("gen_ai_token_type", "input")]
            ),
            calls.len() as f64,
            "{name}"
        );
        assert_eq!(
            got.sum(
                "gen_ai_client_token_usage_count",
                &[("gen_ai_operation_name", "embeddings")]
            ),
            embeddings,
            "{name}"
        );
        assert_eq!(
            got.sum(
                "gen_ai_client_operation_duration_seconds_count",
                &[("error_type", "")]
            ),
            calls.len() as f64,
            "{name}"
        );
        assert!(
            got.label_values("gen_ai_client_token_usage_count", "user")
                .is_empty()
        );
    }
}

/// The audit trail `replay --audit-out` writes for one capture, as parsed JSON lines.
fn replay_audit(name: &str) -> (Vec<Value>, String) {
    let scratch = std::env::temp_dir().join(format!("wm-sdk-audit-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let secret = scratch.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let out = scratch.join("audit.jsonl");
    replay::run(ReplayArgs {
        file: dir().join(format!("{name}.pcap")),
        json: false,
        metrics_out: None,
        audit_out: Some(out.clone()),
        config: ConfigArgs {
            config: Some("/dev/null".into()),
            ports: vec![18080],
            webui_secret_file: Some(secret),
            openwebui_db: Some(dir().join("webui.db")),
            ..ConfigArgs::default()
        },
    })
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_dir_all(&scratch).ok();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events, text)
}

/// Alice's user id (fixtures/openwebui-sdk/README.md).
const ALICE: &str = "deff4022-ea99-4571-be21-9d8b3e2279ee";

/// One audit line as the captures produce it: Alice's session JWT from the SDK, straight to
/// Open WebUI (no proxy), so the client address is the peer's.
fn alice_event(time: &str, route: &str, api: &str, tokens: [u64; 4], ua: &str) -> Value {
    serde_json::json!({
        "time": time,
        "user": ALICE,
        "auth": "jwt",
        "auth_result": "verified",
        "route": route,
        "api": api,
        "model": "mock-gpt",
        "status": 200,
        "tokens": {
            "input": tokens[0],
            "output": tokens[1],
            "cached_input": tokens[2],
            "reasoning": tokens[3],
        },
        "user_agent": ua,
        "client_address": "127.0.0.1",
        "client_address_source": "peer",
        "client_address_from_header": false,
        "peer": "127.0.0.1",
    })
}

/// Alice's session-JWT calls are the audit trail, exactly: her two Messages calls (JSON and
/// streamed; count_tokens calls no model) and her two Responses calls. Bob's API-key calls are
/// not in it.
#[test]
fn audit_trail_holds_alices_session_jwt_calls() {
    let (events, _) = replay_audit("sdk_anthropic");
    let ua = "Anthropic/Python 0.86.0";
    assert_eq!(
        events,
        [
            alice_event(
                "2026-12-07T11:19:15.78485Z",
                "/api/v1/messages",
                "messages",
                [40, 12, 8, 0],
                ua
            ),
            alice_event(
                "2026-12-07T11:19:15.918237Z",
                "/api/v1/messages",
                "messages",
                [40, 12, 8, 0],
                ua
            ),
        ]
    );
    let (events, _) = replay_audit("sdk_responses");
    let ua = "OpenAI/Python 2.29.0";
    assert_eq!(
        events,
        [
            alice_event(
                "2026-12-07T11:19:24.737817Z",
                "/openai/responses",
                "responses",
                [30, 20, 10, 7],
                ua
            ),
            alice_event(
                "2026-12-07T11:19:25.000049Z",
                "/openai/responses",
                "responses",
                [30, 20, 10, 7],
                ua
            ),
        ]
    );
}

/// Every capture: one event per model call Alice made with her JWT (count_tokens excluded),
/// all hers, and no credential or prompt of the capture in the file.
#[test]
fn audit_trail_counts_and_holds_no_secret() {
    let want: [(&str, &[&str]); 6] = [
        ("sdk_anthropic", &["messages", "messages"]),
        ("sdk_anthropic_passthrough", &["messages", "messages"]),
        ("sdk_responses", &["responses", "responses"]),
        ("sdk_embeddings", &["embeddings"]),
        (
            "sdk_ollama",
            &[
                "messages",
                "messages",
                "responses",
                "responses",
                "embeddings",
            ],
        ),
        ("sdk_aliases", &["messages", "messages"]),
    ];
    for (name, apis) in want {
        let (events, text) = replay_audit(name);
        let got: Vec<&str> = events.iter().map(|e| e["api"].as_str().unwrap()).collect();
        assert_eq!(got, apis, "{name}");
        assert!(events.iter().all(|e| e["user"] == ALICE), "{name}");
        let pcap = std::fs::read(dir().join(format!("{name}.pcap"))).unwrap();
        let pcap = String::from_utf8_lossy(&pcap);
        // The session JWT's signature, Bob's key, the cookie name and the prompts.
        let jwt_start = pcap
            .find("Bearer eyJ")
            .expect("the capture holds Alice's JWT")
            + 7;
        let jwt: String = pcap[jwt_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        let signature = jwt.rsplit('.').next().unwrap();
        for secret in [
            signature,
            "eyJ",
            "sk-",
            "Bearer",
            "token=",
            "Say hello",
            "content",
        ] {
            assert!(
                !text.contains(secret),
                "{name}: {secret:?} in the audit trail"
            );
        }
    }
}
