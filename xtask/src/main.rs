//! `cargo xtask`: project chores that need more than cargo.
//!
//! * `setup`: install what a fresh Debian machine lacks (idempotent).
//! * `test`: run every test — unit, kernel (`BPF_PROG_TEST_RUN`) and end-to-end — as root.
//! * `bench-kernel`: ns per packet of the kernel programs, over a trivial XDP baseline.
//!
//! xtask deliberately does not depend on the daemon crate: `setup` must work before
//! bpf-linker (which the daemon's build script needs) exists.
mod bench_replay;

use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};

/// The bpf-linker release the eBPF build is tested with.
const BPF_LINKER_VERSION: &str = "0.10.4";

/// Debian packages the tests use: nginx, Prometheus, tshark, wrk, curl and sqlite3 for the
/// end-to-end tests, iproute2 for network namespaces, python3 for test HTTP servers.
const DEBIAN_PACKAGES: &[&str] = &[
    "nginx",
    "prometheus",
    "tshark",
    "wrk",
    "curl",
    "iproute2",
    "python3",
    "sqlite3",
];

#[derive(Parser)]
#[command(about = "webui-monitor project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install bpf-linker and the Debian packages the tests need (skips what is present).
    Setup,
    /// Run every test: unit, kernel and end-to-end (needs root).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Benchmark the kernel programs through BPF_PROG_TEST_RUN (needs root).
    BenchKernel,
    /// Benchmark `webui-monitor replay` against tshark on a large generated capture.
    BenchReplay,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(),
        Task::Test { args } => test(&args),
        Task::BenchKernel => bench_kernel(),
        Task::BenchReplay => bench_replay::run(),
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn status(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(status.success(), "{command:?} failed: {status}");
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn setup() -> anyhow::Result<()> {
    let linker = Command::new("bpf-linker").arg("--version").output();
    let installed = linker
        .as_ref()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION));
    if installed {
        println!("bpf-linker {BPF_LINKER_VERSION}: present");
    } else {
        println!("installing bpf-linker {BPF_LINKER_VERSION}");
        status(cargo().args([
            "install",
            "--locked",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        ]))?;
    }

    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| !debian_installed(package))
        .collect();
    if missing.is_empty() {
        println!(
            "Debian packages: all present ({})",
            DEBIAN_PACKAGES.join(", ")
        );
        return Ok(());
    }
    if !is_root() {
        bail!("missing Debian packages {missing:?}: run `cargo xtask setup` as root");
    }
    println!("installing {}", missing.join(" "));
    status(Command::new("apt-get").arg("update"))?;
    status(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
}

fn debian_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}

fn test(args: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the kernel and end-to-end tests load eBPF programs and create network namespaces: \
             run `cargo xtask test` as root"
        );
    }
    // The workspace's default members: everything but the eBPF crate, which only builds for
    // the BPF target (the daemon's build script builds it).
    let mut command = cargo();
    command.args(["test", "--workspace", "--exclude", "webui-monitor-ebpf"]);
    if !args.is_empty() {
        command.arg("--").args(args);
    }
    status(&mut command)
}

fn bench_kernel() -> anyhow::Result<()> {
    if !is_root() {
        bail!("BPF_PROG_TEST_RUN needs root: run `cargo xtask bench-kernel` as root");
    }
    status(cargo().args([
        "run",
        "--release",
        "--package",
        "webui-monitor-tests",
        "--example",
        "bench_kernel",
    ]))
}
