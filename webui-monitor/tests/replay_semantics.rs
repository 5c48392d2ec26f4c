//! End-to-end semantics over the real Open WebUI 0.12.4 captures: pcap → [`Pipeline`] →
//! [`Attributor`] → Prometheus, checked against each capture's `expected.json` totals
//! (per-user requests by auth, bytes, auth results, chat completions by model/auth/client/
//! stream/status, HTTP and WebSocket tokens by user and model).
//!
//! The pcap reading here is a minimal classic-pcap/Ethernet/IPv4/TCP decoder so this test
//! depends only on the pipeline contract.
//! TODO(lead): once `webui_monitor::pcap` and the real `Pipeline` are merged, switch
//! `segments()` to the crate's reader, use the pipeline's real constructor, and remove the
//! `#[ignore]` of `replay_matches_expected_*` (they fail against the contract stub, which emits
//! no events).
//!
//! It also checks the performance contract: attributing an exchange of an already-seen user
//! allocates nothing.
#[path = "../src/openwebui/expected_check.rs"]
mod expected_check;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
};

use expected_check::{Samples, assert_matches_expected, expected, fixture_dir};
use prometheus::Registry;
use webui_monitor::{
    http::{
        Exchange,
        exchange::{
            MessageStats, RequestBodyFields, ResponseBodyFields, Secret, SseSummary, Usage,
        },
    },
    openwebui::{Attributor, OpenWebuiMetrics, SemanticsConfig, db, jwt::JwtSecret},
    pipeline::{Pipeline, PipelineEvent},
    segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp},
};

/// `WEBUI_SECRET_KEY` of the captures (FIXTURES-README).
const SECRET: &[u8] = b"owui-test-secret-key-0123456789abcdef";
const PORT: u16 = 8080;

// ---- allocation counting (per thread, so parallel tests do not interfere) ----

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ---- minimal pcap reader ----

/// One TCP segment of the monitored port, owning its payload.
struct Packet {
    key: ConnectionKey,
    direction: Direction,
    seq: u32,
    flags: u8,
    payload: Vec<u8>,
    ts: Timestamp,
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Classic pcap (µs, little-endian), Ethernet, IPv4, TCP to or from port 8080.
fn segments(name: &str) -> Vec<Packet> {
    let data = std::fs::read(fixture_dir().join(format!("{name}.pcap"))).unwrap();
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    assert_eq!(
        u32::from_le_bytes(data[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let word = |i: usize| u32::from_le_bytes(data[at + i..at + i + 4].try_into().unwrap());
        let (sec, usec, incl) = (word(0), word(4), word(8) as usize);
        let frame = &data[at + 16..at + 16 + incl];
        at += 16 + incl;
        if frame.len() < 14 || be16(frame, 12) != 0x0800 {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(be16(ip, 2)).min(ip.len());
        if ip[9] != 6 {
            continue;
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let tcp = &ip[ihl..total];
        let (sport, dport) = (be16(tcp, 0), be16(tcp, 2));
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        let offset = usize::from(tcp[12] >> 4) * 4;
        let (direction, client, server) = if dport == PORT {
            (
                Direction::Request,
                SocketAddr::from((src, sport)),
                SocketAddr::from((dst, dport)),
            )
        } else if sport == PORT {
            (
                Direction::Response,
                SocketAddr::from((dst, dport)),
                SocketAddr::from((src, sport)),
            )
        } else {
            continue;
        };
        out.push(Packet {
            key: ConnectionKey { client, server },
            direction,
            seq,
            flags: tcp[13],
            payload: tcp[offset..].to_vec(),
            ts: Timestamp::from_nanos(u64::from(sec) * 1_000_000_000 + u64::from(usec) * 1_000),
        });
    }
    out
}

fn attributor(registry: &Registry) -> Attributor {
    let metrics = OpenWebuiMetrics::register(registry).unwrap();
    let mut a = Attributor::new(
        SemanticsConfig::default(),
        metrics,
        Some(&JwtSecret::new(SECRET)),
    );
    let dir = db::load(&fixture_dir().join("webui.db")).unwrap();
    a.set_directory(Some(Arc::new(dir)));
    a
}

/// Replay a capture through the pipeline and the attributor; return the registry.
fn replay(name: &str) -> Registry {
    let registry = Registry::new();
    let mut attributor = attributor(&registry);
    let mut pipeline = Pipeline::default();
    let mut events: Vec<PipelineEvent> = Vec::new();
    let mut last = Timestamp::default();
    for p in segments(name) {
        let segment = Segment {
            key: p.key,
            direction: p.direction,
            seq: p.seq,
            flags: TcpFlags(p.flags),
            payload: &p.payload,
            timestamp: p.ts,
        };
        last = last.max(p.ts);
        pipeline.on_segment(&segment, &mut events);
        for e in events.drain(..) {
            attributor.on_event(&e);
        }
    }
    pipeline.finish(last, &mut events);
    for e in events.drain(..) {
        attributor.on_event(&e);
    }
    attributor.finish(last);
    registry
}

#[test]
fn pcap_reader_sees_every_packet_of_the_monitored_port() {
    for name in expected_check::CAPTURES {
        let packets = expected(name)["meta"]["packets"].as_u64().unwrap();
        assert_eq!(segments(name).len() as u64, packets, "{name}");
    }
}

#[test]
#[ignore = "needs the real pipeline (stream/http/websocket helpers); see TODO(lead) above"]
fn replay_matches_expected_setup() {
    assert_matches_expected("setup", &Samples::gather(&replay("setup")));
}

#[test]
#[ignore = "needs the real pipeline (stream/http/websocket helpers); see TODO(lead) above"]
fn replay_matches_expected_setup_model_access() {
    let name = "setup_model_access";
    assert_matches_expected(name, &Samples::gather(&replay(name)));
}

#[test]
#[ignore = "needs the real pipeline (stream/http/websocket helpers); see TODO(lead) above"]
fn replay_matches_expected_browser() {
    assert_matches_expected("browser", &Samples::gather(&replay("browser")));
}

#[test]
#[ignore = "needs the real pipeline (stream/http/websocket helpers); see TODO(lead) above"]
fn replay_matches_expected_script_jwt() {
    assert_matches_expected("script_jwt", &Samples::gather(&replay("script_jwt")));
}

#[test]
#[ignore = "needs the real pipeline (stream/http/websocket helpers); see TODO(lead) above"]
fn replay_matches_expected_script_apikey() {
    assert_matches_expected("script_apikey", &Samples::gather(&replay("script_apikey")));
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
    ex.request_headers.authorization = auth.map(Secret::new);
    ex.request_headers.cookie_token = cookie.map(Secret::new);
    ex.request_headers.user_agent = Some("Mozilla/5.0".into());
    ex.request_headers.sec_fetch_mode = Some("cors".into());
    ex
}

/// Alice's session JWT and API key from the captures.
fn alice_credentials() -> (Vec<u8>, Vec<u8>) {
    let creds: std::collections::HashMap<String, String> =
        serde_json::from_str(include_str!("../src/openwebui/testdata/credentials.json")).unwrap();
    (
        creds["bc02aeb386f4"].as_bytes().to_vec(),
        creds["46e99b8fcc3f"].as_bytes().to_vec(),
    )
}

#[test]
fn attribution_of_seen_users_allocates_nothing() {
    let registry = Registry::new();
    let mut a = attributor(&registry);
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
        usage: Some(Usage {
            prompt_tokens: 4,
            completion_tokens: 17,
            total_tokens: 21,
        }),
        sse: Some(SseSummary {
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
        a.on_exchange(ex);
    }
    let before = allocations();
    for _ in 0..100 {
        for ex in &exchanges {
            a.on_exchange(ex);
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
