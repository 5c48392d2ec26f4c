//! `webui_monitor_tcp_*` and `webui_monitor_capture_*`: what the kernel capture saw and lost.
//!
//! The kernel keeps the authoritative totals (per-CPU counters); these families mirror them.
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Registry};
use webui_monitor_common::{CaptureStats, LossReason};
use webui_monitor_core::{
    metrics::util::{advance, counter, counter_vec, gauge, set_count},
    segment::Direction,
};

/// Label value of a [`LossReason`].
pub const fn reason_label(reason: LossReason) -> &'static str {
    match reason {
        LossReason::RingFull => "ring_full",
        LossReason::Truncated => "truncated",
        LossReason::Unparsed => "unparsed",
    }
}

/// The capture's metric families.
#[derive(Clone)]
pub struct CaptureMetrics {
    connections_total: IntCounter,
    connections_active: IntGauge,
    bytes_total: IntCounterVec,
    packets_total: IntCounterVec,
    lost_total: IntCounterVec,
    lost_bytes_total: IntCounterVec,
    skipped_bytes_total: IntCounter,
    skip_writes_total: IntCounterVec,
    ring_read_bytes: Histogram,
}

/// Buckets of `webui_monitor_capture_ring_read_bytes`: 1 KiB to 64 MiB in steps of 4×, so
/// the default ring's wakeup threshold (2 MiB, an eighth) and its size (16 MiB) fall on
/// bucket bounds.
const RING_READ_BUCKETS: [f64; 10] = [
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    2_097_152.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// What a write into the kernel's skip map did (`op` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipWrite {
    /// A span of payload not to copy.
    Skip,
    /// A connection's spans removed (it ended).
    Forget,
}

impl SkipWrite {
    const ALL: [SkipWrite; 2] = [SkipWrite::Skip, SkipWrite::Forget];

    const fn label(self) -> &'static str {
        match self {
            SkipWrite::Skip => "skip",
            SkipWrite::Forget => "forget",
        }
    }
}

impl CaptureMetrics {
    /// Registers the families, with every `direction` and `reason` series at zero.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            connections_total: counter(
                registry,
                "webui_monitor_tcp_connections_total",
                "TCP connections on a monitored port seen by the kernel capture",
            )?,
            connections_active: gauge(
                registry,
                "webui_monitor_tcp_connections_active",
                "Monitored TCP connections neither closed (FIN both ways or RST) nor idle",
            )?,
            bytes_total: counter_vec(
                registry,
                "webui_monitor_tcp_bytes_total",
                "TCP payload bytes on monitored connections",
                &["direction"],
            )?,
            packets_total: counter_vec(
                registry,
                "webui_monitor_tcp_packets_total",
                "TCP packets on monitored connections",
                &["direction"],
            )?,
            lost_total: counter_vec(
                registry,
                "webui_monitor_capture_lost_total",
                "Capture records lost before reaching userspace, by reason",
                &["reason"],
            )?,
            lost_bytes_total: counter_vec(
                registry,
                "webui_monitor_capture_lost_bytes_total",
                "Bytes lost before reaching userspace, by reason",
                &["reason"],
            )?,
            skipped_bytes_total: counter(
                registry,
                "webui_monitor_capture_skipped_bytes_total",
                "Payload bytes the kernel counted but did not copy because nothing reads them \
                 (bodies of static assets, media, uploads; capture.skip_min_bytes)",
            )?,
            skip_writes_total: counter_vec(
                registry,
                "webui_monitor_capture_skip_writes_total",
                "Writes into the kernel's skip map, by op (skip: a body's span not to copy; \
                 forget: a connection's spans removed) and result (ok, error)",
                &["op", "result"],
            )?,
            ring_read_bytes: {
                let histogram = Histogram::with_opts(
                    HistogramOpts::new(
                        "webui_monitor_capture_ring_read_bytes",
                        "Ring buffer bytes taken per read of the ring (records with their \
                         headers): how full the ring was when the daemon read it, plus what \
                         arrived while it read. _count is the number of reads",
                    )
                    .buckets(RING_READ_BUCKETS.to_vec()),
                )?;
                registry.register(Box::new(histogram.clone()))?;
                histogram
            },
        };
        // Every series exists from the start, so rate() works from the first scrape.
        for direction in Direction::ALL {
            metrics.bytes_total.with_label_values(&[direction.as_str()]);
            metrics
                .packets_total
                .with_label_values(&[direction.as_str()]);
        }
        for reason in LossReason::ALL {
            metrics
                .lost_total
                .with_label_values(&[reason_label(reason)]);
            metrics
                .lost_bytes_total
                .with_label_values(&[reason_label(reason)]);
        }
        for op in SkipWrite::ALL {
            for result in ["ok", "error"] {
                metrics
                    .skip_writes_total
                    .with_label_values(&[op.label(), result]);
            }
        }
        Ok(metrics)
    }

    /// Writes into the kernel's skip map that failed so far.
    pub fn skip_write_errors(&self) -> u64 {
        SkipWrite::ALL
            .iter()
            .map(|op| {
                self.skip_writes_total
                    .with_label_values(&[op.label(), "error"])
                    .get()
            })
            .sum()
    }

    /// One write into the kernel's skip map, and whether it succeeded.
    pub fn count_skip_write(&self, op: SkipWrite, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.skip_writes_total
            .with_label_values(&[op.label(), result])
            .inc();
    }

    /// One read of the ring that took `bytes` of it.
    pub fn observe_ring_read(&self, bytes: u64) {
        self.ring_read_bytes.observe(bytes as f64);
    }

    /// Mirrors the kernel totals (summed over CPUs) and the active-connection count.
    pub fn observe(&self, totals: &CaptureStats, active_connections: u64) {
        advance(&self.connections_total, totals.connections);
        for direction in Direction::ALL {
            let i = direction.index();
            let label = [direction.as_str()];
            advance(&self.bytes_total.with_label_values(&label), totals.bytes[i]);
            advance(
                &self.packets_total.with_label_values(&label),
                totals.packets[i],
            );
        }
        for reason in LossReason::ALL {
            let label = [reason_label(reason)];
            let i = reason as usize;
            advance(
                &self.lost_total.with_label_values(&label),
                totals.lost_records[i],
            );
            advance(
                &self.lost_bytes_total.with_label_values(&label),
                totals.lost_bytes[i],
            );
        }
        advance(&self.skipped_bytes_total, totals.skipped_bytes);
        set_count(&self.connections_active, active_connections);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webui_monitor_core::metrics::util::render;

    #[test]
    fn mirrors_kernel_totals() {
        let registry = Registry::new();
        let metrics = CaptureMetrics::register(&registry).unwrap();
        let mut totals = CaptureStats {
            packets: [3, 4],
            bytes: [100, 2000],
            connections: 2,
            lost_records: [1, 0, 5],
            lost_bytes: [1984, 0, 300],
            records: 9,
            skipped_bytes: 4096,
        };
        metrics.observe(&totals, 1);
        metrics.count_skip_write(SkipWrite::Skip, true);
        metrics.observe_ring_read(3000);
        metrics.observe_ring_read(0);
        totals.bytes[0] = 150;
        metrics.observe(&totals, 0);
        let text = render(&registry);
        for line in [
            "webui_monitor_tcp_connections_total 2",
            "webui_monitor_tcp_connections_active 0",
            "webui_monitor_tcp_bytes_total{direction=\"request\"} 150",
            "webui_monitor_tcp_bytes_total{direction=\"response\"} 2000",
            "webui_monitor_tcp_packets_total{direction=\"request\"} 3",
            "webui_monitor_tcp_packets_total{direction=\"response\"} 4",
            "webui_monitor_capture_lost_total{reason=\"ring_full\"} 1",
            "webui_monitor_capture_lost_total{reason=\"truncated\"} 0",
            "webui_monitor_capture_lost_total{reason=\"unparsed\"} 5",
            "webui_monitor_capture_lost_bytes_total{reason=\"ring_full\"} 1984",
            "webui_monitor_capture_lost_bytes_total{reason=\"unparsed\"} 300",
            "webui_monitor_capture_skipped_bytes_total 4096",
            "webui_monitor_capture_skip_writes_total{op=\"skip\",result=\"ok\"} 1",
            "webui_monitor_capture_skip_writes_total{op=\"forget\",result=\"error\"} 0",
            "webui_monitor_capture_ring_read_bytes_bucket{le=\"1024\"} 1",
            "webui_monitor_capture_ring_read_bytes_bucket{le=\"4096\"} 2",
            "webui_monitor_capture_ring_read_bytes_sum 3000",
            "webui_monitor_capture_ring_read_bytes_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
