//! `cargo xtask`: project chores that need more than cargo.
//!
//! * `setup`: install what a fresh Debian machine lacks (idempotent).
//! * `run`: bpf-linker if missing, then the daemon on the local Open WebUI (`lo`, port 8080) — the README's
//!   first command.
//! * `test`: setup, then every test — unit, kernel (`BPF_PROG_TEST_RUN`), end-to-end, the
//!   container image, the deploy files, the .deb, `cargo xtask run` itself, the fuzz targets
//!   for 20 s each and the kernel matrix — as root; the README's second command and CI's.
//! * `bench-kernel`: ns per packet of the kernel programs, over a trivial XDP baseline.
//! * `bench-replay`: `webui-monitor replay` against tshark on a large generated capture, then
//!   exchanges/s with attribution off and on (`webui-monitor/examples/bench_attribution.rs`).
//! * `routes --version V`: regenerate the Open WebUI route table the core compiles in, from
//!   Open WebUI V's wheel (`routes.rs`).
//! * `bench-load`: requests/s, latency, CPU and kernel time per request, counts and memory of
//!   the daemon attached to a busy veth hop in front of an Open WebUI stand-in, against the same
//!   hop detached (`bench_load`).
//! * `test-kernels`: `webui-monitor check` and the kernel tests in each kernel of a matrix
//!   (Debian's 6.1, 6.12, 6.18 and newest in QEMU, and the host's own), as a table.
//! * `fuzz`: every fuzz target for a bounded time, seeded with the fixtures (`fuzz.rs`).
//!
//! xtask deliberately does not depend on the daemon crate: `setup` must work before
//! bpf-linker (which the daemon's build script needs) exists.
mod bench_load;
mod bench_replay;
mod fuzz;
mod kernels;
mod routes;

use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};

/// The bpf-linker release the eBPF build is tested with.
const BPF_LINKER_VERSION: &str = "0.10.4";

/// The cargo-deb release the packaging test builds the .deb with.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Debian packages the tests use: nginx and openssl (TLS-terminating proxy with a certificate
/// made per run), Prometheus (promtool and a real server), tshark and wrk for benchmarks, curl,
/// iproute2 for network namespaces, python3 (+ PyYAML) for the test servers and deploy checks,
/// systemd for `systemd-analyze`, sqlite3 to inspect Open WebUI databases, bpftool to check
/// that nothing stays attached after a test; podman, runc and mmdebstrap to build and run the
/// container image (`tests/tests/container.rs`).
const DEBIAN_PACKAGES: &[&str] = &[
    "bpftool",
    "nginx",
    "openssl",
    "prometheus",
    "tshark",
    "wrk",
    "curl",
    "iproute2",
    "python3",
    "python3-yaml",
    "systemd",
    "sqlite3",
    "podman",
    "runc",
    "mmdebstrap",
];

/// Debian packages the kernel matrix (`test-kernels`) uses: QEMU and the virtiofsd it comes
/// with (bookworm's qemu-system-common), busybox-static for the guests' initramfs, kmod for
/// depmod and modprobe over the downloaded kernels' modules (and the guests' modprobe), xz and
/// zstd to decompress modules for the initramfs.
const KERNEL_MATRIX_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "xz-utils",
    "zstd",
];

#[derive(Parser)]
#[command(about = "webui-monitor project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install bpf-linker, cargo-deb and the Debian packages the tests need, at the versions
    /// they are tested with (skips what is present).
    Setup,
    /// Install bpf-linker if missing, build and run the daemon (needs root); arguments go to
    /// `webui-monitor run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run every test: unit, kernel, end-to-end, deploy files, .deb, `run`, the
    /// kernel matrix (needs root).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Benchmark the kernel programs through BPF_PROG_TEST_RUN (needs root).
    BenchKernel,
    /// Benchmark `webui-monitor replay` against tshark on a large generated capture.
    BenchReplay,
    /// Regenerate the Open WebUI route table (webui-monitor-core/src/openwebui/routes_generated.rs)
    /// from Open WebUI's wheel (pip download, needs python3 and PyPI).
    Routes {
        /// Open WebUI release, e.g. 0.12.4.
        #[arg(long)]
        version: String,
    },
    /// Benchmark the daemon attached to a loaded veth hop against the hop detached: requests/s,
    /// p99 latency, CPU and kernel time per request, counts, memory (needs root).
    BenchLoad {
        /// wrk's keep-alive connections (fewer: a load the daemon keeps up with).
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// The daemon's `capture.skip_min_bytes` (0, the daemon's default: copy every byte).
        #[arg(long, default_value_t = 0)]
        skip_min_bytes: u64,
        /// Rounds, each running every workload detached and attached.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Idle keep-alive connections to open after the load, in steps (the daemon's RSS is
        /// read at each).
        #[arg(long, value_delimiter = ',', default_values_t = [10_000, 50_000])]
        idle: Vec<u32>,
        /// One more attached run under `perf record` (target/bench-load/perf.data).
        #[arg(long)]
        profile: bool,
        /// The daemon's nice level relative to nginx and wrk (-5: the daemon's threads weigh
        /// three times as much as each of theirs when the CPUs are short).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        daemon_nice: i32,
        /// A daemon setting, `KEY=VALUE` as `webui-monitor run --set` takes it; repeat for more.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        daemon_settings: Vec<String>,
    },
    /// Run every fuzz target (or those named) for a bounded time, seeded with the fixtures.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// A target to run; repeat for more (default: all).
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
    },
    /// Run `webui-monitor check` and the kernel tests in Debian's kernels (QEMU) and the host's,
    /// and print the matrix (needs root).
    TestKernels {
        /// A row to run: 6.1, 6.12, 6.18, newest or host; repeat for more (default: all).
        #[arg(long = "kernel", value_name = "NAME")]
        kernels: Vec<String>,
        /// Keep target/kernels/work/ (the steps script, each row's initramfs and console log).
        #[arg(long)]
        keep: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(Needs::Test),
        Task::Run { args } => run(&args),
        Task::Test { args } => test(&args),
        Task::BenchKernel => bench_kernel(),
        Task::BenchReplay => bench_replay::run(),
        Task::Routes { version } => routes::run(&version),
        Task::BenchLoad {
            connections,
            skip_min_bytes,
            rounds,
            seconds,
            idle,
            profile,
            daemon_nice,
            daemon_settings,
        } => bench_load::run(&bench_load::Options {
            connections,
            skip_min_bytes,
            rounds,
            seconds,
            idle,
            profile,
            daemon_nice,
            daemon_settings,
        }),
        Task::Fuzz { seconds, targets } => {
            fuzz::run(&workspace_root()?, &fuzz::Options { seconds, targets })
        }
        Task::TestKernels { kernels, keep } => kernels::run(&kernels::Options { kernels, keep }),
    }
}

fn workspace_root() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf())
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

/// What a task needs installed: running the daemon needs only the eBPF linker; the tests also
/// need cargo-deb and the Debian packages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Run,
    Test,
}

fn setup(needs: Needs) -> anyhow::Result<()> {
    cargo_tool("bpf-linker", BPF_LINKER_VERSION)?;
    if needs == Needs::Run {
        return Ok(());
    }
    cargo_tool("cargo-deb", CARGO_DEB_VERSION)?;

    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .chain(KERNEL_MATRIX_PACKAGES)
        .copied()
        .filter(|package| !debian_installed(package))
        .collect();
    if missing.is_empty() {
        println!(
            "Debian packages: all present ({}, {})",
            DEBIAN_PACKAGES.join(", "),
            KERNEL_MATRIX_PACKAGES.join(", ")
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

/// Installs `tool` at exactly `version` with `cargo install --locked`, unless `tool --version`
/// already prints `tool version` (another version is replaced: `--force`).
fn cargo_tool(tool: &str, version: &str) -> anyhow::Result<()> {
    let expected = format!("{tool} {version}");
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match found {
        Some(line)
            if line
                .split_whitespace()
                .take(2)
                .eq(expected.split_whitespace()) =>
        {
            println!("{expected}: present");
            return Ok(());
        }
        Some(line) => println!("{tool}: found `{line}`, installing {version} in its place"),
        None => println!("installing {expected}"),
    }
    status(cargo().args([
        "install",
        "--locked",
        "--force",
        &format!("{tool}@{version}"),
    ]))
}

fn debian_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}

fn run(args: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the daemon loads eBPF programs: run `cargo xtask run` as root");
    }
    setup(Needs::Run)?;
    status(
        cargo()
            .args([
                "run",
                "--release",
                "--package",
                "webui-monitor",
                "--",
                "run",
            ])
            .args(args),
    )
}

fn test(args: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the kernel and end-to-end tests load eBPF programs and create network namespaces: \
             run `cargo xtask test` as root"
        );
    }
    setup(Needs::Test)?;
    // The workspace's default members: everything but the eBPF crate, which only builds for
    // the BPF target (the daemon's build script builds it).
    let mut command = cargo();
    command.args(["test", "--workspace", "--exclude", "webui-monitor-ebpf"]);
    if !args.is_empty() {
        command.arg("--").args(args);
    }
    status(&mut command)?;
    if !args.is_empty() {
        // A filtered run: the deploy checks below are not what was asked for.
        return Ok(());
    }
    let root = workspace_root()?;
    println!("deploy files: alert rules, dashboard queries, systemd unit, manifests");
    status(Command::new("bash").arg(root.join("deploy/test-deploy.sh")))?;
    println!("package: build the release binary and the .deb, install, check, purge");
    status(cargo().args(["build", "--release", "--package", "webui-monitor"]))?;
    status(
        Command::new("bash")
            .arg(root.join("deploy/test-deb.sh"))
            .current_dir(&root),
    )?;
    println!("the README's first command: `cargo xtask run` attaches to lo and counts an exchange");
    status(Command::new("bash").arg(root.join("tests/run-command.sh")))?;
    println!("fuzz targets: 20 s each, seeded with the fixtures");
    fuzz::run(
        &root,
        &fuzz::Options {
            seconds: 20,
            targets: Vec::new(),
        },
    )?;
    println!("kernel matrix: Debian's 6.1, 6.12, 6.18 and newest kernel in QEMU, and the host's");
    kernels::run(&kernels::Options {
        kernels: Vec::new(),
        keep: false,
    })
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
