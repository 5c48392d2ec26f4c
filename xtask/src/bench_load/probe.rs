//! What the benchmark reads off the running processes: CPU time and RSS from `/proc`, the
//! kernel programs' run time from the daemon's BPF file descriptors, the daemon's metrics, and
//! wrk's summary line.
use std::{collections::BTreeMap, fs};

use anyhow::Context as _;

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/PID/stat without a command name")?
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of proc_pid_stat(5), i.e. 11 and 12 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("/proc/PID/stat too short")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    // SAFETY: sysconf only reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / per_second as f64)
}

/// Resident set size of a process, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// What the scheduler did with a thread, or with a set of them summed
/// (`/proc/PID/task/TID/schedstat`: time on a CPU, time runnable but waiting on a run queue,
/// times it was given a CPU; `sched_info` in Documentation/scheduler/sched-stats.rst).
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Sched {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub slices: u64,
}

impl std::ops::Sub for Sched {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
            slices: self.slices.saturating_sub(earlier.slices),
        }
    }
}

impl std::ops::Add for Sched {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            run_ns: self.run_ns + other.run_ns,
            wait_ns: self.wait_ns + other.wait_ns,
            slices: self.slices + other.slices,
        }
    }
}

/// The scheduler's statistics of `pid`'s main thread (the daemon's capture loop runs there)
/// and of all its threads together.
pub fn sched(pid: u32) -> anyhow::Result<(Sched, Sched)> {
    let mut main = Sched::default();
    let mut all = Sched::default();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Ok(text) = fs::read_to_string(entry.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        let thread = parse_schedstat(&text).context("/proc/PID/task/TID/schedstat")?;
        if entry.file_name().to_str() == Some(&pid.to_string()) {
            main = thread;
        }
        all = all + thread;
    }
    Ok((main, all))
}

fn parse_schedstat(text: &str) -> Option<Sched> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some(Sched {
        run_ns: fields.next()??,
        wait_ns: fields.next()??,
        slices: fields.next()??,
    })
}

/// Run time and run count, summed over the BPF programs a process holds.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct ProgramStats {
    pub run_time_ns: u64,
    pub run_count: u64,
}

impl std::ops::Sub for ProgramStats {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
            run_count: self.run_count.saturating_sub(earlier.run_count),
        }
    }
}

/// The kernel's statistics of every BPF program `pid` holds a descriptor of: a program's
/// fdinfo has `prog_id`, `run_time_ns` and `run_cnt` (`bpf_prog_show_fdinfo()` in
/// kernel/bpf/syscall.c), which count while `kernel.bpf_stats_enabled` is 1. Link descriptors
/// name a `prog_id` too but carry no run time; each program counts once.
pub fn program_stats(pid: u32) -> anyhow::Result<ProgramStats> {
    let mut programs = BTreeMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(text) = fs::read_to_string(entry?.path()) else {
            continue; // closed meanwhile
        };
        if let Some((id, stats)) = parse_fdinfo(&text) {
            programs.insert(id, stats);
        }
    }
    Ok(programs
        .values()
        .fold(ProgramStats::default(), |sum, p| ProgramStats {
            run_time_ns: sum.run_time_ns + p.run_time_ns,
            run_count: sum.run_count + p.run_count,
        }))
}

fn parse_fdinfo(text: &str) -> Option<(u64, ProgramStats)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((
        field("prog_id")?,
        ProgramStats {
            run_time_ns: field("run_time_ns")?,
            run_count: field("run_cnt")?,
        },
    ))
}

/// The sum of every sample of the family `name` in a Prometheus text exposition.
pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    metric_sum_where(exposition, name, "")
}

/// The sum of the samples of the family `name` whose line contains `label` (`key="value"`).
pub fn metric_sum_where(exposition: &str, name: &str, label: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains(label))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = match rest.as_bytes().first()? {
                b'{' => rest.rsplit_once('}')?.1,
                b' ' => rest,
                _ => return None, // another family sharing the prefix
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// wrk's results, from the line the benchmark's `done()` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Wrk {
    pub requests: u64,
    pub seconds: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Connect, read, write errors, non-2xx/3xx answers and timeouts together.
    pub errors: u64,
}

impl Wrk {
    pub fn parse(output: &str) -> anyhow::Result<Self> {
        let line = output
            .lines()
            .find_map(|l| l.strip_prefix("bench-load: "))
            .with_context(|| format!("no summary line in wrk's output:\n{output}"))?;
        let fields: BTreeMap<&str, f64> = line
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .with_context(|| format!("no {k} in wrk's summary: {line}"))
        };
        let mut errors = 0.0;
        for k in [
            "connect_errors",
            "read_errors",
            "write_errors",
            "status_errors",
            "timeouts",
        ] {
            errors += get(k)?;
        }
        Ok(Self {
            requests: get("requests")? as u64,
            seconds: get("duration_us")? / 1e6,
            p50_us: get("p50_us")?,
            p99_us: get("p99_us")?,
            errors: errors as u64,
        })
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_of_a_program_and_of_others() {
        let program = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nprog_type:\t6\n\
                       prog_jited:\t1\nprog_tag:\t7a8f0c2a7e3b6a1d\nmemlock:\t8192\nprog_id:\t42\n\
                       run_time_ns:\t123456\nrun_cnt:\t789\nrecursion_misses:\t0\nverified_insns:\t900\n";
        assert_eq!(
            parse_fdinfo(program),
            Some((
                42,
                ProgramStats {
                    run_time_ns: 123_456,
                    run_count: 789
                }
            ))
        );
        let link =
            "pos:\t0\nflags:\t02000000\nlink_type:\txdp\nlink_id:\t7\nprog_tag:\tx\nprog_id:\t42\n";
        assert_eq!(parse_fdinfo(link), None);
        let map = "pos:\t0\nmap_type:\t27\nkey_size:\t0\nmap_id:\t5\n";
        assert_eq!(parse_fdinfo(map), None);
    }

    #[test]
    fn sums_one_family() {
        let exposition = "# HELP x\n\
            openwebui_http_requests_total{method=\"POST\",route=\"/api/chat/completions\",status=\"200\"} 1000\n\
            openwebui_http_requests_total{method=\"GET\",route=\"other\",status=\"200\"} 5\n\
            openwebui_http_requests_total_other 7\n\
            webui_monitor_capture_lost_total{reason=\"ring_full\"} 3\n\
            webui_monitor_capture_lost_total{reason=\"truncated\"} 0\n\
            up 1\n";
        assert_eq!(
            metric_sum(exposition, "openwebui_http_requests_total"),
            1005.0
        );
        assert_eq!(
            metric_sum(exposition, "webui_monitor_capture_lost_total"),
            3.0
        );
        assert_eq!(metric_sum(exposition, "up"), 1.0);
        assert_eq!(metric_sum(exposition, "missing"), 0.0);
        assert_eq!(
            metric_sum_where(
                exposition,
                "webui_monitor_capture_lost_total",
                r#"reason="ring_full""#
            ),
            3.0
        );
    }

    #[test]
    fn wrk_summary() {
        let output = "Running 8s test @ http://10.217.0.2:8080\n  2 threads and 64 connections\n\
            bench-load: requests=1452000 duration_us=8000100 p50_us=310 p99_us=1290 connect_errors=0 \
            read_errors=0 write_errors=0 status_errors=2 timeouts=1\n";
        let wrk = Wrk::parse(output).unwrap();
        assert_eq!(wrk.requests, 1_452_000);
        assert_eq!(wrk.p99_us, 1290.0);
        assert_eq!(wrk.errors, 3);
        assert!((wrk.rate() - 181_497.73).abs() < 0.01);
    }

    #[test]
    fn schedstat_fields() {
        assert_eq!(
            parse_schedstat("5063402112 1848200317 91347\n"),
            Some(Sched {
                run_ns: 5_063_402_112,
                wait_ns: 1_848_200_317,
                slices: 91_347
            })
        );
        assert_eq!(parse_schedstat("12 34\n"), None);
    }

    #[test]
    fn own_cpu_and_rss() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(rss_kib(pid).unwrap() > 0);
        let (main, all) = sched(pid).unwrap();
        assert!(main.run_ns > 0 && all.run_ns >= main.run_ns);
    }
}
