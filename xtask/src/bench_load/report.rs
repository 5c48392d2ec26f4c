//! The benchmark's Markdown report: one table per workload (each round and the median), and
//! the daemon's RSS per idle connection.
use std::fmt::Write as _;

use super::{NICE, Options, Round, THREADS, Workload};

/// Median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn render(options: &Options, results: &[Vec<Round>], idle: &[(u32, u64)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## cargo xtask bench-load\n\nwrk: {} keep-alive connections, {THREADS} \
         threads, {} s per run; each round runs each workload detached, then attached (a fresh \
         daemon, capture.skip_min_bytes = {}). Kernel programs timed with kernel.bpf_stats_enabled=1. \
         Everything at nice {NICE}{}{}.",
        options.connections,
        options.seconds,
        options.skip_min_bytes,
        if options.daemon_nice == 0 {
            String::new()
        } else {
            format!(", the daemon at {}", NICE + options.daemon_nice)
        },
        if options.daemon_settings.is_empty() {
            String::new()
        } else {
            format!("; daemon settings {}", options.daemon_settings.join(", "))
        },
    );
    for (workload, rounds) in Workload::ALL.iter().zip(results) {
        let _ = writeln!(out, "\n### {}: {}\n", workload.name(), workload.describe());
        let header: Vec<String> = (1..=rounds.len()).map(|r| format!("round {r}")).collect();
        let _ = writeln!(out, "| | {} | median |", header.join(" | "));
        let _ = writeln!(out, "|---|{}---:|", "---:|".repeat(rounds.len()));
        let row = |out: &mut String, name: &str, cell: &dyn Fn(&Round) -> String, mid: String| {
            let cells: Vec<String> = rounds.iter().map(cell).collect();
            let _ = writeln!(out, "| {name} | {} | {mid} |", cells.join(" | "));
        };
        let med = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
        row(
            &mut out,
            "requests/s, detached → attached",
            &|r| {
                format!(
                    "{:.1}k → {:.1}k",
                    r.detached.wrk.rate() / 1e3,
                    r.attached.wrk.rate() / 1e3
                )
            },
            format!(
                "{:.1}k → {:.1}k",
                med(&|r| r.detached.wrk.rate()) / 1e3,
                med(&|r| r.attached.wrk.rate()) / 1e3
            ),
        );
        let ratio = |r: &Round| r.attached.wrk.rate() / r.detached.wrk.rate() * 100.0;
        row(
            &mut out,
            "attached ÷ detached",
            &|r| format!("{:.1} %", ratio(r)),
            format!("{:.1} %", med(&ratio)),
        );
        row(
            &mut out,
            "p99 latency, detached → attached",
            &|r| {
                format!(
                    "{:.2} → {:.2} ms",
                    r.detached.wrk.p99_us / 1e3,
                    r.attached.wrk.p99_us / 1e3
                )
            },
            format!(
                "{:.2} → {:.2} ms",
                med(&|r| r.detached.wrk.p99_us) / 1e3,
                med(&|r| r.attached.wrk.p99_us) / 1e3
            ),
        );
        let cpu = |r: &Round| r.cost().cpu_seconds * 1e6 / r.cost().counted.max(1) as f64;
        row(
            &mut out,
            "daemon CPU per request counted",
            &|r| format!("{:.2} µs", cpu(r)),
            format!("{:.2} µs", med(&cpu)),
        );
        let kernel =
            |r: &Round| r.cost().kernel.run_time_ns as f64 / r.attached.served.max(1) as f64;
        row(
            &mut out,
            "kernel programs per request",
            &|r| format!("{:.0} ns", kernel(r)),
            format!("{:.0} ns", med(&kernel)),
        );
        let runs = |r: &Round| r.cost().kernel.run_count as f64 / r.attached.served.max(1) as f64;
        row(
            &mut out,
            "program runs (packets) per request",
            &|r| format!("{:.2}", runs(r)),
            format!("{:.2}", med(&runs)),
        );
        row(
            &mut out,
            "requests served (nginx) / counted (daemon)",
            &|r| {
                format!(
                    "{} / {}",
                    thousands(r.attached.served),
                    thousands(r.cost().counted)
                )
            },
            String::new(),
        );
        row(
            &mut out,
            "JWTs verified",
            &|r| thousands(r.cost().verified),
            String::new(),
        );
        row(
            &mut out,
            "records lost",
            &|r| thousands(r.cost().lost),
            String::new(),
        );
        let share = |r: &Round| r.cost().counted as f64 * 100.0 / r.attached.served.max(1) as f64;
        row(
            &mut out,
            "counted ÷ served",
            &|r| format!("{:.1} %", share(r)),
            format!("{:.1} %", med(&share)),
        );
        let per_second = |r: &Round, ns: u64| ns as f64 / 1e9 / r.cost().wall_seconds.max(1e-9);
        let wait = |r: &Round| per_second(r, r.cost().capture_thread.wait_ns);
        row(
            &mut out,
            "capture thread: on a CPU / waiting for one, s per s",
            &|r| {
                let t = r.cost().capture_thread;
                format!("{:.2} / {:.2}", per_second(r, t.run_ns), wait(r))
            },
            format!("– / {:.2}", med(&wait)),
        );
        let wait_per_slice = |r: &Round| {
            let t = r.cost().capture_thread;
            t.wait_ns as f64 / 1e3 / t.slices.max(1) as f64
        };
        row(
            &mut out,
            "capture thread: times run per s, mean wait before each",
            &|r| {
                format!(
                    "{:.0} / {:.0} µs",
                    r.cost().capture_thread.slices as f64 / r.cost().wall_seconds.max(1e-9),
                    wait_per_slice(r)
                )
            },
            format!("– / {:.0} µs", med(&wait_per_slice)),
        );
        row(
            &mut out,
            "all daemon threads: on a CPU / waiting for one, s per s",
            &|r| {
                let t = r.cost().threads;
                format!(
                    "{:.2} / {:.2}",
                    per_second(r, t.run_ns),
                    per_second(r, t.wait_ns)
                )
            },
            String::new(),
        );
        let reads = |r: &Round| r.cost().ring_reads as f64 / r.cost().wall_seconds.max(1e-9);
        row(
            &mut out,
            "ring reads per s, mean KiB taken per read",
            &|r| {
                format!(
                    "{:.0} / {:.0} KiB",
                    reads(r),
                    r.cost().ring_read_bytes as f64 / 1024.0 / r.cost().ring_reads.max(1) as f64
                )
            },
            format!("{:.0} / –", med(&reads)),
        );
        row(
            &mut out,
            "wrk errors, detached / attached",
            &|r| format!("{} / {}", r.detached.wrk.errors, r.attached.wrk.errors),
            String::new(),
        );
        let rss = |r: &Round| r.cost().rss_kib as f64 / 1024.0;
        row(
            &mut out,
            "daemon RSS after the run",
            &|r| format!("{:.1} MiB", rss(r)),
            format!("{:.1} MiB", med(&rss)),
        );
    }
    if let Some(&(_, base)) = idle.first()
        && idle.len() > 1
    {
        let _ = writeln!(
            out,
            "\n### idle keep-alive connections (one GET /api/config each, then silent), with \
             a fresh daemon\n\n| connections | daemon RSS | per connection |\n|---:|---:|---:|"
        );
        for &(count, kib) in idle {
            let per = if count == 0 {
                String::new()
            } else {
                format!("{:+.2} KiB", (kib as f64 - base as f64) / f64::from(count))
            };
            let _ = writeln!(
                out,
                "| {} | {:.1} MiB | {per} |",
                thousands(u64::from(count)),
                kib as f64 / 1024.0
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_thousands() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(thousands(2_055_638), "2,055,638");
        assert_eq!(thousands(638), "638");
        assert_eq!(thousands(1_000), "1,000");
    }
}
