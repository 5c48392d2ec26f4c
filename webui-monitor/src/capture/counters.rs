//! Reading the kernel's counters: per-CPU totals and the per-connection table.
use aya::maps::{HashMap, MapData, MapError, PerCpuArray};
use webui_monitor_common::{
    CaptureStats, ConnKey, ConnStats, LOSS_REASONS, SEEN_FIN, SEEN_RESPONSE_SHIFT, SEEN_RST,
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
    }
    total
}

/// The kernel's totals now, summed over CPUs.
pub fn read_totals(stats: &PerCpuArray<MapData, CaptureStats>) -> Result<CaptureStats, MapError> {
    Ok(sum(stats.get(&0, 0)?.iter()))
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
            lost_records: [1, 2, 3, 4],
            lost_bytes: [4, 5, 6, 7],
            records: 7,
        };
        let total = sum([&a, &a, &CaptureStats::default()]);
        assert_eq!(
            total,
            CaptureStats {
                packets: [2, 4],
                bytes: [20, 40],
                connections: 2,
                lost_records: [2, 4, 6, 8],
                lost_bytes: [8, 10, 12, 14],
                records: 14,
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
}
