//! `cargo xtask bench-kernel`: ns per packet of the XDP program via BPF_PROG_TEST_RUN, as the
//! delta over a trivial XDP_PASS program from the same object.
//!
//! Every case runs 1,000,000 times per round, in [`ROUNDS`] rounds; each round measures the
//! baseline again, and the table shows the median over rounds of each case and of its delta
//! over its round's baseline (a 2-vCPU guest drifts by more than the smallest target between
//! runs). Cases that write ring records run in batches that fit the ring, drained between
//! batches (the kernel reports the mean per repetition of a batch): the ring's memory is cold,
//! as after a burst. Two more cases have the production shape: the default ring, read while
//! the program runs by the daemon's loop on another CPU; the capture program, and the ring copy
//! alone (the floor of any program that hands the payload over through the ring).
//!
//! The benchmark pins itself to CPU 0 (the concurrent reader to CPU 1): a baseline measured on one
//! vCPU and a case on another differ by more than the smallest target.
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use aya::programs::{TestRun, TestRunOptions};
use tokio::io::{Interest, unix::AsyncFd};
use webui_monitor::capture::{Capture, CaptureConfig, Record, counters, loader};
use webui_monitor_common::{BASELINE_PROGRAM, BENCH_RING_COPY_PROGRAM, XDP_PROGRAM};
use webui_monitor_tests::frame::{Ip, Tcp, frame, pattern};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 7;
/// 256 MiB: batches of 100,000 full-MTU records (1,544 bytes of ring each) fit.
const RING_BYTES: u32 = 256 << 20;
const BATCH: u32 = 100_000;

fn tcp(dst_port: u16, flags: u8, payload: Vec<u8>) -> Tcp {
    Tcp {
        src_port: 40000,
        dst_port,
        seq: 1,
        flags,
        payload,
        ..Tcp::default()
    }
}

/// Mean ns per run of `program` on `data` over [`REPEAT`] runs in batches of `batch`.
fn mean_ns(
    capture: &mut Capture,
    program: &'static str,
    data: &[u8],
    batch: u32,
) -> anyhow::Result<f64> {
    let mut total = 0f64;
    let mut runs = 0u32;
    while runs < REPEAT {
        let result = loader::xdp(capture.ebpf_mut(), program)?.test_run(TestRunOptions {
            data_in: Some(data),
            repeat: batch,
            ..TestRunOptions::default()
        })?;
        total += result.duration.as_nanos() as f64 * f64::from(batch);
        runs += batch;
        capture.drain(|_| {});
    }
    Ok(total / f64::from(runs))
}

struct Case {
    name: &'static str,
    program: &'static str,
    data: Vec<u8>,
    batch: u32,
    /// Target for the delta over the baseline, if the issue sets one.
    target: Option<f64>,
    /// (ns, delta) per round.
    rounds: Vec<(f64, f64)>,
}

fn pin_to_cpu(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// ns per run of `program` on `data` with the default configuration while a reader on CPU 1
/// waits and drains like the daemon (`Capture::readable`: woken by the kernel, or every
/// `drain_interval`; the daemon's back-off while the ring stays empty never starts under
/// this constant load); and the records lost meanwhile.
fn with_concurrent_reader(program: &'static str, data: &[u8]) -> anyhow::Result<(f64, u64)> {
    let config = CaptureConfig::default();
    let mut ebpf = loader::load(&config)?;
    if program != XDP_PROGRAM {
        loader::xdp(&mut ebpf, program)?.load()?;
    }
    let maps = loader::take_maps(&mut ebpf)?;
    let ring = maps.ring;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> anyhow::Result<u64> {
            pin_to_cpu(1)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                // SAFETY: the RingBuf owns its fd and keeps it open while the AsyncFd owns it.
                let mut ring =
                    unsafe { AsyncFd::register_with_interest(RingFd(ring), Interest::READABLE) }?;
                let mut read = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(guard) =
                        tokio::time::timeout(config.drain_interval, ring.readable_mut()).await
                    {
                        guard?.clear_ready();
                    }
                    while let Some(item) = ring.get_mut().0.next() {
                        std::hint::black_box(Record::decode(&item)).ok();
                        read += 1;
                    }
                }
                Ok(read)
            })
        })
    };
    let result = loader::xdp(&mut ebpf, program)?.test_run(TestRunOptions {
        data_in: Some(data),
        repeat: REPEAT,
        ..TestRunOptions::default()
    });
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader thread")?;
    let ns = result?.duration.as_nanos() as f64;
    Ok((ns, counters::read_totals(&maps.stats)?.lost_records[0]))
}

/// The ring as something tokio can poll (as in `Capture`).
struct RingFd(aya::maps::RingBuf<aya::maps::MapData>);

impl std::os::fd::AsRawFd for RingFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn min(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(f64::INFINITY, f64::min)
}

/// One table row: median ns, median and smallest delta, every round's delta.
fn row(name: &str, rounds: &[(f64, f64)], target: Option<f64>) -> String {
    let ns = median(rounds.iter().map(|r| r.0).collect());
    let delta = median(rounds.iter().map(|r| r.1).collect());
    let least = min(rounds.iter().map(|r| r.1));
    let per_round = rounds
        .iter()
        .map(|r| format!("{:+.0}", r.1))
        .collect::<Vec<_>>()
        .join(" ");
    let target = target.map_or("—".to_owned(), |t| format!("≤ +{t} ns"));
    format!("| {name} | {ns:.1} | {delta:+.1} ns | {least:+.1} ns | {per_round} | {target} |")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism()?.get();
    pin_to_cpu(0)?;
    // BENCH_KERNEL_SKIP_MIN_BYTES=8192: the programs that consult the skip map (with no span
    // in it: the lookup every payload packet pays).
    let skip_min_bytes = std::env::var("BENCH_KERNEL_SKIP_MIN_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut capture = Capture::load(&CaptureConfig {
        ring_bytes: RING_BYTES,
        skip_min_bytes,
        ..CaptureConfig::default()
    })?;
    loader::xdp(capture.ebpf_mut(), BASELINE_PROGRAM)?.load()?;
    loader::xdp(capture.ebpf_mut(), BENCH_RING_COPY_PROGRAM)?.load()?;
    let ip = Ip::V4 {
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
        options: vec![],
    };
    let payload = frame(&[], &ip, &tcp(8080, 0x18, pattern(1448)));
    let case = |name, program, data, batch, target| Case {
        name,
        program,
        data,
        batch,
        target,
        rounds: Vec::new(),
    };
    let mut cases = [
        case(
            "other-port packet (1,448 B payload)",
            XDP_PROGRAM,
            frame(&[], &ip, &tcp(9999, 0x18, pattern(1448))),
            REPEAT,
            Some(10.0),
        ),
        case(
            "monitored, no payload (bare ACK)",
            XDP_PROGRAM,
            frame(&[], &ip, &tcp(8080, 0x10, vec![])),
            REPEAT,
            Some(50.0),
        ),
        case(
            "monitored, 1,448 B payload",
            XDP_PROGRAM,
            payload.clone(),
            BATCH,
            Some(200.0),
        ),
        case(
            "monitored, 60 B payload",
            XDP_PROGRAM,
            frame(&[], &ip, &tcp(8080, 0x18, pattern(60))),
            BATCH,
            None,
        ),
        case(
            "(reference) ring copy alone: 1,448 B payload loaded into a 1,536 B record",
            BENCH_RING_COPY_PROGRAM,
            payload.clone(),
            BATCH,
            None,
        ),
    ];
    let mut baselines = Vec::new();
    let mut concurrent = Vec::new();
    let mut concurrent_copy = Vec::new();
    let mut concurrent_lost = 0;
    let mut concurrent_copy_lost = 0;
    for _ in 0..ROUNDS {
        let baseline = mean_ns(&mut capture, BASELINE_PROGRAM, &payload, REPEAT)?;
        baselines.push(baseline);
        for case in &mut cases {
            let ns = mean_ns(&mut capture, case.program, &case.data, case.batch)?;
            case.rounds.push((ns, ns - baseline));
        }
        if cpus > 1 {
            let (ns, lost) = with_concurrent_reader(XDP_PROGRAM, &payload)?;
            concurrent.push((ns, ns - baseline));
            concurrent_lost += lost;
            let (ns, lost) = with_concurrent_reader(BENCH_RING_COPY_PROGRAM, &payload)?;
            concurrent_copy.push((ns, ns - baseline));
            concurrent_copy_lost += lost;
        }
    }
    let ring_lost = capture.totals()?.lost_records[0];

    // Diagnostic: a one-page ring is full after two records, so this is the cost of
    // everything but the ring copy (the reservation fails and is counted).
    let mut full = Capture::load(&CaptureConfig {
        ring_bytes: 4096,
        ..CaptureConfig::default()
    })?;
    let reserve_fails = loader::xdp(full.ebpf_mut(), XDP_PROGRAM)?
        .test_run(TestRunOptions {
            data_in: Some(&payload),
            repeat: REPEAT,
            ..TestRunOptions::default()
        })?
        .duration
        .as_nanos() as f64;

    println!(
        "kernel: {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim()
    );
    let baseline = median(baselines.clone());
    println!(
        "baseline (XDP_PASS program): {baseline:.1} ns/packet (rounds: {}), \
         {REPEAT} runs per case and round, median of {ROUNDS} rounds\n",
        baselines
            .iter()
            .map(|ns| format!("{ns:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| case | ns/packet (median) | delta over baseline (median) | smallest delta | \
         deltas per round | target |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for case in &cases {
        println!("{}", row(case.name, &case.rounds, case.target));
    }
    if concurrent.is_empty() {
        println!("| (one CPU: the concurrent-reader case needs two) | | | | | |");
    } else {
        let name =
            "monitored, 1,448 B payload, default 16 MiB ring read by the daemon's loop on CPU 1";
        println!("{}", row(name, &concurrent, Some(200.0)));
        let name = "(reference) ring copy alone, default 16 MiB ring read by the daemon's loop";
        println!("{}", row(name, &concurrent_copy, None));
    }
    println!(
        "| (diagnostic) 1,448 B payload, ring full | {reserve_fails:.1} | {:+.1} ns | | | — |",
        reserve_fails - baseline
    );
    println!(
        "\nrecords lost on purpose in the ring-full diagnostic: {}",
        full.totals()?.lost_records[0]
    );
    println!("ring records lost while benchmarking: {ring_lost} (must be 0)");
    println!(
        "ring records lost with the concurrent reader: {concurrent_lost} capturing, \
         {concurrent_copy_lost} copying alone (the reader fell behind if not 0; a failed copy \
         costs less than a copy, so the row is then not the copy's cost)"
    );
    Ok(())
}
