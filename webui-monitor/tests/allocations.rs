//! Heap allocations per exchange when the real Open WebUI 0.12.4 captures are replayed, through
//! the whole [`Monitor`] (what `webui-monitor replay` and the daemon run) and through the bare
//! pipeline (reassembly, HTTP, WebSocket). Every allocation costs CPU on the pipeline's one
//! thread; the bounds are the counts of the current code, so a change that adds allocations to
//! every message fails here and one that removes some lowers them.
//!
//! Also the heap an idle keep-alive connection holds once it has carried one exchange, which
//! `cargo xtask bench-load` reads from the daemon's RSS with the noise of a whole process.
//!
//! Counted per thread, so that parallel tests do not interfere; the monitor is built outside
//! the count.
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../../webui-monitor-core/tests/support/expected_check.rs"]
mod expected_check;

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
};

use counting_alloc::{allocations, live_bytes};
use expected_check::{CAPTURES, fixture_dir};
use prometheus::Registry;
use webui_monitor::{config::Config, db};
use webui_monitor_core::{
    Monitor,
    replay::{PipelineOnly, replay_into},
    secret::Secret,
    segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp},
};

/// `WEBUI_SECRET_KEY` of the captures (FIXTURES-README).
const SECRET: &[u8] = b"owui-test-secret-key-0123456789abcdef";
const PORT: u16 = 8080;

/// Allocations of replaying the capture `name` (read into memory first) through the whole
/// monitor, with the captures' secret and database, and through the bare pipeline; and its
/// exchanges.
fn replay_allocations(name: &str) -> (u64, u64, u64) {
    let capture = std::fs::read(fixture_dir().join(format!("{name}.pcap"))).unwrap();
    let config = Config::default().monitor_config().unwrap();
    let registry = Registry::new();
    let mut monitor = Monitor::new(&config, Some(&Secret::new(SECRET)), &registry).unwrap();
    let directory = db::load(&fixture_dir().join("webui.db")).unwrap();
    monitor.set_directory(Some(Arc::new(directory)));
    let before = allocations();
    let stats = replay_into(&capture[..], &[PORT], &mut monitor, |_| {}, |_| {}).unwrap();
    let with_monitor = allocations() - before;

    let mut pipeline = PipelineOnly::new(config.pipeline.clone());
    let before = allocations();
    let bare = replay_into(&capture[..], &[PORT], &mut pipeline, |_| {}, |_| {}).unwrap();
    let pipeline_only = allocations() - before;
    assert_eq!(bare.exchanges, stats.exchanges, "{name}");
    (with_monitor, pipeline_only, stats.exchanges)
}

#[test]
fn allocations_per_exchange_of_the_captures() {
    let (mut monitor, mut pipeline, mut exchanges) = (0, 0, 0);
    for name in CAPTURES {
        let (m, p, x) = replay_allocations(name);
        println!("{name}: {x} exchanges, {m} allocations with the monitor, {p} pipeline only");
        monitor += m;
        pipeline += p;
        exchanges += x;
    }
    let per = |n: u64| n as f64 / exchanges as f64;
    println!(
        "all: {exchanges} exchanges; allocations per exchange: {:.2} with the monitor, {:.2} \
         pipeline only",
        per(monitor),
        per(pipeline)
    );
    assert_eq!(exchanges, 277);
    // The counts of the current code (23.48 and 8.72 per exchange).
    assert!(monitor <= 6505, "{monitor} allocations with the monitor");
    assert!(pipeline <= 2415, "{pipeline} allocations in the pipeline");
}

/// Connections `from..to`, each with a handshake, one `GET /api/config` exchange and the
/// client's ACK of the answer, then silence: what a browser tab's idle keep-alive connection
/// leaves in the monitor.
fn open_idle(monitor: &mut Monitor, from: u32, to: u32) {
    const REQUEST: &[u8] = b"GET /api/config HTTP/1.1\r\nHost: chat.example\r\n\
        User-Agent: Mozilla/5.0\r\nAccept: application/json\r\n\r\n";
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
        content-length: 20\r\n\r\n{\"status\":true,\"a\":1}";
    let server = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), PORT));
    for i in from..to {
        let key = ConnectionKey {
            client: SocketAddr::from((Ipv4Addr::from(0x0b00_0000 + i), 40_000)),
            server,
        };
        let timestamp = Timestamp::from_nanos(1_000_000_000 + u64::from(i) * 1_000);
        let segment = |direction, seq, flags, payload| Segment {
            key,
            direction,
            seq,
            flags: TcpFlags(flags),
            payload,
            timestamp,
            after_capture_loss: false,
            capture_skip: None,
        };
        let ack = TcpFlags::ACK;
        for s in [
            segment(Direction::Request, 100, TcpFlags::SYN, &[][..]),
            segment(Direction::Response, 500, TcpFlags::SYN | ack, &[]),
            segment(Direction::Request, 101, ack | TcpFlags::PSH, REQUEST),
            segment(Direction::Response, 501, ack | TcpFlags::PSH, ANSWER),
            segment(Direction::Request, 101 + REQUEST.len() as u32, ack, &[]),
        ] {
            monitor.on_segment(&s, |_| {});
        }
    }
}

#[test]
fn heap_per_idle_connection() {
    let config = Config::default().monitor_config().unwrap();
    let registry = Registry::new();
    let mut monitor = Monitor::new(&config, None, &registry).unwrap();
    // The first thousand grow the tables and create the metric series once.
    open_idle(&mut monitor, 0, 1_000);
    let idle = 20_000;
    let before = live_bytes();
    open_idle(&mut monitor, 1_000, 1_000 + idle);
    let per = (live_bytes() - before) as f64 / f64::from(idle);
    println!("heap per idle connection: {per:.1} B (as requested, before size classes)");
    // The connection table's entry (its key, both directions' reassembly state, the boxed
    // HTTP engine with its two framers) and the table's slots; the bound is the current code's.
    assert!(per <= 906.2, "{per:.1} B per idle connection");
}
