//! Heap allocations per exchange when the real Open WebUI 0.12.4 captures are replayed, through
//! the whole [`Monitor`] (what `webui-monitor replay` and the daemon run) and through the bare
//! pipeline (reassembly, HTTP, WebSocket). Every allocation costs CPU on the pipeline's one
//! thread; the bounds are the counts of the current code, so a change that adds allocations to
//! every message fails here and one that removes some lowers them.
//!
//! Counted per thread, so that parallel tests do not interfere; the monitor is built outside
//! the count.
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../../webui-monitor-core/tests/support/expected_check.rs"]
mod expected_check;

use std::sync::Arc;

use counting_alloc::allocations;
use expected_check::{CAPTURES, fixture_dir};
use prometheus::Registry;
use webui_monitor::{config::Config, db};
use webui_monitor_core::{
    Monitor,
    replay::{PipelineOnly, replay_into},
    secret::Secret,
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
    // The counts of the current code (25.82 and 9.70 per exchange).
    assert!(monitor <= 7153, "{monitor} allocations with the monitor");
    assert!(pipeline <= 2687, "{pipeline} allocations in the pipeline");
}
