//! End-to-end semantics over the real Open WebUI 0.12.4 captures: pcap → [`Pipeline`] →
//! [`Attributor`] → Prometheus, checked against each capture's `expected.json` totals
//! (per-user requests by auth, bytes, auth results, chat completions by model/auth/client/
//! stream/status, HTTP and WebSocket tokens by user and model).
//!
//! The captures go through the same code as `webui-monitor replay`
//! ([`replay_capture`]), so this is also the replay command's acceptance test.
//!
//! It also checks the performance contract: attributing an exchange of an already-seen user
//! allocates nothing.
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../../webui-monitor-core/tests/support/expected_check.rs"]
mod expected_check;

use std::{net::SocketAddr, sync::Arc};

use counting_alloc::allocations;
use expected_check::{Samples, assert_matches_expected, expected, fixture_dir};
use prometheus::Registry;
use webui_monitor::{config::Config, db};
use webui_monitor_core::{
    Monitor,
    http::{
        Exchange,
        exchange::{
            MessageStats, RequestBodyFields, RequestField, ResponseBodyFields, StreamSummary,
        },
    },
    metrics::{OpenWebuiMetrics, PrometheusSink},
    openwebui::{Attributor, JwtSecret, SemanticsConfig},
    replay::{ReplayStats, replay_capture},
    secret::Secret,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
};

/// `WEBUI_SECRET_KEY` of the captures (FIXTURES-README).
const SECRET: &[u8] = b"owui-test-secret-key-0123456789abcdef";
const PORT: u16 = 8080;

/// An attributor with the captures' secret and database, and the sink its facts go to.
fn attributor(registry: &Registry) -> (Attributor, PrometheusSink) {
    let metrics = OpenWebuiMetrics::register(registry, "USD").unwrap();
    let config = SemanticsConfig::default();
    let mut sink = PrometheusSink::new(metrics, &config, Default::default());
    let mut a = Attributor::new(config, Some(&JwtSecret::new(SECRET)));
    let dir = db::load(&fixture_dir().join("webui.db")).unwrap();
    a.set_directory(Some(Arc::new(dir)), &mut sink);
    (a, sink)
}

/// Replay a capture the way `webui-monitor replay` does — the crate's pcap reader into a
/// [`Monitor`] with the captures' secret and database — and return the registry and totals.
fn replay_with_stats(name: &str) -> (Registry, ReplayStats) {
    let registry = Registry::new();
    let mut monitor = Monitor::new(
        &Config::default().monitor_config().unwrap(),
        Some(&Secret::new(SECRET)),
        &registry,
    )
    .unwrap();
    let directory = db::load(&fixture_dir().join("webui.db")).unwrap();
    monitor.set_directory(Some(Arc::new(directory)));
    let file = std::fs::File::open(fixture_dir().join(format!("{name}.pcap"))).unwrap();
    let stats = replay_capture(
        std::io::BufReader::new(file),
        &[PORT],
        &mut monitor,
        |_| {},
        |_| {},
    )
    .unwrap();
    (registry, stats)
}

fn replay(name: &str) -> Registry {
    replay_with_stats(name).0
}

#[test]
fn pcap_reader_sees_every_packet_of_the_monitored_port() {
    for name in expected_check::CAPTURES {
        let packets = expected(name)["meta"]["packets"].as_u64().unwrap();
        let (_, stats) = replay_with_stats(name);
        assert_eq!(stats.packets, packets, "{name}");
        assert_eq!(
            stats.segments, packets,
            "{name}: every packet is TCP on port {PORT}"
        );
    }
}

#[test]
fn replay_matches_expected_setup() {
    assert_matches_expected("setup", &Samples::gather(&replay("setup")));
}

#[test]
fn replay_matches_expected_setup_model_access() {
    let name = "setup_model_access";
    assert_matches_expected(name, &Samples::gather(&replay(name)));
}

#[test]
fn replay_matches_expected_browser() {
    assert_matches_expected("browser", &Samples::gather(&replay("browser")));
}

#[test]
fn replay_matches_expected_script_jwt() {
    assert_matches_expected("script_jwt", &Samples::gather(&replay("script_jwt")));
}

#[test]
fn replay_matches_expected_script_apikey() {
    assert_matches_expected("script_apikey", &Samples::gather(&replay("script_apikey")));
}

/// Open WebUI 0.12.4 reported usage for every answer in the real captures, over HTTP (JSON and
/// SSE) and on the web UI's socket: none may count as an answer without token counts.
#[test]
fn every_completion_in_the_real_captures_carried_token_counts() {
    for name in expected_check::CAPTURES {
        let samples = Samples::gather(&replay(name));
        assert_eq!(
            samples.sum("openwebui_chat_completions_without_usage_total", &[]),
            0.0,
            "{name}"
        );
    }
}

// ---- no per-request allocation for already-seen users ----

fn exchange(path: &str, auth: Option<&[u8]>, cookie: Option<&[u8]>, ts: Timestamp) -> Exchange {
    let stats = MessageStats {
        header_bytes: 300,
        body_wire_bytes: 50,
        first_byte: ts,
        last_byte: ts,
        complete: true,
        ..Default::default()
    };
    let mut ex = Exchange {
        connection: ConnectionKey {
            client: SocketAddr::from(([127, 0, 0, 1], 50000)),
            server: SocketAddr::from(([127, 0, 0, 1], PORT)),
        },
        sequence: 0,
        method: "GET".into(),
        path: path.into(),
        has_query: false,
        status: Some(200),
        request: stats.clone(),
        response: Some(stats),
        request_headers: Default::default(),
        response_headers: Default::default(),
        request_fields: Default::default(),
        response_fields: Default::default(),
        upgraded: false,
        anomalies: Vec::new(),
    };
    let h = &mut ex.request_headers;
    if let Some(auth) = auth {
        h.set(RequestField::Authorization, auth);
    }
    if let Some(cookie) = cookie {
        h.set(RequestField::CookieToken, cookie);
    }
    h.set(RequestField::UserAgent, "Mozilla/5.0");
    h.set(RequestField::SecFetchMode, "cors");
    ex
}

/// Alice's session JWT and API key from the captures.
fn alice_credentials() -> (Vec<u8>, Vec<u8>) {
    let creds: std::collections::HashMap<String, String> =
        serde_json::from_str(include_str!("testdata/credentials.json")).unwrap();
    (
        creds["bc02aeb386f4"].as_bytes().to_vec(),
        creds["46e99b8fcc3f"].as_bytes().to_vec(),
    )
}

#[test]
fn attribution_of_seen_users_allocates_nothing() {
    let registry = Registry::new();
    let (mut a, mut sink) = attributor(&registry);
    let (jwt, key) = alice_credentials();
    let ts = Timestamp::from_secs(1_795_766_900);
    let bearer_jwt = [b"Bearer ".as_slice(), &jwt].concat();
    let bearer_key = [b"Bearer ".as_slice(), &key].concat();
    let mut completion = exchange("/api/chat/completions", Some(&bearer_key), None, ts);
    completion.method = "POST".into();
    completion.request_fields = RequestBodyFields {
        json: true,
        model: Some("mock-gpt".into()),
        stream: Some(true),
        has_messages: true,
        ..Default::default()
    };
    completion.response_fields = ResponseBodyFields {
        usage: Some(Usage::io(4, 17)),
        sse: Some(StreamSummary {
            events: 21,
            done: true,
            first_event: Some(ts),
            last_event: Some(ts),
        }),
        ..Default::default()
    };
    let exchanges = [
        exchange("/api/v1/chats/", Some(&bearer_jwt), Some(&jwt), ts),
        exchange("/_app/immutable/chunks/x.js", None, Some(&jwt), ts),
        exchange("/api/version", Some(b"Bearer undefined"), None, ts),
        exchange("/api/config", None, None, ts),
        completion,
    ];
    // First sight of each user and series creates label handles.
    for ex in &exchanges {
        a.on_exchange(ex, &mut sink);
    }
    let before = allocations();
    for _ in 0..100 {
        for ex in &exchanges {
            a.on_exchange(ex, &mut sink);
        }
    }
    assert_eq!(allocations() - before, 0, "allocations in 500 attributions");
    // The counter does count (guards against a silently inactive allocator hook).
    let probe = allocations();
    std::hint::black_box(vec![0u8; 64]);
    assert!(allocations() > probe);
    let s = Samples::gather(&registry);
    assert_eq!(
        s.sum(
            "openwebui_user_requests_total",
            &[("user", "700c1556-9d86-452a-880f-edbc8a74ead8")]
        ),
        303.0
    );
}

/// The scripted session calls of `script_jwt` through the daemon's audit writer: with events
/// kept and written to a file, and with `audit.output = "none"`, where the monitor builds none.
/// Both serve the same exposition, written count included.
#[test]
fn audit_output_none_builds_no_event_and_serves_the_same_metrics() {
    use webui_monitor::audit::{AuditWriter, Output, RotatingFile};

    let run = |output: Output| {
        let registry = Registry::new();
        let mut monitor = Monitor::new(
            &Config::default().monitor_config().unwrap(),
            Some(&Secret::new(SECRET)),
            &registry,
        )
        .unwrap();
        let directory = db::load(&fixture_dir().join("webui.db")).unwrap();
        monitor.set_directory(Some(Arc::new(directory)));
        let mut writer = AuditWriter::start(output, &registry).unwrap();
        monitor.keep_audit_events(writer.writes_events());
        let file = std::fs::File::open(fixture_dir().join("script_jwt.pcap")).unwrap();
        replay_capture(file, &[PORT], &mut monitor, |_| {}, |_| {}).unwrap();
        writer.submit(&mut monitor);
        writer.finish();
        let text = webui_monitor_core::metrics::util::render(&registry);
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("audit") || l.contains("scripted_session"))
            .map(str::to_owned)
            .collect();
        (lines, monitor.audit_counters().clone())
    };
    let dir = std::env::temp_dir().join(format!("wm-audit-none-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let file = RotatingFile::open(&path, 1 << 20, 1).unwrap();
    let (written, written_counters) = run(Output::File(file));
    let events = std::fs::read_to_string(&path).unwrap().lines().count() as u64;
    let _ = std::fs::remove_dir_all(&dir);
    let (none, none_counters) = run(Output::None);
    assert!(events > 0);
    assert_eq!(written_counters.events, events);
    assert_eq!(none_counters, written_counters);
    assert!(
        written.contains(&format!("webui_monitor_audit_written_total {events}")),
        "{written:?}"
    );
    assert_eq!(none, written);
}
