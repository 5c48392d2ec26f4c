//! Skipping the bodies nothing reads changes no metric: every fixture capture replayed with the
//! kernel capture's skip rule (`capture_model::SkipFilter`, fed by the monitor's commands)
//! yields the metrics, exchanges and WebSocket facts of a replay that copies everything, and
//! the ring bytes of the browser session's first page load are measured.
//!
//! One family differs by design and is left out of the comparison:
//! `webui_monitor_reassembly_duplicate_*`. A retransmission inside a skipped range is not
//! copied either, so it is not seen, and not counted as a duplicate.
#[path = "support/expected_check.rs"]
mod expected_check;

use std::{fs::File, io::BufReader};

use expected_check::{CAPTURES, fixture_dir};
use prometheus::{Encoder, Registry, TextEncoder};
use webui_monitor_core::{
    Monitor, MonitorConfig,
    capture_model::{SkipFilter, ring_bytes},
    pcap::{CaptureReader, Dissector, PcapLimits},
    pipeline::PipelineEvent,
    replay::{ReplayStats, exchange_json, replay_capture},
    secret::Secret,
    segment::Timestamp,
};

const SECRET: &[u8] = b"owui-test-secret-key-0123456789abcdef";

/// What a replay produced: metrics text (without the skip families, which exist to differ),
/// one line per exchange and per WebSocket fact, and the totals.
struct Outcome {
    metrics: Vec<String>,
    events: Vec<String>,
    stats: ReplayStats,
}

fn replay(name: &str, skip_from: Option<u64>) -> Outcome {
    let f = File::open(fixture_dir().join(format!("{name}.pcap"))).expect("pcap");
    let config = MonitorConfig {
        skip_unread_bodies_from: skip_from,
        ..MonitorConfig::default()
    };
    let registry = Registry::new();
    let mut monitor =
        Monitor::new(&config, Some(&Secret::new(SECRET)), &registry).expect("monitor");
    let mut events = Vec::new();
    let stats = replay_capture(
        BufReader::new(f),
        &[8080],
        &mut monitor,
        |e| match e {
            PipelineEvent::Exchange(e) => events.push(exchange_json(e).to_string()),
            PipelineEvent::Socket { connection, event } => {
                events.push(format!("{connection:?} {event:?}"))
            }
        },
        |_| {},
    )
    .expect("replay");
    monitor.refresh_metrics();
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("encode");
    let metrics = String::from_utf8(buf)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.contains("skipped_bytes") && !l.contains("bodies_skipped"))
        .filter(|l| !l.contains("reassembly_duplicate_"))
        .map(str::to_owned)
        .collect();
    Outcome {
        metrics,
        events,
        stats,
    }
}

fn assert_same(name: &str, skip_from: u64) -> ReplayStats {
    let copied = replay(name, None);
    let skipped = replay(name, Some(skip_from));
    assert_eq!(copied.stats.skipped_bytes, 0, "{name}");
    assert_eq!(skipped.events.len(), copied.events.len(), "{name}");
    for (i, (a, b)) in skipped.events.iter().zip(&copied.events).enumerate() {
        assert_eq!(a, b, "{name}: event {i}, skipping from {skip_from} bytes");
    }
    for (a, b) in skipped.metrics.iter().zip(&copied.metrics) {
        assert_eq!(a, b, "{name}: skipping from {skip_from} bytes");
    }
    assert_eq!(skipped.metrics.len(), copied.metrics.len(), "{name}");
    assert_eq!(
        skipped.stats.payload_bytes, copied.stats.payload_bytes,
        "{name}"
    );
    skipped.stats
}

#[test]
fn skipping_changes_no_metric_exchange_or_socket_fact() {
    for name in CAPTURES {
        // The default, and every body nothing reads however small.
        for skip_from in [8 * 1024, 1] {
            let stats = assert_same(name, skip_from);
            eprintln!(
                "{name} (skip from {skip_from} B): ring {} B for {} payload B ({:.1} %), {} B skipped",
                stats.ring_bytes,
                stats.payload_bytes,
                100.0 * stats.ring_bytes as f64 / stats.payload_bytes as f64,
                stats.skipped_bytes
            );
        }
    }
}

#[test]
fn the_browser_session_skips_its_static_assets() {
    let skipped = replay("browser", Some(8 * 1024)).stats;
    let copied = replay("browser", None).stats;
    assert!(skipped.skipped_bytes > 0);
    assert!(skipped.ring_bytes < copied.ring_bytes);
    // The kernel leaves out exactly the bytes it does not copy.
    assert!(copied.ring_bytes - skipped.ring_bytes >= skipped.skipped_bytes / 2);
}

/// Ring bytes ÷ payload bytes of the browser session's first page load: every packet before
/// the sign-in request (login page, its scripts, styles, fonts and images).
///
/// Most of its bytes are chunked bodies sent in 64 KB loopback segments. The monitor asks the
/// capture to follow an unread chunked body (a chunked skip range, from the first size line
/// on or from the end of the chunk it reads): the kernel reads the size lines in the segments
/// itself and leaves out whole chunks, so what is copied is mostly heads, requests and bodies
/// that arrive with their heads. The capture model applies each skip at once; the daemon
/// applies it when it has read the head from the ring, later.
#[test]
fn first_page_load_ring_bytes() {
    let signin = signin_time();
    let (copied_ring, payload) = page_load(None, signin);
    let (skipped_ring, skip_payload) = page_load(Some(8 * 1024), signin);
    let (all_ring, _) = page_load(Some(1), signin);
    assert_eq!(payload, skip_payload);
    let pct = |ring: u64| 100.0 * ring as f64 / payload as f64;
    eprintln!(
        "first page load: {payload} payload B; ring {copied_ring} B copying everything \
         ({:.1} %), {skipped_ring} B skipping from 8 KiB ({:.1} %), {all_ring} B skipping every \
         unread body ({:.1} %)",
        pct(copied_ring),
        pct(skipped_ring),
        pct(all_ring),
    );
    assert_eq!(
        (payload, copied_ring, skipped_ring, all_ring),
        (959_080, 1_057_840, 214_080, 117_256)
    );
}

/// When the browser session's first sign-in request started.
fn signin_time() -> Timestamp {
    let f = File::open(fixture_dir().join("browser.pcap")).expect("pcap");
    let registry = Registry::new();
    let mut monitor = Monitor::new(&MonitorConfig::default(), None, &registry).expect("monitor");
    let mut first = None::<Timestamp>;
    replay_capture(
        BufReader::new(f),
        &[8080],
        &mut monitor,
        |e| {
            if let PipelineEvent::Exchange(e) = e
                && e.path.starts_with("/api/v1/auths/signin")
            {
                let t = e.request.first_byte;
                first = Some(first.map_or(t, |f| f.min(t)));
            }
        },
        |_| {},
    )
    .expect("replay");
    first.expect("a sign-in request")
}

/// Ring and payload bytes of the browser session's packets before `until`, the capture
/// applying the monitor's skips (`skip_from` as in `MonitorConfig`).
fn page_load(skip_from: Option<u64>, until: Timestamp) -> (u64, u64) {
    let f = File::open(fixture_dir().join("browser.pcap")).expect("pcap");
    let mut reader = CaptureReader::new(BufReader::new(f), PcapLimits::default()).expect("pcap");
    let dissector = Dissector::new([8080]);
    let config = MonitorConfig {
        skip_unread_bodies_from: skip_from,
        ..MonitorConfig::default()
    };
    let registry = Registry::new();
    let mut monitor = Monitor::new(&config, None, &registry).expect("monitor");
    let mut filter = SkipFilter::default();
    let (mut ring, mut payload) = (0, 0);
    while let Some(packet) = reader.next_packet().expect("packet") {
        if packet.timestamp >= until {
            break;
        }
        let Ok(segment) = dissector.dissect(packet.link_type, packet.timestamp, packet.data) else {
            continue;
        };
        payload += segment.payload.len() as u64;
        if let Some(segment) = filter.filter(&segment) {
            ring += ring_bytes(&segment);
            monitor.on_segment(&segment, |_| {});
            while let Some(command) = monitor.poll_skip() {
                filter.apply(command);
            }
        }
    }
    (ring, payload)
}
