//! Exchanges per second of one capture with attribution off and on, in one process.
//!
//! `cargo run --release -p webui-monitor --example bench_attribution -- FILE [DB]`
//!
//! The capture is read into memory once, then replayed alternately through the bare pipeline
//! (reassembly, HTTP, WebSocket; events dropped) and through the whole `Monitor` (the same
//! pipeline plus Open WebUI attribution and metrics), `ROUNDS` times each. Each variant's best
//! round counts: on a busy machine the minimum is the least disturbed measurement. The ratio of
//! each round's back-to-back pair is printed too, with their median: on this shared guest single
//! rounds swing by ±15 %, so a verdict needs several rounds. Times are the thread's CPU time,
//! wall time beside them. The JWT secret comes from `WEBUI_SECRET_KEY`, the
//! users and API keys from the optional Open WebUI database `DB`, and the monitored port from
//! `BENCH_PORT` (default 8080). `cargo xtask bench-replay` runs this on its generated capture.
use std::{path::Path, time::Instant};

use anyhow::{Context, ensure};
use webui_monitor_core::{
    Monitor,
    replay::{PipelineOnly, ReplayStats, ReplayTarget, replay_into},
};

#[path = "support/bench_input.rs"]
mod bench_input;

use bench_input::BenchInput;

const ROUNDS: usize = 7;

/// The daemon's allocator (`src/main.rs`), so the rates are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let file = args
        .next()
        .context("usage: bench_attribution FILE [OPEN_WEBUI_DB]")?;
    let db_path = args.next();
    let BenchInput {
        capture,
        port,
        secret,
        directory,
        config,
    } = BenchInput::load(file.as_ref(), db_path.as_deref().map(Path::new))?;

    let mut best = [Run::default(), Run::default()];
    let mut ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let pipeline = measure(
            &capture,
            port,
            &mut PipelineOnly::new(config.pipeline.clone()),
        )?;
        let registry = prometheus::Registry::new();
        let mut monitor = Monitor::new(&config, secret.as_ref(), &registry)?;
        monitor.set_directory(directory.clone());
        let attributed = measure(&capture, port, &mut monitor)?;
        ratios.push(100.0 * pipeline.cpu / attributed.cpu);
        best[0].keep_best(pipeline);
        best[1].keep_best(attributed);
    }
    ratios.sort_by(f64::total_cmp);
    ensure!(
        best[0].stats.exchanges == best[1].stats.exchanges,
        "the variants saw different exchanges"
    );

    println!(
        "| variant | exchanges | CPU s | wall s | exchanges/s (CPU) | Gbit/s of capture (CPU) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let bits = capture.len() as f64 * 8.0;
    for (name, run) in ["pipeline only", "with attribution"].iter().zip(&best) {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.0} | {:.2} |",
            run.stats.exchanges,
            run.cpu,
            run.wall,
            run.stats.exchanges as f64 / run.cpu,
            bits / run.cpu / 1e9,
        );
    }
    println!(
        "| attribution on / off | | | | {:.1} % (target >= 90 %) | |",
        100.0 * best[0].cpu / best[1].cpu
    );
    println!(
        "\neach round's pair, sorted: {} (median {:.1} %)",
        ratios
            .iter()
            .map(|r| format!("{r:.1} %"))
            .collect::<Vec<_>>()
            .join(", "),
        ratios[ROUNDS / 2]
    );
    println!(
        "best of {ROUNDS} alternating rounds each; JWT secret {}, database {}",
        if secret.is_some() { "set" } else { "unset" },
        if directory.is_some() {
            "loaded"
        } else {
            "none"
        },
    );
    Ok(())
}

#[derive(Debug, Clone, Default)]
struct Run {
    stats: ReplayStats,
    cpu: f64,
    wall: f64,
}

impl Run {
    /// Keep the faster of `self` and `run`.
    fn keep_best(&mut self, run: Run) {
        if self.cpu == 0.0 || run.cpu < self.cpu {
            *self = run;
        }
    }
}

fn measure(capture: &[u8], port: u16, target: &mut impl ReplayTarget) -> anyhow::Result<Run> {
    let wall = Instant::now();
    let cpu = thread_cpu_secs();
    let stats = replay_into(capture, &[port], target, |_| {}, |_| {})?;
    Ok(Run {
        cpu: thread_cpu_secs() - cpu,
        wall: wall.elapsed().as_secs_f64(),
        stats,
    })
}

/// CPU seconds this thread has run: unlike wall time, not inflated by other processes.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
