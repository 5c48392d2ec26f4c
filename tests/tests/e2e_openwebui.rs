//! End to end, shaped like production (see `webui_monitor_tests::stack`): curl and a web-UI client
//! → nginx terminating TLS → an Open WebUI-shaped server, with webui-monitor on the nginx → server
//! hop. The test sends known traffic — scripts with a JWT (OpenAI-style, once from a backend that
//! reports no token counts, and Ollama's native API, streamed as NDJSON), with an API key (a
//! completion and two embedded documents), a cookie-only request, forged, expired and unknown
//! credentials, and a web-UI chat whose answer travels over a permessage-deflate socket.io
//! WebSocket, plus Anthropic Messages and a streamed Responses call with the session JWT from a
//! client address of its own — then asserts the exact per-user, per-auth and per-client numbers
//! on /metrics and the audit trail of scripted session-JWT calls (client address as nginx saw
//! it),
//! evaluates every dashboard and alert expression through a real Prometheus, and greps everything
//! the monitor wrote for the secrets it saw.
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;
use webui_monitor_tests::net::wait_for;
use webui_monitor_tests::stack::{
    ADMIN, ADMIN_PASSWORD, ALICE, ALICE_API_KEY, ALICE_PASSWORD, APP_ADDR, CLIENT_ADDR,
    METRICS_PORT, PROXY_ADDR, SECRET, Stack, repo_root, sample,
};

/// Prompts are unique marker strings: none may appear in anything the monitor writes.
const PROMPT_JWT: &str = "zebra-jwt prompt about quarterly numbers";
const PROMPT_SSE: &str = "okapi-sse prompt streamed please";
const PROMPT_KEY: &str = "narwhal-apikey prompt";
const PROMPT_OLLAMA_CHAT: &str = "ibex-ollama chat streamed by default";
const PROMPT_OLLAMA_GENERATE: &str = "tapir-ollama generate in one piece";
const PROMPT_NO_USAGE: &str = "gecko-nousage streamed without token counts";
const PROMPT_MESSAGES: &str = "marmot-messages prompt through the Anthropic door";
const PROMPT_RESPONSES: &str = "pangolin-responses streamed prompt";
/// The models of the Messages and Responses calls, and the fixed parts of their usage in the
/// shaped server (`MESSAGES_CACHE_READ`, `RESPONSES_CACHED`, `RESPONSES_REASONING`).
const MESSAGES_MODEL: &str = "mock-claude";
const RESPONSES_MODEL: &str = "mock-resp";
const MESSAGES_CACHE_READ: f64 = 4.0;
const RESPONSES_CACHED: f64 = 2.0;
const RESPONSES_REASONING: f64 = 5.0;
/// Two documents embedded in one call.
const EMBEDDED: [&str; 2] = ["lemur-embed first document", "lemur-embed the second one"];
/// The model the Ollama-native calls name.
const OLLAMA_MODEL: &str = "llama3.2:1b";
const PROMPT_WEB_1: &str = "quokka-webui first browser message";
const PROMPT_WEB_2: &str = "axolotl-webui second message what is 2+2";

fn words(text: &str) -> f64 {
    text.split_whitespace().count() as f64
}

/// Completion tokens of the shaped server's answer: `Shaped reply from MODEL. You said: "…".
/// Deterministic.` is the prompt's words plus 7.
fn reply_words(prompt: &str) -> f64 {
    words(prompt) + 7.0
}

/// A JWT like Open WebUI's, signed with `key`.
fn jwt(key: &str, user: &str, iat: u64, exp: u64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = format!(
        r#"{{"id":"{user}","typ":"session","auth_method":"password","exp":{exp},"jti":"e2e","iat":{iat}}}"#
    );
    let signing_input = format!("{header}.{}", b64.encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        b64.encode(mac.finalize().into_bytes())
    )
}

fn completion(stack: &Stack, auth: &str, prompt: &str, stream: bool) -> anyhow::Result<u16> {
    completion_of(stack, auth, "mock-gpt", prompt, stream)
}

fn completion_of(
    stack: &Stack,
    auth: &str,
    model: &str,
    prompt: &str,
    stream: bool,
) -> anyhow::Result<u16> {
    let body = format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    Ok(stack
        .curl("POST", "/api/chat/completions", &[auth], Some(&body))?
        .0)
}

/// A call to Ollama's native API through Open WebUI's `/ollama` proxy; the answer's text.
fn ollama(stack: &Stack, auth: &str, path: &str, body: &str) -> anyhow::Result<String> {
    let (status, text) = stack.curl("POST", path, &[auth], Some(body))?;
    anyhow::ensure!(status == 200, "{path} answered {status}");
    Ok(text)
}

#[test]
fn monitor_attributes_production_shaped_traffic() -> anyhow::Result<()> {
    let audit_dir = tempfile::Builder::new().prefix("wm-e2e-audit-").tempdir()?;
    let audit_file = audit_dir.path().join("audit.jsonl");
    let audit_path = format!("audit.path={}", audit_file.display());
    let trusted = format!("audit.trusted_proxies={PROXY_ADDR}/32");
    // mock-gpt is priced (per million tokens): Alice's spend on it is checked below.
    let stack = Stack::start(
        "ow",
        &[
            "--set",
            "pricing.models={\"mock-gpt\"={input=2.0,output=8.0}}",
            "--set",
            "audit.output=file",
            "--set",
            &audit_path,
            "--set",
            &trusted,
        ],
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();

    // Anonymous: the config before login, two sign-ins.
    assert_eq!(stack.curl("GET", "/api/config", &[], None)?.0, 200);
    let alice = stack.signin("alice@example.com", ALICE_PASSWORD)?;
    let admin = stack.signin("admin@example.com", ADMIN_PASSWORD)?;

    // Alice's scripts: her session JWT (JSON and SSE) and her API key.
    let bearer_alice = format!("Authorization: Bearer {alice}");
    assert_eq!(completion(&stack, &bearer_alice, PROMPT_JWT, false)?, 200);
    assert_eq!(completion(&stack, &bearer_alice, PROMPT_SSE, true)?, 200);
    // Her JWT on Ollama's native API: `/api/chat` without `stream` (Ollama streams NDJSON by
    // default), `/api/generate` in one JSON answer.
    let streamed = ollama(
        &stack,
        &bearer_alice,
        "/ollama/api/chat",
        &format!(
            r#"{{"model":"{OLLAMA_MODEL}","messages":[{{"role":"user","content":"{PROMPT_OLLAMA_CHAT}"}}]}}"#
        ),
    )?;
    assert_eq!(
        streamed.lines().count() as f64,
        reply_words(PROMPT_OLLAMA_CHAT) + 1.0
    );
    let whole = ollama(
        &stack,
        &bearer_alice,
        "/ollama/api/generate",
        &format!(
            r#"{{"model":"{OLLAMA_MODEL}","prompt":"{PROMPT_OLLAMA_GENERATE}","stream":false}}"#
        ),
    )?;
    assert!(whole.contains(r#""done":true"#), "{whole}");
    // A stream whose backend reports no usage: counted as a completion without token counts.
    assert_eq!(
        completion_of(&stack, &bearer_alice, "mock-nousage", PROMPT_NO_USAGE, true)?,
        200
    );
    // Her JWT through Anthropic Messages (JSON) and the Responses API (streamed).
    let (status, _) = stack.curl(
        "POST",
        "/api/v1/messages",
        &[&bearer_alice, "anthropic-version: 2023-06-01"],
        Some(&format!(
            r#"{{"model":"{MESSAGES_MODEL}","max_tokens":64,"messages":[{{"role":"user","content":"{PROMPT_MESSAGES}"}}]}}"#
        )),
    )?;
    assert_eq!(status, 200);
    let (status, events) = stack.curl(
        "POST",
        "/openai/responses",
        &[&bearer_alice],
        Some(&format!(
            r#"{{"model":"{RESPONSES_MODEL}","stream":true,"input":"{PROMPT_RESPONSES}"}}"#
        )),
    )?;
    assert_eq!(status, 200);
    assert!(events.contains("event: response.completed"), "{events}");
    let bearer_key = format!("Authorization: Bearer {ALICE_API_KEY}");
    assert_eq!(completion(&stack, &bearer_key, PROMPT_KEY, false)?, 200);
    // Her API key embedding documents: input tokens, no completion.
    let embed = format!(
        r#"{{"model":"mock-embed","input":["{}","{}"]}}"#,
        EMBEDDED[0], EMBEDDED[1]
    );
    assert_eq!(
        stack
            .curl("POST", "/api/embeddings", &[&bearer_key], Some(&embed))?
            .0,
        200
    );

    // The admin with the cookie alone.
    let cookie_admin = format!("Cookie: token={admin}");
    assert_eq!(
        stack.curl("GET", "/api/models", &[&cookie_admin], None)?.0,
        200
    );

    // Credentials that must never be attributed to the id they claim.
    let forged = jwt("not-the-secret", ADMIN, now, now + 3600);
    let expired = jwt(SECRET, ADMIN, now - 7200, now - 3600);
    for token in [&forged, &expired] {
        let header = format!("Authorization: Bearer {token}");
        assert_eq!(completion(&stack, &header, PROMPT_JWT, false)?, 401);
    }
    let unknown_key = "Authorization: Bearer sk-00000000000000000000000000000000";
    assert_eq!(completion(&stack, unknown_key, PROMPT_KEY, false)?, 401);

    // Alice in the web UI: socket.io with permessage-deflate, two messages.
    let answers = stack.webui_chat(&alice, &[PROMPT_WEB_1, PROMPT_WEB_2])?;
    let answers: serde_json::Value = serde_json::from_str(&answers)?;
    assert_eq!(answers["answers"].as_array().map(Vec::len), Some(2));

    // Every completion counted (the web UI's once their answers are done on the socket).
    let completions = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("openwebui_chat_completions_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
    };
    wait_for(
        "the monitor to count 13 completions",
        Duration::from_secs(30),
        || stack.metrics().is_ok_and(|m| completions(&m) == 13.0),
    )
    .map_err(|e| e.context(format!("metrics:\n{}", stack.metrics().unwrap_or_default())))?;
    let m = stack.metrics()?;
    let get = |name: &str, labels: &[(&str, &str)]| sample(&m, name, labels);

    // Who, how, which client.
    let requests = "openwebui_user_requests_total";
    assert_eq!(
        get(
            requests,
            &[("user", ALICE), ("auth", "jwt"), ("client", "api")]
        ),
        Some(7.0)
    );
    assert_eq!(
        get(
            requests,
            &[("user", ALICE), ("auth", "api_key"), ("client", "api")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            requests,
            &[("user", ALICE), ("auth", "jwt"), ("client", "webui")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            requests,
            &[("user", ADMIN), ("auth", "cookie"), ("client", "api")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            requests,
            &[("user", "invalid"), ("auth", "jwt"), ("client", "api")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            requests,
            &[
                ("user", "unknown_api_key"),
                ("auth", "api_key"),
                ("client", "api")
            ]
        ),
        Some(1.0)
    );
    // GET /api/config and two sign-ins; the WebSocket upgrade carries no credential and, with
    // its Origin header, counts as the web UI.
    assert_eq!(
        get(
            requests,
            &[("user", "anonymous"), ("auth", "none"), ("client", "api")]
        ),
        Some(3.0)
    );
    assert_eq!(
        get(
            requests,
            &[("user", "anonymous"), ("auth", "none"), ("client", "webui")]
        ),
        Some(1.0)
    );

    let auth = "openwebui_auth_total";
    assert_eq!(get(auth, &[("result", "verified")]), Some(12.0));
    assert_eq!(get(auth, &[("result", "bad_signature")]), Some(1.0));
    assert_eq!(get(auth, &[("result", "expired")]), Some(1.0));
    assert_eq!(get(auth, &[("result", "unknown_api_key")]), Some(1.0));
    assert_eq!(get(auth, &[("result", "anonymous")]), Some(4.0));

    // Completions per user, model, auth, client, stream and outcome.
    let chat = "openwebui_chat_completions_total";
    let labels = |user, auth, client, stream, class| {
        [
            ("user", user),
            ("model", "mock-gpt"),
            ("api", "chat"),
            ("auth", auth),
            ("client", client),
            ("stream", stream),
            ("status_class", class),
        ]
    };
    assert_eq!(
        get(chat, &labels(ALICE, "jwt", "api", "false", "2xx")),
        Some(1.0)
    );
    assert_eq!(
        get(chat, &labels(ALICE, "jwt", "api", "true", "2xx")),
        Some(1.0)
    );
    assert_eq!(
        get(chat, &labels(ALICE, "api_key", "api", "false", "2xx")),
        Some(1.0)
    );
    assert_eq!(
        get(chat, &labels(ALICE, "jwt", "webui", "true", "2xx")),
        Some(2.0)
    );
    assert_eq!(
        get(chat, &labels("invalid", "jwt", "api", "false", "4xx")),
        Some(2.0)
    );
    assert_eq!(
        get(
            chat,
            &labels("unknown_api_key", "api_key", "api", "false", "4xx")
        ),
        Some(1.0)
    );
    for stream in ["true", "false"] {
        let labels = [
            ("user", ALICE),
            ("model", OLLAMA_MODEL),
            ("auth", "jwt"),
            ("client", "api"),
            ("api", "ollama"),
            ("stream", stream),
            ("status_class", "2xx"),
        ];
        assert_eq!(get(chat, &labels), Some(1.0), "Ollama, stream={stream}");
    }

    for (model, api, stream) in [
        (MESSAGES_MODEL, "messages", "false"),
        (RESPONSES_MODEL, "responses", "true"),
    ] {
        let labels = [
            ("user", ALICE),
            ("model", model),
            ("api", api),
            ("auth", "jwt"),
            ("client", "api"),
            ("stream", stream),
            ("status_class", "2xx"),
        ];
        assert_eq!(get(chat, &labels), Some(1.0), "{api}");
    }

    // Tokens: scripts over HTTP, the web UI over the WebSocket.
    let tokens = "openwebui_llm_tokens_total";
    let details = "openwebui_llm_token_details_total";
    let of = |model, direction| {
        [
            ("user", ALICE),
            ("model", model),
            ("direction", direction),
            ("source", "http"),
        ]
    };
    let part = |model, kind| {
        [
            ("user", ALICE),
            ("model", model),
            ("kind", kind),
            ("source", "http"),
        ]
    };
    // Anthropic's input_tokens leave the cache read out; the total puts it back.
    assert_eq!(
        get(tokens, &of(MESSAGES_MODEL, "input")),
        Some(words(PROMPT_MESSAGES) + MESSAGES_CACHE_READ)
    );
    assert_eq!(
        get(tokens, &of(MESSAGES_MODEL, "output")),
        Some(reply_words(PROMPT_MESSAGES))
    );
    assert_eq!(
        get(details, &part(MESSAGES_MODEL, "cached_input")),
        Some(MESSAGES_CACHE_READ)
    );
    assert_eq!(get(details, &part(MESSAGES_MODEL, "reasoning")), None);
    assert_eq!(
        get(tokens, &of(RESPONSES_MODEL, "input")),
        Some(words(PROMPT_RESPONSES))
    );
    assert_eq!(
        get(tokens, &of(RESPONSES_MODEL, "output")),
        Some(reply_words(PROMPT_RESPONSES) + RESPONSES_REASONING)
    );
    assert_eq!(
        get(details, &part(RESPONSES_MODEL, "cached_input")),
        Some(RESPONSES_CACHED)
    );
    assert_eq!(
        get(details, &part(RESPONSES_MODEL, "reasoning")),
        Some(RESPONSES_REASONING)
    );
    let token_labels = |direction, source| {
        [
            ("user", ALICE),
            ("model", "mock-gpt"),
            ("direction", direction),
            ("source", source),
        ]
    };
    let scripted = [PROMPT_JWT, PROMPT_SSE, PROMPT_KEY];
    let web = [PROMPT_WEB_1, PROMPT_WEB_2];
    assert_eq!(
        get(tokens, &token_labels("input", "http")),
        Some(scripted.iter().map(|p| words(p)).sum())
    );
    assert_eq!(
        get(tokens, &token_labels("output", "http")),
        Some(scripted.iter().map(|p| reply_words(p)).sum())
    );
    // Spend: her mock-gpt tokens, HTTP and web UI, times its prices; the Ollama model and the
    // embedding model have none, so their tokens are counted as unpriced.
    let mock_gpt = |direction| {
        get(tokens, &token_labels(direction, "http")).unwrap_or(0.0)
            + get(tokens, &token_labels(direction, "websocket")).unwrap_or(0.0)
    };
    let want = (mock_gpt("input") * 2.0 + mock_gpt("output") * 8.0) / 1e6;
    let spend = get(
        "openwebui_llm_spend_total",
        &[("user", ALICE), ("model", "mock-gpt")],
    )
    .unwrap_or(-1.0);
    assert!((spend - want).abs() < 1e-12, "spend {spend}, want {want}");
    assert!(
        get(
            "openwebui_llm_unpriced_tokens_total",
            &[("model", OLLAMA_MODEL)]
        )
        .is_some_and(|n| n > 0.0)
    );
    // The answer without usage: no tokens, one completion without token counts, nothing else.
    let without_usage = "openwebui_chat_completions_without_usage_total";
    assert_eq!(
        get(
            without_usage,
            &[
                ("user", ALICE),
                ("model", "mock-nousage"),
                ("source", "http")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with(&format!("{without_usage}{{")))
            .count(),
        1,
        "only the mock-nousage completion lacks token counts"
    );
    assert!(
        !m.lines()
            .any(|l| l.starts_with(tokens) && l.contains(r#"model="mock-nousage""#)),
        "tokens for an answer that reported none"
    );
    // The embedded documents: input tokens of the embedding model.
    assert_eq!(
        get(
            tokens,
            &[
                ("user", ALICE),
                ("model", "mock-embed"),
                ("direction", "input"),
                ("source", "http")
            ]
        ),
        Some(EMBEDDED.iter().map(|d| words(d)).sum())
    );
    // Ollama's own counts: the NDJSON stream's last line, and the one-piece answer.
    let ollama_prompts = [PROMPT_OLLAMA_CHAT, PROMPT_OLLAMA_GENERATE];
    let ollama_tokens = |direction| {
        [
            ("user", ALICE),
            ("model", OLLAMA_MODEL),
            ("direction", direction),
            ("source", "http"),
        ]
    };
    assert_eq!(
        get(tokens, &ollama_tokens("input")),
        Some(ollama_prompts.iter().map(|p| words(p)).sum())
    );
    assert_eq!(
        get(tokens, &ollama_tokens("output")),
        Some(ollama_prompts.iter().map(|p| reply_words(p)).sum())
    );
    assert_eq!(
        sample(
            &m,
            "openwebui_chat_time_to_first_token_seconds_count",
            &[("model", OLLAMA_MODEL)]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(tokens, &token_labels("input", "websocket")),
        Some(web.iter().map(|p| words(p)).sum())
    );
    assert_eq!(
        get(tokens, &token_labels("output", "websocket")),
        Some(web.iter().map(|p| reply_words(p)).sum())
    );
    // Nothing was lost on the way.
    for line in m
        .lines()
        .filter(|l| l.starts_with("webui_monitor_capture_lost_total{"))
    {
        assert!(line.ends_with(" 0"), "capture loss: {line}");
    }

    // The audit trail: every model call Alice's session JWT (or a forged or expired one) made
    // from a script, in order, with the address curl connected to nginx from — believed from
    // nginx's X-Forwarded-For because nginx's address is a trusted proxy.
    let audit_lines = || std::fs::read_to_string(&audit_file).unwrap_or_default();
    wait_for(
        "the audit trail to hold 9 events",
        Duration::from_secs(10),
        || audit_lines().lines().count() == 9,
    )
    .map_err(|e| e.context(format!("audit trail:\n{}", audit_lines())))?;
    let audit: Vec<serde_json::Value> = audit_lines()
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // Token counts are whole numbers; `words` gives them as f64 for the metric samples.
    let tokens_of = |t: [f64; 4]| {
        let [input, output, cached_input, reasoning] = t.map(|n| n as u64);
        serde_json::json!({
            "input": input, "output": output, "cached_input": cached_input, "reasoning": reasoning
        })
    };
    let http = |p: &str| tokens_of([words(p), reply_words(p), 0.0, 0.0]);
    let want = [
        (
            ALICE,
            "verified",
            "/api/chat/completions",
            "chat",
            "mock-gpt",
            200,
            http(PROMPT_JWT),
        ),
        (
            ALICE,
            "verified",
            "/api/chat/completions",
            "chat",
            "mock-gpt",
            200,
            http(PROMPT_SSE),
        ),
        (
            ALICE,
            "verified",
            "/ollama/api/chat",
            "ollama",
            OLLAMA_MODEL,
            200,
            http(PROMPT_OLLAMA_CHAT),
        ),
        (
            ALICE,
            "verified",
            "/ollama/api/generate",
            "ollama",
            OLLAMA_MODEL,
            200,
            http(PROMPT_OLLAMA_GENERATE),
        ),
        (
            ALICE,
            "verified",
            "/api/chat/completions",
            "chat",
            "mock-nousage",
            200,
            serde_json::Value::Null,
        ),
        (
            ALICE,
            "verified",
            "/api/v1/messages",
            "messages",
            MESSAGES_MODEL,
            200,
            tokens_of([
                words(PROMPT_MESSAGES) + MESSAGES_CACHE_READ,
                reply_words(PROMPT_MESSAGES),
                MESSAGES_CACHE_READ,
                0.0,
            ]),
        ),
        (
            ALICE,
            "verified",
            "/openai/responses",
            "responses",
            RESPONSES_MODEL,
            200,
            tokens_of([
                words(PROMPT_RESPONSES),
                reply_words(PROMPT_RESPONSES) + RESPONSES_REASONING,
                RESPONSES_CACHED,
                RESPONSES_REASONING,
            ]),
        ),
        (
            "invalid",
            "bad_signature",
            "/api/chat/completions",
            "chat",
            "mock-gpt",
            401,
            serde_json::Value::Null,
        ),
        (
            "invalid",
            "expired",
            "/api/chat/completions",
            "chat",
            "mock-gpt",
            401,
            serde_json::Value::Null,
        ),
    ];
    for (i, (event, (user, result, route, api, model, status, tokens))) in
        audit.iter().zip(want).enumerate()
    {
        let got = (
            event["user"].as_str(),
            event["auth"].as_str(),
            event["auth_result"].as_str(),
            event["route"].as_str(),
            event["api"].as_str(),
            event["model"].as_str(),
            event["status"].as_u64(),
        );
        assert_eq!(
            got,
            (
                Some(user),
                Some("jwt"),
                Some(result),
                Some(route),
                Some(api),
                Some(model),
                Some(status)
            ),
            "audit event {i}: {event}"
        );
        assert_eq!(event["tokens"], tokens, "audit event {i}: {event}");
        assert_eq!(event["client_address"], CLIENT_ADDR, "audit event {i}");
        assert_eq!(
            event["client_address_source"], "x_forwarded_for",
            "audit event {i}"
        );
        assert_eq!(event["client_address_from_header"], true, "audit event {i}");
        assert_eq!(event["peer"], PROXY_ADDR, "audit event {i}");
        assert!(
            event["user_agent"]
                .as_str()
                .is_some_and(|ua| ua.starts_with("curl/")),
            "audit event {i}: {event}"
        );
        let time = event["time"].as_str().unwrap_or_default();
        assert!(
            time.starts_with("20") && time.ends_with('Z'),
            "audit event {i}: {time}"
        );
    }
    // The dashboard's and top's view: Alice's latest scripted-JWT call (the expired token's
    // calls are the invalid user's).
    let latest = "openwebui_scripted_session_last_timestamp_seconds";
    let alice_latest: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with(&format!("{latest}{{")) && l.contains(ALICE))
        .collect();
    assert_eq!(alice_latest.len(), 1, "{alice_latest:?}");
    assert!(
        alice_latest[0].contains(&format!(
            r#"{{api="responses",auth="jwt",client_address="{CLIENT_ADDR}",model="{RESPONSES_MODEL}",user="{ALICE}"}}"#
        )),
        "{}",
        alice_latest[0]
    );
    let calls = "openwebui_scripted_session_calls_total";
    for (api, n) in [
        ("chat", 3.0),
        ("ollama", 2.0),
        ("messages", 1.0),
        ("responses", 1.0),
    ] {
        assert_eq!(
            get(calls, &[("user", ALICE), ("auth", "jwt"), ("api", api)]),
            Some(n),
            "{api}"
        );
    }
    assert_eq!(
        get(
            calls,
            &[("user", "invalid"), ("auth", "jwt"), ("api", "chat")]
        ),
        Some(2.0)
    );

    // `webui-monitor top` without a terminal prints one snapshot of the same users.
    let binary = webui_monitor_tests::net::daemon_binary()?;
    let url = format!("http://{APP_ADDR}:{METRICS_PORT}");
    let top = stack.proxy.run(
        binary.to_str().unwrap_or_default(),
        &[
            "top",
            "--once",
            "--interval",
            "0",
            "--sort",
            "tokens",
            "--url",
            &url,
        ],
    )?;
    for user in [ALICE, ADMIN, "invalid", "anonymous"] {
        assert!(top.contains(user), "top lacks {user}:\n{top}");
    }
    // Alice's tokens are a lower bound: one of her answers carried no counts.
    let alice_row = top
        .lines()
        .find(|l| l.starts_with(ALICE))
        .unwrap_or_default();
    assert!(alice_row.contains('≥'), "top:\n{top}");
    // Its second table: Alice's latest scripted session-JWT call, from the address nginx saw,
    // and the forged and expired tokens' calls (user `invalid`).
    let scripted: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("SCRIPTED SESSION-JWT USE"))
        .collect();
    let alice_scripted = scripted
        .iter()
        .find(|l| l.starts_with(ALICE))
        .unwrap_or(&"");
    for cell in [" 7 ", CLIENT_ADDR, " jwt ", " responses ", RESPONSES_MODEL] {
        assert!(
            alice_scripted.contains(cell),
            "{cell} not in top's scripted table:\n{top}"
        );
    }
    assert!(
        scripted
            .iter()
            .any(|l| l.starts_with("invalid") && l.contains(" 2 ")),
        "top:\n{top}"
    );

    // SIGHUP re-reads the configuration and Open WebUI's database; no counter is lost.
    let pid = i32::try_from(stack.monitor.child.0.id())?;
    // SAFETY: a signal to our own child (`ip netns exec` execs the daemon in place).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_for("the monitor to reload", Duration::from_secs(20), || {
        stack.monitor.output().contains(
            "SIGHUP: configuration re-read, no setting changed; Open WebUI's database re-read",
        )
    })?;
    let after = stack.metrics()?;
    for (name, labels) in [
        (chat, labels(ALICE, "jwt", "webui", "true", "2xx")),
        (chat, labels(ALICE, "api_key", "api", "false", "2xx")),
    ] {
        assert_eq!(
            sample(&after, name, &labels),
            Some(get(name, &labels).unwrap_or(-1.0))
        );
    }

    // Every dashboard and alert expression returns data from a real Prometheus scraping the
    // monitor (user info is opt-in and off here).
    let check = repo_root().join("deploy/check-queries.py");
    let target = format!("{APP_ADDR}:{METRICS_PORT}");
    // Prometheus scrapes for a while; Alice keeps using the UI meanwhile, so rates and
    // increases over that window are data, as in production.
    let mut checker = stack
        .proxy
        .command(
            "python3",
            &[
                check.to_str().unwrap_or_default(),
                "--target",
                &target,
                "--allow-empty",
                "User directory",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let cookie_alice = format!("Cookie: token={alice}");
    let started = std::time::Instant::now();
    while checker.try_wait()?.is_none() && started.elapsed() < Duration::from_secs(120) {
        stack.curl("GET", "/api/models", &[&cookie_alice], None)?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let output = checker.wait_with_output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && report.contains(" 0 failed"),
        "dashboard/alert expressions against Prometheus:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Privacy: nothing the monitor wrote contains a secret it saw.
    let outputs = [
        ("metrics", stack.metrics()?),
        ("monitor output", stack.monitor.output()),
        ("audit trail", audit_lines()),
    ];
    let secrets = [
        ("WEBUI_SECRET_KEY", SECRET),
        ("Alice's password", ALICE_PASSWORD),
        ("the admin's password", ADMIN_PASSWORD),
        ("Alice's API key", ALICE_API_KEY),
        ("Alice's JWT", alice.as_str()),
        ("the admin's JWT", admin.as_str()),
        ("a forged JWT", forged.as_str()),
        ("JWT signature", alice.rsplit('.').next().unwrap_or("-")),
        ("a prompt", "zebra-jwt"),
        ("a prompt", "okapi-sse"),
        ("a prompt", "narwhal-apikey"),
        ("an Ollama prompt", "ibex-ollama"),
        ("an Ollama prompt", "tapir-ollama"),
        ("a prompt", "gecko-nousage"),
        ("a Messages prompt", "marmot-messages"),
        ("a Responses prompt", "pangolin-responses"),
        ("an embedded document", "lemur-embed"),
        ("a web-UI prompt", "quokka-webui"),
        ("a web-UI prompt", "axolotl-webui"),
        ("an answer", "Shaped reply"),
    ];
    for (what, text) in &outputs {
        for (secret_name, secret) in secrets {
            assert!(!text.contains(secret), "{what} contains {secret_name}");
        }
    }
    Ok(())
}
