//! Bodies nothing reads are not copied (`capture.skip_min_bytes`): through the production-shaped
//! stack (nginx → veth → Open WebUI-shaped server, the monitor on the app side), a large
//! static asset is skipped by the kernel — every byte of it accounted for — and the numbers of
//! a completion are those of a monitor that copies everything; sent with chunked transfer
//! coding, the kernel follows its chunks itself. Needs root, nginx, python3.
use std::time::Duration;

use webui_monitor_tests::{
    net::wait_for,
    stack::{ALICE, ALICE_API_KEY, Stack, sample},
};

/// The static asset's size: far above `skip_min_bytes`, many segments on the veth.
const ASSET_BYTES: usize = 4 << 20;

/// How the asset is sent.
#[derive(Clone, Copy)]
enum Asset {
    /// With `Content-Length`, its 64 KiB pieces 5 ms apart.
    Sized,
    /// With chunked transfer coding, one 64 KiB chunk every 50 ms (a slow client's pace, so
    /// the daemon has read the first chunk's size line before the second chunk is sent).
    Chunked,
}

/// Runs the traffic through a stack started with `args`; returns its metrics once both
/// requests are counted.
fn traffic(tag: &str, args: &[&str], asset: Asset) -> anyhow::Result<String> {
    let stack = Stack::start(tag, args)?;
    let bearer = format!("Authorization: Bearer {ALICE_API_KEY}");
    let pace = match asset {
        Asset::Sized => "pause_ms=5",
        Asset::Chunked => "pause_ms=50&chunked=1",
    };
    let (status, body) = stack.curl(
        "GET",
        &format!("/static/blob.bin?bytes={ASSET_BYTES}&{pace}"),
        &[&bearer],
        None,
    )?;
    anyhow::ensure!(
        status == 200 && body.len() == ASSET_BYTES,
        "asset: {status}"
    );
    let completion = r#"{"model":"mock-gpt","stream":false,"messages":[{"role":"user","content":"quokka prompt about skipping"}]}"#;
    let (status, _) = stack.curl(
        "POST",
        "/api/chat/completions",
        &[&bearer],
        Some(completion),
    )?;
    anyhow::ensure!(status == 200, "completion: {status}");
    let requests = |m: &str| {
        sample(
            m,
            "openwebui_user_requests_total",
            &[("user", ALICE), ("auth", "api_key"), ("client", "api")],
        )
    };
    wait_for("both requests counted", Duration::from_secs(30), || {
        stack.metrics().is_ok_and(|m| requests(&m) == Some(2.0))
    })?;
    // The kernel's counters reach the metrics every second.
    std::thread::sleep(Duration::from_millis(2500));
    stack.metrics()
}

/// The per-user counters: requests, completions, tokens, bytes.
fn user_counters(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| {
            [
                "openwebui_user_requests_total",
                "openwebui_chat_completions_total",
                "openwebui_llm_tokens_total",
                "openwebui_user_bytes_total",
                "openwebui_http_requests_total",
            ]
            .iter()
            .any(|name| l.starts_with(name))
        })
        .collect()
}

/// What the monitor that skips showed, next to one that copies everything.
struct Skipping {
    /// The skipping monitor's metrics.
    metrics: String,
    /// Bytes the kernel left out (`webui_monitor_capture_skipped_bytes_total`).
    kernel: f64,
    /// Bytes the monitor skipped (`webui_monitor_reassembly_skipped_bytes_total`).
    declared: f64,
    /// Bytes of those the kernel copied before it knew, then dropped.
    arrived: f64,
    /// Span writes to the kernel's map.
    writes: f64,
}

/// Runs `asset` through a monitor that copies everything and one that skips from 8 KiB, and
/// checks what holds for every asset: the per-user numbers are the same, the copying monitor
/// skipped nothing, every skipped byte was left out by the kernel or copied before it knew,
/// and no span write failed.
fn copied_and_skipped(tag: &str, asset: Asset) -> anyhow::Result<Skipping> {
    let copied = traffic(&format!("c{tag}"), &[], asset)?;
    let skipped = traffic(
        &format!("k{tag}"),
        &["--set", "capture.skip_min_bytes=8192"],
        asset,
    )?;
    let get = |m: &str, name: &str| sample(m, name, &[]).unwrap_or(-1.0);
    let writes = |result| {
        sample(
            &skipped,
            "webui_monitor_capture_skip_writes_total",
            &[("op", "skip"), ("result", result)],
        )
        .unwrap_or(-1.0)
    };

    assert_eq!(user_counters(&skipped), user_counters(&copied));
    assert!(!user_counters(&skipped).is_empty());
    for family in [
        "webui_monitor_capture_skipped_bytes_total",
        "webui_monitor_reassembly_skipped_bytes_total",
    ] {
        assert_eq!(get(&copied, family), 0.0, "{family} without the setting");
    }
    let outcome = Skipping {
        kernel: get(&skipped, "webui_monitor_capture_skipped_bytes_total"),
        declared: get(&skipped, "webui_monitor_reassembly_skipped_bytes_total"),
        arrived: get(
            &skipped,
            "webui_monitor_reassembly_skipped_bytes_arrived_total",
        ),
        writes: writes("ok"),
        metrics: skipped.clone(),
    };
    let Skipping {
        kernel,
        declared,
        arrived,
        writes: ok,
        ..
    } = outcome;
    eprintln!(
        "{tag}: skipped {declared} B: {kernel} B left out by the kernel, {arrived} B copied \
         first, {ok} span writes"
    );
    assert!(kernel > 0.0, "the kernel skipped nothing:\n{skipped}");
    assert_eq!(kernel + arrived, declared);
    assert_eq!(writes("error"), 0.0);
    Ok(outcome)
}

#[test]
fn a_static_asset_is_skipped_and_no_number_changes() -> anyhow::Result<()> {
    let s = copied_and_skipped("s", Asset::Sized)?;
    // Most of the asset, by one span written when its head was read.
    assert!(s.declared <= ASSET_BYTES as f64 && s.declared > (ASSET_BYTES / 2) as f64);
    assert_eq!(s.writes, 1.0, "{}", s.metrics);
    Ok(())
}

/// The same asset in 64 chunks of 64 KiB: the monitor skips the rest of a chunk whose size
/// line it read, and the kernel follows the size lines of the chunks after it (`SKIP_CHUNKED`),
/// so fewer span writes than chunks cover the body. Where the kernel stops following (a size
/// line cut by a segment's end, more lines in one segment than it reads), the monitor reads the
/// next line itself and writes the span again.
#[test]
fn a_chunked_asset_is_followed_by_the_kernel_and_no_number_changes() -> anyhow::Result<()> {
    let s = copied_and_skipped("h", Asset::Chunked)?;
    // No more than the body's wire bytes: 64 × (7 + 65,536 + 2) + 5 with the size lines.
    assert!(
        s.declared < 64.0 * (7.0 + 65_536.0 + 2.0) + 5.0,
        "{}",
        s.declared
    );
    // The kernel followed chunks nobody asked it to skip.
    assert!((1.0..64.0).contains(&s.writes), "{} span writes", s.writes);
    Ok(())
}
