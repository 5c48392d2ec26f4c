//! `cargo xtask test-kernels`: the privileged tests in every kernel of a matrix.
//!
//! The rows ([`MATRIX`]) are Debian's cloud kernels — bookworm's 6.1, trixie's 6.12,
//! trixie-backports' 6.18 and the newest kernel any suite offers — each booted in QEMU, and the
//! machine's own kernel, run natively. QEMU emulates the CPU (TCG): nested KVM is not
//! available on the CI machines. Every row runs the same steps script, generated from
//! [`STEPS`]: `webui-monitor check` (whose verifier statistics fill the table), then test
//! executables of `webui-monitor-tests`. Everything is built once, on the host; a guest sees
//! the host's root filesystem read-only (`guest`), so it runs the very binaries, python3, curl,
//! ip and nginx the host has.
//!
//! Kernel packages are resolved against the suites' indexes on each run and unpacked under
//! `target/kernels/<release>/` (`debian`); the table goes to stdout and, as Markdown, to
//! `target/kernels/matrix.md`, followed by what failed and the last lines each failure
//! printed (`report`). The run fails if any row does.
mod debian;
mod guest;
mod report;
mod transcript;

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use debian::{Kernel, Source, Suites};
use transcript::{Outcome, StepResult, Transcript};

/// A row of the matrix.
struct Row {
    /// What `--kernel` selects it by, and the table's first column.
    name: &'static str,
    /// Which Debian kernel it boots; `None`: the host's own, natively.
    source: Option<Source>,
}

/// The rows, in the table's order.
const MATRIX: &[Row] = &[
    Row {
        name: "6.1",
        source: Some(Source::Series {
            series: "6.1",
            suites: &["bookworm"],
        }),
    },
    Row {
        name: "6.12",
        source: Some(Source::Series {
            series: "6.12",
            suites: &["trixie"],
        }),
    },
    // Once trixie-backports has moved past 6.18, the newest 6.18 of the other suites.
    Row {
        name: "6.18",
        source: Some(Source::Series {
            series: "6.18",
            suites: &["trixie-backports", "sid", "trixie", "bookworm-backports"],
        }),
    },
    Row {
        name: "newest",
        source: Some(Source::Newest {
            suites: &["trixie-backports", "sid"],
        }),
    },
    Row {
        name: "host",
        source: None,
    },
];

/// A program a step runs.
enum Program {
    /// The daemon, `target/release/webui-monitor`, run from the workspace root.
    Daemon,
    /// A test target of `webui-monitor-tests`, run from that package's directory as `cargo
    /// test` would. An `optional` one is left out while it does not exist (other work adds it).
    Test {
        target: &'static str,
        optional: bool,
    },
}

/// One step of every row.
struct Step {
    /// The table's column.
    name: &'static str,
    program: Program,
    args: &'static [&'static str],
    /// Generous: TCG runs the tests 5 to 10 times slower than the host.
    timeout: Duration,
    /// Its output holds `webui-monitor check`'s verifier lines, which the table shows.
    verifier_stats: bool,
}

/// What runs in every kernel, in order.
const STEPS: &[Step] = &[
    Step {
        name: "check",
        program: Program::Daemon,
        args: &["check", "--interface", "lo"],
        timeout: Duration::from_secs(120),
        verifier_stats: true,
    },
    Step {
        name: "prog_test_run",
        program: Program::Test {
            target: "prog_test_run",
            optional: false,
        },
        args: &["--test-threads=1"],
        timeout: Duration::from_secs(600),
        verifier_stats: false,
    },
    Step {
        name: "verifier_budget",
        program: Program::Test {
            target: "verifier_budget",
            optional: true,
        },
        args: &["--test-threads=1"],
        timeout: Duration::from_secs(600),
        verifier_stats: false,
    },
    Step {
        name: "live",
        program: Program::Test {
            target: "live",
            optional: false,
        },
        args: &["veth_delivers_every_byte", "--test-threads=1"],
        timeout: Duration::from_secs(600),
        verifier_stats: false,
    },
    Step {
        name: "parity",
        program: Program::Test {
            target: "parity",
            optional: false,
        },
        args: &["--test-threads=1"],
        timeout: Duration::from_secs(900),
        verifier_stats: false,
    },
];

/// Modules the steps need, loaded in each guest before they run (the kernel would also load
/// them on demand): veth for the live test's veth pair; sch_ingress (its clsact qdisc) and
/// cls_bpf for classic TC, the egress attachment on kernels before tcx (6.6).
const PRELOAD: &[&str] = &["veth", "sch_ingress", "cls_bpf"];

/// The package whose test targets the steps run.
const TESTS_PACKAGE: &str = "webui-monitor-tests";

/// The environment every row's steps run in (the host row's is cleared first, so that host and
/// guests agree).
const STEPS_ENVIRONMENT: &str = "export HOME=/root TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Options {
    /// Names of the rows to run; all if empty.
    pub kernels: Vec<String>,
    /// Keep `target/kernels/work/` (the steps script, each guest's initramfs and logs).
    pub keep: bool,
}

/// The steps script and what following its output needs: each step's name and timeout, in
/// the script's order.
struct Script {
    path: PathBuf,
    steps: Vec<(&'static str, Duration)>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let rows = select(&options.kernels)?;
    ensure!(
        crate::is_root(),
        "the matrix loads eBPF programs on the host row, and serves the host's root to the \
         guests through a read-only bind mount: run `cargo xtask test-kernels` as root"
    );
    crate::setup(crate::Needs::Test)?;
    let started = Instant::now();
    let workspace = Workspace::load()?;
    let kernels_dir = workspace.target.join("kernels");
    fs::create_dir_all(&kernels_dir)?;
    on_root_filesystem(&kernels_dir)?;
    let plan = build(&workspace)?;

    let work = kernels_dir.join("work");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&work)?;
    let script = Script {
        path: work.join("steps.sh"),
        steps: plan
            .iter()
            .filter(|planned| planned.command.is_ok())
            .map(|planned| (planned.step.name, planned.step.timeout))
            .collect(),
    };
    fs::write(&script.path, steps_script_text(&plan, &workspace)?)?;
    if rows.iter().any(|row| row.source.is_some()) {
        same_filesystem_as_root(&[&workspace.root, &workspace.target])?;
    }
    let kernels = fetch_kernels(&rows, &kernels_dir)?;

    let init = workspace.root.join("tests/kernel-matrix/init");
    let setup = guest::Setup {
        init: &init,
        preload: PRELOAD,
    };
    let results: Vec<report::Row> = rows
        .iter()
        .zip(kernels)
        .map(|(row, kernel)| run_row(row, kernel, &setup, &script, &plan, &work.join(row.name)))
        .collect::<anyhow::Result<_>>()?;
    if !options.keep {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }

    let columns: Vec<report::Column> = plan
        .iter()
        .map(|planned| report::Column {
            name: planned.step.name,
            verifier_stats: planned.step.verifier_stats,
        })
        .collect();
    let report = report::Report::new(&columns, results);
    let markdown = report.markdown();
    let matrix = kernels_dir.join("matrix.md");
    fs::write(&matrix, &markdown).with_context(|| format!("writing {}", matrix.display()))?;
    println!("\n{markdown}");
    print!("{}", report.failures());
    println!(
        "matrix written to {} ({:.0} s in all)",
        matrix.display(),
        started.elapsed().as_secs_f64()
    );
    let failed = report.failed_rows();
    ensure!(
        failed.is_empty(),
        "kernel matrix: {} failed; why is printed after the table",
        failed.join(", ")
    );
    Ok(())
}

/// Resolves and fetches the Debian kernel of each row (`None` for the host row). A kernel that
/// cannot be had fails its row, not the matrix.
fn fetch_kernels(
    rows: &[&Row],
    kernels_dir: &Path,
) -> anyhow::Result<Vec<anyhow::Result<Option<Kernel>>>> {
    if rows.iter().any(|row| row.source.is_some()) {
        println!("kernels:");
    }
    let mut suites = Suites::new(kernels_dir.join("apt"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let Some(source) = &row.source else {
                return Ok(None);
            };
            let offer = suites.resolve(source)?;
            println!(
                "  {}: linux-image-{} {} ({})",
                row.name, offer.release, offer.version, offer.suite
            );
            if let Some(note) = &offer.note {
                println!("    note: {note}");
            }
            suites.fetch(offer, kernels_dir).map(Some)
        })
        .collect())
}

/// Boots of a guest kernel that panics before its first step (see [`run_row`]).
const BOOT_ATTEMPTS: usize = 3;

/// Runs one row — `kernel` in QEMU, or the host natively — with everything in `work`.
fn run_row(
    row: &Row,
    kernel: anyhow::Result<Option<Kernel>>,
    setup: &guest::Setup<'_>,
    script: &Script,
    plan: &[Planned],
    work: &Path,
) -> anyhow::Result<report::Row> {
    fs::create_dir_all(work)?;
    let started = Instant::now();
    let failed =
        |error: anyhow::Error| Transcript::failed(script.steps.len(), format!("{error:#}"));
    let (version, note, transcript) = match kernel {
        Ok(Some(kernel)) => {
            println!(
                "{}: booting {} in QEMU (TCG)",
                row.name, kernel.offer.release
            );
            let boot =
                || guest::run(&kernel, setup, script, work, print_step).unwrap_or_else(failed);
            let mut transcript = boot();
            // QEMU's TCG occasionally faults a guest kernel while it patches its own text at
            // boot (an oops in early init, before any step ran; seen on 7.3 in
            // `proc_kcore_init`, twice in a row once): such a guest boots again, up to
            // `BOOT_ATTEMPTS` times in all. A panic after the steps began is a result.
            let panic_line = |t: &Transcript| {
                t.ready_after
                    .is_none()
                    .then(|| {
                        t.console
                            .iter()
                            .find(|l| l.contains("Kernel panic"))
                            .cloned()
                    })
                    .flatten()
            };
            for attempt in 2..=BOOT_ATTEMPTS {
                let Some(line) = panic_line(&transcript) else {
                    break;
                };
                println!(
                    "{}: the guest kernel panicked while booting ({}); boot {attempt} of {BOOT_ATTEMPTS}",
                    row.name,
                    line.trim()
                );
                transcript = boot();
            }
            let offer = kernel.offer;
            let version = format!("{} ({}, {})", offer.release, offer.version, offer.suite);
            (version, offer.note, transcript)
        }
        Ok(None) => {
            let release = fs::read_to_string("/proc/sys/kernel/osrelease")?;
            let release = release.trim();
            println!("{}: running natively on {release}", row.name);
            let transcript = host(script, work, print_step).unwrap_or_else(failed);
            (format!("{release} (this machine)"), None, transcript)
        }
        Err(error) => {
            println!("{}: no kernel: {error:#}", row.name);
            let transcript = failed(error.context("getting the kernel failed"));
            ("(no kernel)".to_owned(), None, transcript)
        }
    };
    let elapsed = started.elapsed();
    match transcript.ready_after {
        Some(boot) => println!(
            "{}: {:.0} s, boot {:.1} s",
            row.name,
            elapsed.as_secs_f64(),
            boot.as_secs_f64()
        ),
        None => println!("{}: {:.0} s", row.name, elapsed.as_secs_f64()),
    }
    Ok(report::Row {
        name: row.name,
        version,
        note,
        steps: merge(plan, transcript.steps),
        problem: transcript.problem,
        console: transcript.console,
        elapsed,
    })
}

/// The rows `names` selects, in the matrix's order; all for none.
fn select(names: &[String]) -> anyhow::Result<Vec<&'static Row>> {
    let all: Vec<&str> = MATRIX.iter().map(|row| row.name).collect();
    if let Some(unknown) = names.iter().find(|name| !all.contains(&name.as_str())) {
        bail!(
            "no kernel {unknown:?} in the matrix; the rows are {}",
            all.join(", ")
        );
    }
    Ok(MATRIX
        .iter()
        .filter(|row| names.is_empty() || names.iter().any(|name| name == row.name))
        .collect())
}

/// Prints a step's result as it comes in.
fn print_step(name: &str, result: &StepResult) {
    println!("  {name:<16} {}", report::step_cell(result));
}

/// Runs the steps script natively on the host, as root, in the guests' environment.
fn host(
    script: &Script,
    work: &Path,
    on_step: impl FnMut(&str, &StepResult),
) -> anyhow::Result<Transcript> {
    let mut bash = Command::new("bash");
    bash.arg(&script.path)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null());
    let (child, lines) = transcript::spawn(bash)?;
    let mut child = transcript::Reaped(child);
    let mut log = fs::File::create(work.join("console.log"))?;
    Ok(transcript::follow(
        &mut child.0,
        &lines,
        &script.steps,
        false,
        &mut log,
        on_step,
    ))
}

/// One result per planned step: the transcript's for those that ran, `NotBuilt` for the rest.
fn merge(plan: &[Planned], ran: Vec<StepResult>) -> Vec<StepResult> {
    let mut ran = ran.into_iter();
    plan.iter()
        .map(|planned| match &planned.command {
            Ok(_) => ran
                .next()
                .unwrap_or_else(|| StepResult::new(Outcome::NotRun)),
            Err(why) => StepResult {
                output: vec![why.clone()],
                ..StepResult::new(Outcome::NotBuilt)
            },
        })
        .collect()
}

/// What `cargo metadata` says about the workspace.
/// The guests see the host's root filesystem alone (a bind mount that is not recursive), so
/// the steps, test binaries and kernel modules below `dir` must be on it.
fn on_root_filesystem(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let root = fs::metadata("/")?.dev();
    let here = fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .dev();
    ensure!(
        root == here,
        "{} is on another filesystem than /, which the QEMU guests cannot see: set \
         CARGO_TARGET_DIR to a directory on the root filesystem",
        dir.display()
    );
    Ok(())
}

struct Workspace {
    root: PathBuf,
    target: PathBuf,
    /// The directory of [`TESTS_PACKAGE`], where its tests run.
    tests_dir: PathBuf,
    /// Its test targets.
    test_targets: Vec<String>,
}

impl Workspace {
    fn load() -> anyhow::Result<Self> {
        let output = crate::cargo()
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .context("running cargo metadata")?;
        ensure!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let path = |value: &serde_json::Value| value.as_str().map(PathBuf::from);
        let package = metadata["packages"]
            .as_array()
            .and_then(|packages| packages.iter().find(|p| p["name"] == TESTS_PACKAGE))
            .with_context(|| format!("no package {TESTS_PACKAGE} in the workspace"))?;
        let test_targets = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|k| k.contains(&"test".into()))
            })
            .filter_map(|target| target["name"].as_str().map(str::to_owned))
            .collect();
        Ok(Self {
            root: path(&metadata["workspace_root"]).context("workspace_root")?,
            target: path(&metadata["target_directory"]).context("target_directory")?,
            tests_dir: path(&package["manifest_path"])
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .context("manifest_path")?,
            test_targets,
        })
    }
}

/// A step with what runs it: the command and its directory, or why there is none.
struct Planned {
    step: &'static Step,
    command: Result<(Vec<String>, PathBuf), String>,
}

/// Builds the daemon and each step's test executable (a target that does not build fails its
/// step in every row, not the matrix).
fn build(workspace: &Workspace) -> anyhow::Result<Vec<Planned>> {
    println!("building the daemon and the test executables (release)");
    crate::status(
        crate::cargo()
            .args(["build", "--release", "--package", "webui-monitor"])
            .current_dir(&workspace.root),
    )
    .context("the daemon does not build, and every step needs it")?;
    let daemon = workspace.target.join("release/webui-monitor");
    let mut plan = Vec::new();
    for step in STEPS {
        let (program, dir) = match step.program {
            Program::Daemon => (Ok(daemon.clone()), workspace.root.clone()),
            Program::Test { target, optional } => {
                if !workspace.test_targets.iter().any(|t| t == target) {
                    if optional {
                        continue;
                    }
                    bail!(
                        "{TESTS_PACKAGE} has no test target {target}, which step {} runs: was it \
                         renamed? Update STEPS in xtask/src/kernels.rs",
                        step.name
                    );
                }
                (
                    test_executable(workspace, target),
                    workspace.tests_dir.clone(),
                )
            }
        };
        let command = match program {
            Ok(program) => {
                let mut argv = vec![path_str(&program)?.to_owned()];
                argv.extend(step.args.iter().map(|arg| (*arg).to_owned()));
                Ok((argv, dir))
            }
            Err(why) => Err(why),
        };
        plan.push(Planned { step, command });
    }
    Ok(plan)
}

/// Builds test target `target` alone (so that another target's compile error cannot stop it)
/// and returns its executable, or why there is none.
fn test_executable(workspace: &Workspace, target: &str) -> Result<PathBuf, String> {
    let output = crate::cargo()
        .args(["test", "--release", "--package", TESTS_PACKAGE, "--no-run"])
        .args(["--test", target, "--message-format=json-render-diagnostics"])
        .current_dir(&workspace.root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("running cargo: {error}"))?;
    let executable = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact"
                && message["target"]["name"] == target
                && message["profile"]["test"] == true
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    match executable {
        Some(executable) if output.status.success() => Ok(executable),
        _ => Err(format!(
            "test target {target} did not build ({}); cargo's errors are printed before the \
             matrix ran",
            output.status
        )),
    }
}

/// The steps script: `tests/kernel-matrix/run-step` once per step that can run.
fn steps_script_text(plan: &[Planned], workspace: &Workspace) -> anyhow::Result<String> {
    let run_step = workspace.root.join("tests/kernel-matrix/run-step");
    let run_step = shell_quote(path_str(&run_step)?);
    let mut script = format!(
        "# Generated by `cargo xtask test-kernels` (xtask/src/kernels.rs): the steps of each row\n\
         # of the kernel matrix, in a guest (tests/kernel-matrix/init) or on the host.\n\
         {STEPS_ENVIRONMENT}\n"
    );
    for planned in plan {
        let Ok((argv, dir)) = &planned.command else {
            continue;
        };
        let mut words = vec![
            run_step.clone(),
            shell_quote(planned.step.name),
            planned.step.timeout.as_secs().to_string(),
            shell_quote(path_str(dir)?),
        ];
        words.extend(argv.iter().map(|word| shell_quote(word)));
        script.push_str(&words.join(" "));
        script.push('\n');
    }
    Ok(script)
}

/// A guest sees the host's root filesystem alone (see `guest`): what it runs must be on it.
fn same_filesystem_as_root(paths: &[&Path]) -> anyhow::Result<()> {
    let root = fs::metadata("/")?.dev();
    for path in paths {
        let device = fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .dev();
        ensure!(
            device == root,
            "{} is not on the root filesystem, which is all the guests see: put the workspace \
             and CARGO_TARGET_DIR there",
            path.display()
        );
    }
    Ok(())
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// `value` as one word of POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
