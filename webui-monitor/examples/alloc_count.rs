//! Heap allocations per exchange of one capture, through the bare pipeline and through the
//! whole `Monitor` (the difference is attribution's and the metrics sinks').
//!
//! `cargo run --release -p webui-monitor --example alloc_count -- FILE [DB] [pipeline|monitor]`
//!
//! The capture is read into memory once (that read is not counted). `WEBUI_SECRET_KEY` and
//! `BENCH_PORT` as for `bench_attribution`. Uses the system allocator, so a heap profiler
//! (heaptrack) run on it sees every allocation and where it comes from.
use std::{
    alloc::{GlobalAlloc, Layout, System},
    path::Path,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use anyhow::Context;
use webui_monitor_core::{
    Monitor,
    replay::{PipelineOnly, ReplayTarget, replay_into},
};

#[path = "support/bench_input.rs"]
mod bench_input;

use bench_input::BenchInput;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .context("usage: alloc_count FILE [DB] [pipeline|monitor]")?;
    let db_path = args.next().filter(|p| !p.is_empty());
    let only = args.next();
    let BenchInput {
        capture,
        port,
        secret,
        directory,
        config,
    } = BenchInput::load(Path::new(&file), db_path.as_deref().map(Path::new))?;

    if only.as_deref() != Some("monitor") {
        let mut pipeline = PipelineOnly::new(config.pipeline.clone());
        count("pipeline only", &capture, port, &mut pipeline)?;
    }
    if only.as_deref() != Some("pipeline") {
        let registry = prometheus::Registry::new();
        let mut monitor = Monitor::new(&config, secret.as_ref(), &registry)?;
        monitor.set_directory(directory);
        count("with attribution", &capture, port, &mut monitor)?;
    }
    Ok(())
}

fn count(
    name: &str,
    capture: &[u8],
    port: u16,
    target: &mut impl ReplayTarget,
) -> anyhow::Result<()> {
    let before = ALLOCATIONS.load(Relaxed);
    let stats = replay_into(capture, &[port], target, |_| {}, |_| {})?;
    let n = ALLOCATIONS.load(Relaxed) - before;
    println!(
        "{name}: {} exchanges, {n} allocations, {:.2} per exchange",
        stats.exchanges,
        n as f64 / stats.exchanges as f64
    );
    Ok(())
}
