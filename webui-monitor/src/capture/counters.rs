//! Reading the kernel's counters: per-CPU totals and the per-connection table.
use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, MapError, PerCpuArray};
use webui_monitor_common::{
    CaptureStats, ConnKey, ConnStats, LOSS_REASONS, LossReason, SEEN_FIN, SEEN_RESPONSE_SHIFT,
    SEEN_RST,
};

/// Sums per-CPU counters.
pub fn sum<'a>(per_cpu: impl IntoIterator<Item = &'a CaptureStats>) -> CaptureStats {
    let mut total = CaptureStats::default();
    for cpu in per_cpu {
        for d in 0..2 {
            total.packets[d] += cpu.packets[d];
            total.bytes[d] += cpu.bytes[d];
        }
        total.connections += cpu.connections;
        for r in 0..LOSS_REASONS {
            total.lost_records[r] += cpu.lost_records[r];
            total.lost_bytes[r] += cpu.lost_bytes[r];
        }
        total.records += cpu.records;
        total.skipped_bytes += cpu.skipped_bytes;
    }
    total
}

/// The kernel's totals now, summed over CPUs.
pub fn read_totals(stats: &PerCpuArray<MapData, CaptureStats>) -> Result<CaptureStats, MapError> {
    Ok(sum(stats.get(&0, 0)?.iter()))
}

/// Logs the kernel's losses: the programs count them and never log, so the daemon says when a
/// loss counter moved — at once the first time, then at most once per [`LossLog::INTERVAL`]
/// per reason, with what was lost since the last line.
#[derive(Debug, Default)]
pub struct LossLog {
    /// Records and bytes lost per reason as of the last line (or the start).
    reported: [(u64, u64); LOSS_REASONS],
    last_line: [Option<Instant>; LOSS_REASONS],
}

impl LossLog {
    /// The shortest time between two lines of one reason.
    pub const INTERVAL: Duration = Duration::from_secs(60);

    /// Compares `totals` with what was last reported and returns the lines to log now.
    pub fn lines(&mut self, totals: &CaptureStats, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for reason in LossReason::ALL {
            let i = reason as usize;
            let (records, bytes) = (totals.lost_records[i], totals.lost_bytes[i]);
            let (reported_records, reported_bytes) = self.reported[i];
            let due = self.last_line[i].is_none_or(|at| now.duration_since(at) >= Self::INTERVAL);
            if records <= reported_records || !due {
                continue;
            }
            let (new_records, new_bytes) = (records - reported_records, bytes - reported_bytes);
            lines.push(format!(
                "capture lost {new_records} record(s), {new_bytes} payload bytes: {}",
                loss_advice(reason)
            ));
            self.reported[i] = (records, bytes);
            self.last_line[i] = Some(now);
        }
        lines
    }
}

/// What a loss of `reason` means and what to do about it.
fn loss_advice(reason: LossReason) -> &'static str {
    match reason {
        LossReason::RingFull => {
            "the ring buffer was full (the daemon read too slowly); raise capture.ring_bytes or \
             give the daemon more CPU (webui_monitor_capture_lost_total{reason=\"ring_full\"})"
        }
        LossReason::Truncated => {
            "a segment was larger than 34 records hold (BIG TCP) or its payload could not be \
             read (webui_monitor_capture_lost_total{reason=\"truncated\"})"
        }
        LossReason::Unparsed => {
            "packets on a monitored port had headers the capture does not read (IP fragments, \
             more than two VLAN tags or four IPv6 extension headers, malformed) \
             (webui_monitor_capture_lost_total{reason=\"unparsed\"})"
        }
    }
}

/// A connection counts as active until it is closed (RST either way, or FIN both ways) or idle
/// for `idle_ns` (entries of vanished peers stay in the LRU table until evicted).
pub fn is_active(stats: &ConnStats, now_coarse_ns: u64, idle_ns: u64) -> bool {
    let fin_both = SEEN_FIN | (SEEN_FIN << SEEN_RESPONSE_SHIFT);
    let rst_any = SEEN_RST | (SEEN_RST << SEEN_RESPONSE_SHIFT);
    let closed = stats.flags & fin_both == fin_both || stats.flags & rst_any != 0;
    !closed && now_coarse_ns.saturating_sub(stats.last_seen_ns) < idle_ns
}

/// Counts the active connections in the kernel's table.
pub fn count_active(
    connections: &HashMap<MapData, ConnKey, ConnStats>,
    now_coarse_ns: u64,
    idle_ns: u64,
) -> u64 {
    connections
        .iter()
        // An entry evicted between two iteration steps is simply not counted.
        .filter_map(Result::ok)
        .filter(|(_, stats)| is_active(stats, now_coarse_ns, idle_ns))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use webui_monitor_common::SEEN_SYN;

    #[test]
    fn sums_cpus() {
        let a = CaptureStats {
            packets: [1, 2],
            bytes: [10, 20],
            connections: 1,
            lost_records: [1, 2, 3],
            lost_bytes: [4, 5, 6],
            records: 7,
            skipped_bytes: 8,
        };
        let total = sum([&a, &a, &CaptureStats::default()]);
        assert_eq!(
            total,
            CaptureStats {
                packets: [2, 4],
                bytes: [20, 40],
                connections: 2,
                lost_records: [2, 4, 6],
                lost_bytes: [8, 10, 12],
                records: 14,
                skipped_bytes: 16,
            }
        );
    }

    #[test]
    fn activity() {
        let open = ConnStats {
            last_seen_ns: 1_000,
            flags: SEEN_SYN | (SEEN_SYN << SEEN_RESPONSE_SHIFT),
            ..ConnStats::default()
        };
        assert!(is_active(&open, 1_500, 1_000));
        assert!(!is_active(&open, 2_000, 1_000), "idle");
        let half_closed = ConnStats {
            flags: open.flags | SEEN_FIN,
            ..open
        };
        assert!(is_active(&half_closed, 1_500, 1_000));
        let closed = ConnStats {
            flags: half_closed.flags | (SEEN_FIN << SEEN_RESPONSE_SHIFT),
            ..open
        };
        assert!(!is_active(&closed, 1_500, 1_000));
        let reset = ConnStats {
            flags: open.flags | (SEEN_RST << SEEN_RESPONSE_SHIFT),
            ..open
        };
        assert!(!is_active(&reset, 1_500, 1_000));
    }

    #[test]
    fn losses_are_logged_at_once_then_at_most_once_a_minute() {
        let start = Instant::now();
        let mut log = LossLog::default();
        let mut totals = CaptureStats::default();
        assert!(log.lines(&totals, start).is_empty());
        totals.lost_records[LossReason::RingFull as usize] = 3;
        totals.lost_bytes[LossReason::RingFull as usize] = 4_500;
        let lines = log.lines(&totals, start);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("capture lost 3 record(s), 4500 payload bytes: the ring buffer"),
            "{lines:?}"
        );
        totals.lost_records[LossReason::RingFull as usize] = 5;
        totals.lost_bytes[LossReason::RingFull as usize] = 7_000;
        totals.lost_records[LossReason::Unparsed as usize] = 1;
        totals.lost_bytes[LossReason::Unparsed as usize] = 60;
        let lines = log.lines(&totals, start + Duration::from_secs(1));
        assert_eq!(lines.len(), 1, "only the new reason: {lines:?}");
        assert!(lines[0].starts_with("capture lost 1 record(s), 60 payload bytes: packets"));
        let lines = log.lines(&totals, start + LossLog::INTERVAL);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("capture lost 2 record(s), 2500 payload bytes: the ring"),
            "what was lost since the last line: {lines:?}"
        );
        assert!(log.lines(&totals, start + 3 * LossLog::INTERVAL).is_empty());
    }
}
