//! The capture's event loop: ring records into the pipeline, kernel counters into the metrics.
use std::{future::Future, time::Duration};

use tokio::time::{MissedTickBehavior, interval};

use super::{Capture, CaptureConfig, CaptureError, clock::BootClock};
use crate::{
    metrics::capture::CaptureMetrics,
    pipeline::{Pipeline, PipelineEvent},
};

/// Userspace-side tallies of one run (the kernel's are in the metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub records: u64,
    /// Records that did not decode (a mismatched object: never expected).
    pub decode_errors: u64,
}

/// Runs until `shutdown` completes, then detaches, drains what the ring still holds and
/// finishes the pipeline.
pub async fn run(
    capture: &mut Capture,
    pipeline: &mut Pipeline,
    metrics: &CaptureMetrics,
    config: &CaptureConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, CaptureError> {
    let mut summary = RunSummary::default();
    let mut clock = BootClock::sample()?;
    let mut events = Vec::new();
    let mut stats_tick = interval(nonzero(config.stats_interval));
    stats_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut active_tick = interval(nonzero(config.active_scan_interval));
    active_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut active = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            ready = capture.readable() => {
                ready?;
                drain(capture, pipeline, &clock, &mut events, &mut summary);
            }
            _ = stats_tick.tick() => {
                // Re-sampled so NTP steps of the wall clock reach the timestamps.
                clock = BootClock::sample()?;
                metrics.observe(&capture.totals()?, active);
                pipeline.on_tick(clock.to_epoch(super::clock::boot_now_ns()?), &mut events);
                events.clear();
            }
            _ = active_tick.tick() => {
                active = capture.count_active(config.idle_timeout)?;
            }
        }
    }
    let detached = capture.detach();
    drain(capture, pipeline, &clock, &mut events, &mut summary);
    metrics.observe(&capture.totals()?, 0);
    pipeline.finish(clock.to_epoch(super::clock::boot_now_ns()?), &mut events);
    events.clear();
    detached.map(|()| summary)
}

fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(10))
}

fn drain(
    capture: &mut Capture,
    pipeline: &mut Pipeline,
    clock: &BootClock,
    events: &mut Vec<PipelineEvent>,
    summary: &mut RunSummary,
) {
    capture.drain(|record| match record {
        Ok(record) => {
            summary.records += 1;
            pipeline.on_segment(&record.segment(clock), events);
            // TODO(lead): hand the events to the Open WebUI layer once it exists.
            events.clear();
        }
        Err(error) => {
            if summary.decode_errors == 0 {
                log::warn!("undecodable ring record ({error}); the eBPF object does not match");
            }
            summary.decode_errors += 1;
        }
    });
}
