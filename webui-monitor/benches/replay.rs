//! In-process replay of the Open WebUI fixture captures, with attribution off and on.
//!
//! `cargo bench -p webui-monitor --bench replay`
//!
//! Each capture is read into memory once. `pipeline` replays it through the bare pipeline
//! (reassembly, HTTP, WebSocket; events dropped); `monitor` through the whole `Monitor` with the
//! captures' JWT secret and Open WebUI database, exactly as `webui-monitor replay` would.
//! Throughput is in exchanges, so criterion's "elem/s" is exchanges/s and the two lines of a
//! capture give the cost of attribution (`monitor` as a share of `pipeline`). Each
//! iteration builds a fresh target, as one replay does.
use std::{path::PathBuf, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use webui_monitor::{config::Config, db};
use webui_monitor_core::{
    Monitor, MonitorConfig,
    openwebui::Directory,
    replay::{PipelineOnly, ReplayTarget, replay_into},
    secret::Secret,
};

const SECRET: &[u8] = b"owui-test-secret-key-0123456789abcdef";
const PORT: u16 = 8080;
const CAPTURES: [&str; 5] = [
    "setup",
    "setup_model_access",
    "browser",
    "script_jwt",
    "script_apikey",
];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui")
}

fn replay(capture: &[u8], target: &mut impl ReplayTarget) -> u64 {
    replay_into(capture, &[PORT], target, |_| {}, |_| {})
        .expect("fixture replays")
        .exchanges
}

/// Replays each capture into its own target; returns the targets so that dropping them is not
/// timed.
fn replay_all<T: ReplayTarget>(captures: &[&[u8]], mut targets: Vec<T>) -> Vec<T> {
    for (capture, target) in captures.iter().zip(&mut targets) {
        replay(capture, target);
    }
    targets
}

fn monitor(config: &MonitorConfig, directory: &Arc<Directory>) -> Monitor {
    let registry = prometheus::Registry::new();
    let mut monitor =
        Monitor::new(config, Some(&Secret::new(SECRET)), &registry).expect("metrics register");
    monitor.set_directory(Some(Arc::clone(directory)));
    monitor
}

fn bench(c: &mut Criterion) {
    let config = Config::default()
        .monitor_config()
        .expect("the defaults price nothing");
    let directory = Arc::new(db::load(&fixture_dir().join("webui.db")).expect("fixture database"));
    let captures: Vec<(&str, Vec<u8>)> = CAPTURES
        .iter()
        .map(|name| {
            let path = fixture_dir().join(format!("{name}.pcap"));
            (*name, std::fs::read(&path).expect("fixture capture"))
        })
        .collect();
    // Every capture in sequence, as one iteration: the mix the fixtures were recorded as.
    let all: Vec<&[u8]> = captures.iter().map(|(_, c)| c.as_slice()).collect();
    let total: u64 = all
        .iter()
        .map(|c| replay(c, &mut PipelineOnly::new(config.pipeline.clone())))
        .sum();

    let mut group = c.benchmark_group("replay");
    // Short runs: the fixtures replay in milliseconds, and the machine is shared.
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    group.throughput(Throughput::Elements(total));
    group.bench_function("all/pipeline", |b| {
        b.iter_batched(
            || {
                all.iter()
                    .map(|_| PipelineOnly::new(config.pipeline.clone()))
                    .collect()
            },
            |targets| replay_all(&all, targets),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("all/monitor", |b| {
        b.iter_batched(
            || all.iter().map(|_| monitor(&config, &directory)).collect(),
            |targets| replay_all(&all, targets),
            BatchSize::SmallInput,
        )
    });
    for (name, capture) in &captures {
        let exchanges = replay(capture, &mut PipelineOnly::new(config.pipeline.clone()));
        group.throughput(Throughput::Elements(exchanges));
        group.bench_function(format!("{name}/pipeline"), |b| {
            b.iter_batched(
                || PipelineOnly::new(config.pipeline.clone()),
                |mut p| {
                    replay(capture, &mut p);
                    p
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("{name}/monitor"), |b| {
            b.iter_batched(
                || monitor(&config, &directory),
                |mut m| {
                    replay(capture, &mut m);
                    m
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
