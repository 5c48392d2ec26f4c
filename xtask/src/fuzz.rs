//! `cargo xtask fuzz`: every fuzz target of `fuzz/` for a bounded time, seeded with the
//! fixture captures, on the pinned stable toolchain (no cargo-fuzz, no nightly).
//!
//! The targets are built as `fuzz/Cargo.toml` documents: libFuzzer from `libfuzzer-sys`, the
//! code instrumented with LLVM's sanitizer coverage through `RUSTC_BOOTSTRAP=1` and `-C passes`,
//! `--cfg fuzzing` to expose the parsers, debug assertions and overflow checks on. Seeds are
//! the fixtures' TCP payloads, one file per connection and direction (read with tshark), and
//! the capture files themselves for the capture reader. A crash, a timeout or a memory blow-up
//! fails the task and leaves the input under `fuzz/artifacts/TARGET/`.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};

use crate::{cargo, status};

/// The instrumentation cargo-fuzz applies, minus the sanitizer (the core is safe Rust).
const RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// What each target is seeded with.
#[derive(Clone, Copy)]
enum Seeds {
    /// Both directions of every connection.
    Streams,
    /// Server → client bytes only (bodies the response parsers read).
    Responses,
    /// The capture files.
    Captures,
    /// Nothing: the input is a script of the target's own encoding.
    None,
}

const TARGETS: [(&str, Seeds); 10] = [
    ("http_head", Seeds::Streams),
    ("http_chunked", Seeds::Responses),
    ("http_connection", Seeds::Streams),
    ("http_sse", Seeds::Responses),
    ("http_ndjson", Seeds::Responses),
    ("json_scanner", Seeds::Responses),
    ("websocket", Seeds::Streams),
    ("pcap_reader", Seeds::Captures),
    ("reassembly", Seeds::None),
    ("audit_client_address", Seeds::None),
];

/// Longest seed kept (libFuzzer's `-max_len` for every target).
const MAX_LEN: usize = 64 << 10;

pub struct Options {
    pub seconds: u64,
    pub targets: Vec<String>,
}

pub fn run(root: &Path, options: &Options) -> anyhow::Result<()> {
    let fuzz = root.join("fuzz");
    // Every target of the fuzz crate runs: a new one needs its seeds said here.
    let manifest = fs::read_to_string(fuzz.join("Cargo.toml"))?;
    for bin in manifest.split("\n[[bin]]").skip(1) {
        let name = bin
            .lines()
            .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'));
        if let Some(name) = name {
            ensure!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz target {name} (fuzz/Cargo.toml) is not in TARGETS of xtask/src/fuzz.rs: add it with its seeds"
            );
        }
    }
    println!("fuzz: building the targets (instrumented, release)");
    status(
        cargo()
            .current_dir(&fuzz)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", RUSTFLAGS)
            .args(["build", "--release", "--bins", "--target", TRIPLE]),
    )?;
    let captures = fixture_captures(&root.join("fixtures"))?;
    let streams = tcp_streams(&captures)?;
    let work = fuzz.join("target/xtask");
    for (target, seeds) in TARGETS {
        if !options.targets.is_empty() && !options.targets.iter().any(|t| t == target) {
            continue;
        }
        let corpus = work.join("corpus").join(target);
        let _ = fs::remove_dir_all(&corpus);
        fs::create_dir_all(&corpus)?;
        let mut n = 0;
        let mut seed = |bytes: &[u8]| -> anyhow::Result<()> {
            if !bytes.is_empty() {
                fs::write(
                    corpus.join(format!("seed-{n:04}")),
                    &bytes[..bytes.len().min(MAX_LEN)],
                )?;
                n += 1;
            }
            Ok(())
        };
        match seeds {
            Seeds::Streams => {
                for [c2s, s2c] in streams.values() {
                    seed(c2s)?;
                    seed(s2c)?;
                }
            }
            Seeds::Responses => {
                for [_, s2c] in streams.values() {
                    seed(s2c)?;
                }
            }
            Seeds::Captures => {
                for path in &captures {
                    let bytes = fs::read(path)?;
                    if bytes.len() <= MAX_LEN {
                        seed(&bytes)?;
                    }
                }
            }
            Seeds::None => {}
        }
        let artifacts = fuzz.join("artifacts").join(target);
        fs::create_dir_all(&artifacts)?;
        println!("fuzz: {target} for {} s from {n} seeds", options.seconds);
        let binary = fuzz
            .join("target")
            .join(TRIPLE)
            .join("release")
            .join(target);
        let output = Command::new(&binary)
            .arg(&corpus)
            .arg(format!("-max_total_time={}", options.seconds))
            .arg(format!("-max_len={MAX_LEN}"))
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .output()
            .with_context(|| format!("running {}", binary.display()))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let summary = log
            .lines()
            .rev()
            .find(|l| l.starts_with("Done ") || l.contains("ERROR"))
            .unwrap_or("(no summary)");
        println!("fuzz: {target}: {summary}");
        ensure!(
            output.status.success(),
            "fuzz target {target} failed ({}); the input is in {}; its log ends:\n{}",
            output.status,
            artifacts.display(),
            log.lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// Every `.pcap` under `dir`, sorted.
fn fixture_captures(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(fixture_captures(&path)?);
        } else if path.extension().is_some_and(|e| e == "pcap") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Payload per (capture, tshark's stream number), `[client → server, server → client]`.
type Streams = BTreeMap<(usize, u64), [Vec<u8>; 2]>;

/// The TCP payload of every connection of `captures`, per direction (`[client → server,
/// server → client]`, the server being the side with the lower port), in capture order.
fn tcp_streams(captures: &[PathBuf]) -> anyhow::Result<Streams> {
    let mut streams = BTreeMap::new();
    for (i, capture) in captures.iter().enumerate() {
        let output = Command::new("tshark")
            .arg("-r")
            .arg(capture)
            .args(["-Y", "tcp.len > 0", "-T", "fields"])
            .args(["-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport"])
            .args(["-e", "tcp.payload"])
            .output()
            .context("running tshark (cargo xtask setup installs it)")?;
        ensure!(
            output.status.success(),
            "tshark could not read {}: {}",
            capture.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            let [stream, src, dst, payload] = fields[..] else {
                continue;
            };
            let (Ok(stream), Ok(src), Ok(dst)) = (
                stream.parse::<u64>(),
                src.parse::<u16>(),
                dst.parse::<u16>(),
            ) else {
                continue;
            };
            let direction = usize::from(src < dst);
            let entry: &mut [Vec<u8>; 2] = streams.entry((i, stream)).or_default();
            if entry[direction].len() < MAX_LEN {
                entry[direction].extend(hex(payload));
            }
        }
    }
    Ok(streams)
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter_map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect();
    let (pairs, _) = digits.as_chunks::<2>();
    pairs.iter().map(|[hi, lo]| hi << 4 | lo).collect()
}
