//! `cargo xtask bench-kernel`: ns per packet of the XDP program via BPF_PROG_TEST_RUN, as the
//! delta over a trivial XDP_PASS program from the same object.
//!
//! Each case runs ≥ 1,000,000 times. The payload case fills the ring, so it runs in batches
//! that fit the ring and the ring is drained between batches (the kernel reports the mean per
//! repetition of each batch; batches are averaged weighted by size).
use aya::programs::{TestRun, TestRunOptions};
use webui_monitor::capture::{Capture, CaptureConfig, loader};
use webui_monitor_common::{BASELINE_PROGRAM, XDP_PROGRAM};
use webui_monitor_tests::frame::{Ip, Tcp, frame, pattern};

const REPEAT: u32 = 1_000_000;
/// 256 MiB: 131,072 records; batches of 100,000 single-record packets fit (the kernel reports
/// the mean of each batch, so batches are weighted by size).
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = CaptureConfig {
        ring_bytes: RING_BYTES,
        ..CaptureConfig::default()
    };
    let mut capture = Capture::load(&config)?;
    loader::xdp(capture.ebpf_mut(), BASELINE_PROGRAM)?.load()?;
    let ip = Ip::V4 {
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
        options: vec![],
    };
    let other = frame(&[], &ip, &tcp(9999, 0x18, pattern(1448)));
    let ack = frame(&[], &ip, &tcp(8080, 0x10, vec![]));
    let payload = frame(&[], &ip, &tcp(8080, 0x18, pattern(1448)));

    let baseline = mean_ns(&mut capture, BASELINE_PROGRAM, &payload, REPEAT)?;
    let cases = [
        (
            "other-port packet (1,448 B payload)",
            mean_ns(&mut capture, XDP_PROGRAM, &other, REPEAT)?,
            10.0,
        ),
        (
            "monitored, no payload (bare ACK)",
            mean_ns(&mut capture, XDP_PROGRAM, &ack, REPEAT)?,
            50.0,
        ),
        (
            "monitored, 1,448 B payload",
            mean_ns(&mut capture, XDP_PROGRAM, &payload, BATCH)?,
            200.0,
        ),
    ];
    // The same with a 1 MiB ring drained every 256 packets: the ring stays in cache, as when
    // the consumer keeps up; the 256 MiB case above writes to cold memory every time.
    let mut small = Capture::load(&CaptureConfig {
        ring_bytes: 1 << 20,
        ..CaptureConfig::default()
    })?;
    let warm = mean_ns(&mut small, XDP_PROGRAM, &payload, 256)?;
    let small_payload = frame(&[], &ip, &tcp(8080, 0x18, pattern(60)));
    let small_copy = mean_ns(&mut small, XDP_PROGRAM, &small_payload, 256)?;
    // Diagnostic: a one-page ring is full after one record, so this is the cost of everything
    // but the copy and the commit (the reservation fails and is counted).
    let mut full = Capture::load(&CaptureConfig {
        ring_bytes: 4096,
        ..CaptureConfig::default()
    })?;
    let reserve_fails = {
        let result = loader::xdp(full.ebpf_mut(), XDP_PROGRAM)?.test_run(TestRunOptions {
            data_in: Some(&payload),
            repeat: REPEAT,
            ..TestRunOptions::default()
        })?;
        result.duration.as_nanos() as f64
    };
    let cases = [
        cases[0],
        cases[1],
        cases[2],
        ("monitored, 1,448 B payload, ring in cache", warm, 200.0),
        ("monitored, 60 B payload, ring in cache", small_copy, 200.0),
        (
            "(diagnostic) 1,448 B payload, ring full",
            reserve_fails,
            f64::NAN,
        ),
    ];
    let totals = capture.totals()?;
    let small_totals = small.totals()?;
    println!(
        "records lost on purpose in the ring-full diagnostic: {}",
        full.totals()?.lost_records[0]
    );
    println!(
        "kernel: {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim()
    );
    println!("baseline (XDP_PASS program): {baseline:.1} ns/packet, {REPEAT} runs per case\n");
    println!("| case | ns/packet | delta over baseline | target |");
    println!("|---|---:|---:|---:|");
    for (name, ns, target) in cases {
        let target = if target.is_nan() {
            "—".to_owned()
        } else {
            format!("≤ +{target} ns")
        };
        println!("| {name} | {ns:.1} | +{:.1} ns | {target} |", ns - baseline);
    }
    println!(
        "\nring records lost while benchmarking: {} (must be 0)",
        totals.lost_records[0] + small_totals.lost_records[0]
    );
    Ok(())
}
