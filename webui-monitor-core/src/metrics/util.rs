//! Registration and export helpers shared by the metric domains, the core's and a shell's own
//! (the daemon's kernel-capture families).
//!
//! The engines keep plain cumulative `u64` totals (sans-IO, no Prometheus on the hot path);
//! the metric structs copy those totals into Prometheus counters before each scrape, which is
//! what [`advance`] does.
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry, core::Collector};

/// Registers `collector` and hands it back, so that a struct field can be built in one
/// expression.
pub fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> prometheus::Result<C> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

/// A registered label-less counter.
pub fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(registry, IntCounter::new(name, help)?)
}

/// A registered counter family with `labels`.
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

/// A registered label-less gauge.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(registry, IntGauge::new(name, help)?)
}

/// Raises `counter` to `total`, a cumulative total kept outside Prometheus. Never lowers it:
/// Prometheus counters only grow, and the sources only grow while the monitor runs.
pub fn advance(counter: &IntCounter, total: u64) {
    let delta = total.saturating_sub(counter.get());
    if delta > 0 {
        counter.inc_by(delta);
    }
}

/// Sets a gauge from an unsigned count, saturating where `i64` ends.
pub fn set_count(gauge: &IntGauge, count: impl TryInto<i64>) {
    gauge.set(count.try_into().unwrap_or(i64::MAX));
}

/// The registry in the Prometheus text format, for assertions on exact lines.
pub fn render(registry: &Registry) -> String {
    use prometheus::{Encoder, TextEncoder};
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding of a registry");
    String::from_utf8(out).expect("the text format is UTF-8")
}
