//! `replay` over the real Open WebUI captures, compared with `<capture>.expected.json`.
use std::{
    collections::BTreeMap,
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
};

use serde_json::Value;
use webui_monitor::{
    config::{Config, ConfigArgs},
    http::Exchange,
    monitor::Monitor,
    pipeline::PipelineEvent,
    replay::{self, ReplayArgs, ReplayStats, path_template, replay_capture},
};

const CAPTURES: [&str; 5] = [
    "setup",
    "setup_model_access",
    "browser",
    "script_jwt",
    "script_apikey",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui")
}

fn expected(name: &str) -> Value {
    let f = File::open(fixtures().join(format!("{name}.expected.json"))).expect("expected json");
    serde_json::from_reader(BufReader::new(f)).expect("json")
}

fn replay_fixture(name: &str) -> (Vec<Exchange>, ReplayStats) {
    let f = File::open(fixtures().join(format!("{name}.pcap"))).expect("pcap");
    let mut exchanges = Vec::new();
    let registry = prometheus::Registry::new();
    let mut monitor = Monitor::new(&Config::default(), None, &registry).expect("monitor");
    let stats = replay_capture(
        BufReader::new(f),
        &[8080],
        &mut monitor,
        |e| {
            if let PipelineEvent::Exchange(e) = e {
                exchanges.push((**e).clone());
            }
        },
        |_| {},
    )
    .expect("replay");
    let pipeline = monitor.pipeline();
    let c = pipeline.reassembly_counters();
    assert_eq!(c.gaps, 0, "{name}");
    assert_eq!(pipeline.active_connections(), 0, "{name}");
    (exchanges, stats)
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

#[test]
fn metrics_out_writes_the_exposition() {
    let dir = std::env::temp_dir().join(format!("webui-monitor-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("metrics.prom");
    replay::run(ReplayArgs {
        file: fixtures().join("script_jwt.pcap"),
        json: false,
        metrics_out: Some(out.clone()),
        config: ConfigArgs {
            config: Some("/dev/null".into()),
            ..ConfigArgs::default()
        },
    })
    .expect("replay");
    let text = std::fs::read_to_string(&out).expect("metrics file");
    std::fs::remove_dir_all(&dir).ok();
    for line in [
        "webui_monitor_pcap_packets_total 120",
        "webui_monitor_reassembly_connections_opened_total 3",
        "webui_monitor_reassembly_connections_closed_total{reason=\"fin\"} 3",
        "webui_monitor_reassembly_gaps_total 0",
        "webui_monitor_reassembly_connections_active 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
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
                e.response_headers.content_type.as_deref(),
                w["response_content_type"].as_str(),
                "{ctx}"
            );
            assert_eq!(
                e.response_headers.content_encoding.as_deref(),
                w["response_content_encoding"].as_str(),
                "{ctx}"
            );
            if let Some(usage) = w["chat"]["usage"].as_object() {
                let got_usage = e.response_fields.usage.expect("usage");
                assert_eq!(
                    Some(got_usage.prompt_tokens),
                    usage["prompt_tokens"].as_u64(),
                    "{ctx}"
                );
                assert_eq!(
                    Some(got_usage.completion_tokens),
                    usage["completion_tokens"].as_u64(),
                    "{ctx}"
                );
            }
        }
    }
}
