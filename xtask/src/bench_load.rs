//! `cargo xtask bench-load`: the daemon attached to a busy hop, against the same hop without
//! it, in one run.
//!
//! nginx in a network namespace stands in for Open WebUI ([`stand_in`]): it answers
//! `POST /api/chat/completions` with Open WebUI's JSON completion (usage included), or with
//! its chunked SSE stream (usage in the last event), and serves a 16 KiB JavaScript bundle.
//! wrk in the root namespace keeps 64 connections busy through the veth pair, with a session
//! JWT signed by the test secret the daemon is given, so every request is verified. Two
//! workloads: `completions` (non-streamed completions only, the smallest exchange the monitor
//! fully parses) and `mix` (completion, stream, bundle in turn).
//!
//! Each round runs each workload detached (no daemon) and attached (a fresh daemon on the
//! host-side veth, its port set to the stand-in's); the rounds alternate so drift of this
//! shared machine spreads over both. Attached runs read, besides wrk's rate and p99 latency:
//! the daemon's CPU time (`/proc/PID/stat`) and the kernel programs' run time
//! (`kernel.bpf_stats_enabled`, read from the daemon's program descriptors), both per request
//! nginx served; the requests the daemon counted (`openwebui_http_requests_total`) and the
//! records it lost (`webui_monitor_capture_lost_total`); its RSS. Then, with a fresh daemon,
//! clients open idle keep-alive connections (one request each), and its RSS is read at each
//! count.
//!
//! The benchmark and its children run at nice −10 ([`raise_priority`]). Everything it creates
//! — namespace, veth pair, processes, the sysctl — is undone by guards, also on failure and on
//! Ctrl-C. Not a timed test: it prints a table of ratios against the
//! detached runs of the same round.
mod probe;
mod report;
mod stand_in;

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use hmac::Mac as _;

use probe::{ProgramStats, Sched, Wrk};
use stand_in::{APP_ADDR, HOST_IF, Network, PORT, Process, StandIn, Sysctl};

/// The `WEBUI_SECRET_KEY` the daemon verifies the load's JWT with.
const SECRET: &str = "bench-load-webui-secret-key-0123456789";
/// The user the JWT names.
const USER: &str = "700c1556-9d86-452a-880f-edbc8a74ead8";
/// Where the daemon serves /metrics.
const METRICS: &str = "127.0.0.1:19747";
/// The label of `openwebui_auth_total` that counts JWTs whose signature checked out.
const VERIFIED: &str = r#"result="verified""#;
/// wrk's threads.
const THREADS: u32 = 2;

pub struct Options {
    /// wrk's keep-alive connections.
    pub connections: u32,
    /// The daemon's `capture.skip_min_bytes` (0: every payload byte is copied).
    pub skip_min_bytes: u64,
    pub rounds: usize,
    pub seconds: u64,
    pub idle: Vec<u32>,
    pub profile: bool,
    /// The daemon's nice level relative to the benchmark's ([`NICE`]).
    pub daemon_nice: i32,
    /// More `--set KEY=VALUE` for the daemon.
    pub daemon_settings: Vec<String>,
}

#[derive(Clone, Copy)]
enum Workload {
    Completions,
    Mix,
}

impl Workload {
    const ALL: [Self; 2] = [Self::Completions, Self::Mix];

    fn name(self) -> &'static str {
        match self {
            Self::Completions => "completions",
            Self::Mix => "mix",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Completions => {
                "POST /api/chat/completions, JSON answer with usage, session JWT (Authorization)"
            }
            Self::Mix => {
                "in turn: the JSON completion, a streamed one (chunked SSE with usage), a 16 KiB \
                 JavaScript bundle (token cookie)"
            }
        }
    }

    fn script(self) -> &'static str {
        match self {
            Self::Completions => include_str!("bench_load/completions.lua"),
            Self::Mix => include_str!("bench_load/mix.lua"),
        }
    }
}

/// One wrk run, and with the daemon attached what it cost and counted.
struct Run {
    wrk: Wrk,
    /// Requests nginx served during the run.
    served: u64,
    daemon: Option<DaemonCost>,
}

struct DaemonCost {
    cpu_seconds: f64,
    /// Wall-clock seconds from the snapshot before the run to the one after the daemon
    /// caught up: the span `cpu_seconds`, `capture_thread` and `threads` cover.
    wall_seconds: f64,
    /// The scheduler's view of the thread that reads the ring (the main thread), and of all
    /// the daemon's threads.
    capture_thread: Sched,
    threads: Sched,
    /// Reads of the ring, and the ring bytes they took (`webui_monitor_capture_ring_read_bytes`).
    ring_reads: u64,
    ring_read_bytes: u64,
    kernel: ProgramStats,
    counted: u64,
    verified: u64,
    lost: u64,
    rss_kib: u64,
}

struct Round {
    detached: Run,
    attached: Run,
}

impl Round {
    fn cost(&self) -> &DaemonCost {
        self.attached
            .daemon
            .as_ref()
            .expect("an attached run has the daemon's cost")
    }
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!(
            "the benchmark creates a network namespace and loads eBPF programs: run \
             `cargo xtask bench-load` as root"
        );
    }
    ensure!(
        options.rounds > 0 && options.seconds > 0 && options.connections >= THREADS,
        "nothing to run (wrk needs at least one connection per thread: --connections {THREADS} or more)"
    );
    for tool in ["wrk", "nginx", "python3", "curl", "ip"] {
        ensure!(
            which(tool),
            "{tool} is missing: `cargo xtask setup` installs it"
        );
    }
    stand_in::interrupt()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let rundir = target.join("bench-load");
    let _ = fs::remove_dir_all(&rundir);
    fs::create_dir_all(&rundir)?;

    eprintln!("building webui-monitor (release) ...");
    crate::status(
        crate::cargo()
            .args([
                "build",
                "--release",
                "-p",
                "webui-monitor",
                "--bin",
                "webui-monitor",
            ])
            .current_dir(&root),
    )?;
    let bin = target.join("release/webui-monitor");
    let _priority = raise_priority()?;

    let jwt = session_jwt(SECRET, USER)?;
    let mut scripts = Vec::new();
    for workload in Workload::ALL {
        let path = rundir.join(format!("{}.lua", workload.name()));
        fs::write(
            &path,
            workload
                .script()
                .replace("@JWT@", &jwt)
                .replace("@DONE@", include_str!("bench_load/done.lua")),
        )?;
        scripts.push(path);
    }

    eprintln!("network namespace, veth pair and nginx ...");
    let _network = Network::create()?;
    let _stand_in = StandIn::start(&rundir)?;
    check_answers(&jwt)?;
    let _stats = Sysctl::set("kernel.bpf_stats_enabled", "1")?;

    eprintln!("warm-up (2 s, detached) ...");
    load(&rundir, &scripts[0], 2, options.connections, None)?;

    let mut results: Vec<Vec<Round>> = Workload::ALL.iter().map(|_| Vec::new()).collect();
    let mut kept = None;
    for round in 1..=options.rounds {
        for (index, workload) in Workload::ALL.into_iter().enumerate() {
            eprintln!(
                "round {round}/{}, {}: detached ...",
                options.rounds,
                workload.name()
            );
            let detached = load(
                &rundir,
                &scripts[index],
                options.seconds,
                options.connections,
                None,
            )?;
            eprintln!(
                "round {round}/{}, {}: attached ...",
                options.rounds,
                workload.name()
            );
            drop(kept.take()); // one daemon at a time: the previous one detaches here
            let mut daemon = Daemon::start(&bin, &rundir, options)?;
            let attached = load(
                &rundir,
                &scripts[index],
                options.seconds,
                options.connections,
                Some(&mut daemon),
            )?;
            eprintln!(
                "  {:.0} → {:.0} requests/s",
                detached.wrk.rate(),
                attached.wrk.rate()
            );
            results[index].push(Round { detached, attached });
            kept = Some(daemon);
        }
    }
    let mut daemon = kept.context("no attached run")?;

    if options.profile {
        profile(
            &rundir,
            &scripts[0],
            options.seconds,
            options.connections,
            &mut daemon,
        )?;
    }
    // Idle connections on a fresh daemon: one that carried the load keeps the memory it took
    // (allocator caches, the ring's pages), which would hide the connections' own cost.
    drop(daemon);
    let mut daemon = Daemon::start(&bin, &rundir, options)?;
    let idle = idle_connections(&rundir, &mut daemon, &options.idle)?;

    let report = report::render(options, &results, &idle);
    println!("{report}");
    fs::write(rundir.join("report.md"), &report)?;
    eprintln!("(also in {})", rundir.join("report.md").display());
    Ok(())
}

/// Nice level of the benchmark and everything it starts.
const NICE: i32 = -10;

/// Runs the benchmark and its children (nginx, wrk, the daemon, the clients) at [`NICE`]:
/// they then compete for the CPUs among themselves as on a host of their own, while other
/// work on a shared machine (compilers, tests) takes what they leave. At the default nice
/// level a parallel build starves the daemon, and the ring overflows for want of CPU time
/// that a dedicated proxy host would give it.
///
/// Where the kernel groups tasks by session (`kernel.sched_autogroup_enabled`), a task's nice
/// level only weighs against its own session's tasks, and each session's group gets an equal
/// share of the CPUs whatever its tasks' levels: the benchmark's session group is set to
/// [`NICE`] too (`/proc/self/autogroup`, sched(7)), and back to its level when the returned
/// guard drops.
fn raise_priority() -> anyhow::Result<AutogroupNice> {
    // SAFETY: a plain syscall on this process.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    ensure!(
        result == 0,
        "setting nice {NICE}: {}",
        std::io::Error::last_os_error()
    );
    AutogroupNice::set(NICE)
}

/// The nice level of this session's autogroup, restored on drop (none where autogroups are
/// off or absent).
struct AutogroupNice {
    before: Option<i32>,
}

impl AutogroupNice {
    const PATH: &str = "/proc/self/autogroup";

    fn set(nice: i32) -> anyhow::Result<Self> {
        let enabled = fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
            .is_ok_and(|v| v.trim() == "1");
        // "/autogroup-488 nice 0"
        let before = fs::read_to_string(Self::PATH).ok().and_then(|text| {
            text.split_whitespace()
                .skip_while(|w| *w != "nice")
                .nth(1)?
                .parse::<i32>()
                .ok()
        });
        let Some(before) = before.filter(|_| enabled) else {
            return Ok(Self { before: None });
        };
        fs::write(Self::PATH, nice.to_string())
            .with_context(|| format!("setting this session's autogroup to nice {nice}"))?;
        Ok(Self {
            before: Some(before),
        })
    }
}

impl Drop for AutogroupNice {
    fn drop(&mut self) {
        if let Some(before) = self.before
            && let Err(error) = fs::write(Self::PATH, before.to_string())
        {
            eprintln!("restoring this session's autogroup to nice {before}: {error}");
        }
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A session JWT as Open WebUI 0.12.4 issues it (claims of the fixtures' tokens), valid for a
/// day from now, signed HS256 with `secret`.
fn session_jwt(secret: &str, user: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = format!(
        r#"{{"id":"{user}","typ":"session","auth_method":"password","auth_time":{now},"session_stamp":"88f2b293-d6a3-4f84-94bb-ad22e92c27c0","mfa_verified":false,"exp":{exp},"jti":"3d2d146b-78de-41c6-b3ed-55038b55d22b","iat":{now}}}"#,
        exp = now + 86_400
    );
    let signing_input = format!("{header}.{}", b64.encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        b64.encode(mac.finalize().into_bytes())
    ))
}

/// The stand-in answers as the workloads expect: the completion with usage, the stream
/// chunked with usage, the bundle whole.
fn check_answers(jwt: &str) -> anyhow::Result<()> {
    let url = format!("http://{APP_ADDR}:{PORT}");
    let auth = format!("Authorization: Bearer {jwt}");
    let completion = stand_in::run(
        "curl",
        &[
            "-sf",
            "-X",
            "POST",
            "-H",
            &auth,
            "-d",
            "{}",
            &format!("{url}/api/chat/completions"),
        ],
    )?;
    ensure!(
        completion.contains(r#""usage":{"prompt_tokens":4"#),
        "the stand-in's completion has no usage: {completion}"
    );
    let stream = stand_in::run(
        "curl",
        &[
            "-sfi",
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "X-Bench-Stream: 1",
            "-d",
            "{}",
            &format!("{url}/api/chat/completions"),
        ],
    )?;
    ensure!(
        stream
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
            && stream.contains(r#""usage": {"prompt_tokens": 4"#)
            && stream.ends_with("data: [DONE]\n\n"),
        "the stand-in's stream is not chunked SSE with usage: {stream}"
    );
    let bundle = stand_in::run(
        "curl",
        &["-sf", &format!("{url}/_app/immutable/chunks/Bench0Load.js")],
    )?;
    ensure!(
        bundle.len() == 16 << 10,
        "the bundle has {} bytes",
        bundle.len()
    );
    Ok(())
}

/// The daemon, attached to the host-side veth.
struct Daemon {
    process: Process,
    log: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, rundir: &Path, options: &Options) -> anyhow::Result<Self> {
        let log = rundir.join("daemon.log");
        // nice(1) adjusts its own level and execs the daemon: every thread the daemon starts
        // inherits the level.
        let mut command = Command::new("nice");
        command
            .args(["-n", &options.daemon_nice.to_string()])
            .arg(bin)
            .args(["run", "--config", "/dev/null", "--interface", HOST_IF])
            .args(["--port", &PORT.to_string(), "--listen", METRICS])
            .arg("--set")
            .arg(format!("capture.skip_min_bytes={}", options.skip_min_bytes))
            .args(options.daemon_settings.iter().flat_map(|s| ["--set", s]))
            .env("WEBUI_SECRET_KEY", SECRET);
        let mut daemon = Self {
            process: Process::spawn("webui-monitor", &mut command, &log)?,
            log,
        };
        stand_in::wait_for("the daemon to attach", Duration::from_secs(60), || {
            stand_in::run("curl", &["-sf", &format!("http://{METRICS}/readyz")]).is_ok()
        })
        .with_context(|| {
            format!(
                "the daemon's log: {}",
                fs::read_to_string(&daemon.log).unwrap_or_default()
            )
        })?;
        daemon.alive()?;
        Ok(daemon)
    }

    /// Fails, with the end of its log, if the daemon has exited.
    fn alive(&mut self) -> anyhow::Result<()> {
        self.process.alive().with_context(|| {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            format!(
                "the daemon's log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }

    fn metrics(&self) -> anyhow::Result<String> {
        stand_in::run(
            "curl",
            &[
                "-sf",
                "--max-time",
                "5",
                &format!("http://{METRICS}/metrics"),
            ],
        )
    }

    fn counted(&self) -> anyhow::Result<u64> {
        Ok(probe::metric_sum(&self.metrics()?, "openwebui_http_requests_total") as u64)
    }
}

/// One wrk run of `script` for `seconds`; with a daemon, what it cost and counted.
fn load(
    rundir: &Path,
    script: &Path,
    seconds: u64,
    connections: u32,
    daemon: Option<&mut Daemon>,
) -> anyhow::Result<Run> {
    let served_before = StandIn::served()?;
    let before = match &daemon {
        Some(d) => {
            let pid = d.process.pid();
            let metrics = d.metrics()?;
            Some((
                probe::cpu_seconds(pid)?,
                probe::program_stats(pid)?,
                probe::metric_sum(&metrics, "openwebui_http_requests_total") as u64,
                probe::metric_sum_where(&metrics, "openwebui_auth_total", VERIFIED) as u64,
                (
                    std::time::Instant::now(),
                    probe::sched(pid)?,
                    ring_reads(&metrics),
                ),
            ))
        }
        None => None,
    };
    let out = rundir.join("wrk.log");
    let mut wrk = Process::spawn(
        "wrk",
        Command::new("wrk")
            .args(["-t", &THREADS.to_string(), "-c", &connections.to_string()])
            .args(["-d", &format!("{seconds}s"), "--timeout", "5s", "-s"])
            .arg(script)
            .arg(format!("http://{APP_ADDR}:{PORT}/api/chat/completions")),
        &out,
    )?;
    let status = wrk.wait(Duration::from_secs(seconds + 30))?;
    let output = fs::read_to_string(&out)?;
    ensure!(status.success(), "wrk failed ({status}):\n{output}");
    let wrk = Wrk::parse(&output)?;
    // This query counts itself.
    let served = StandIn::served()? - served_before - 1;

    let Some(daemon) = daemon else {
        return Ok(Run {
            wrk,
            served,
            daemon: None,
        });
    };
    let (
        cpu_before,
        kernel_before,
        counted_before,
        verified_before,
        (start, sched_before, reads_before),
    ) = before.context("daemon snapshot")?;
    // The daemon reads the ring every 10 ms; wait until it has counted everything nginx
    // served, or its count stops moving.
    let mut last = (u64::MAX, std::time::Instant::now());
    stand_in::wait_for(
        "the daemon to count the run",
        Duration::from_secs(30),
        || {
            let counted = daemon.counted().unwrap_or(0).saturating_sub(counted_before);
            if counted != last.0 {
                last = (counted, std::time::Instant::now());
            }
            counted >= served || last.1.elapsed() > Duration::from_secs(2)
        },
    )?;
    let pid = daemon.process.pid();
    let cpu_seconds = probe::cpu_seconds(pid)? - cpu_before;
    let kernel = probe::program_stats(pid)? - kernel_before;
    let wall_seconds = start.elapsed().as_secs_f64();
    let (capture_thread, threads) = probe::sched(pid)?;
    // Loss counters reach the metrics every second (`stats_interval`).
    stand_in::sleep(Duration::from_millis(1200))?;
    let metrics = daemon.metrics()?;
    daemon.alive()?;
    // The daemon's whole exposition after the run, for looking into a result.
    let name = script.file_stem().unwrap_or_default().to_string_lossy();
    fs::write(rundir.join(format!("metrics-{name}.txt")), &metrics)?;
    let reads = ring_reads(&metrics);
    Ok(Run {
        wrk,
        served,
        daemon: Some(DaemonCost {
            cpu_seconds,
            wall_seconds,
            capture_thread: capture_thread - sched_before.0,
            threads: threads - sched_before.1,
            ring_reads: reads.0.saturating_sub(reads_before.0),
            ring_read_bytes: reads.1.saturating_sub(reads_before.1),
            kernel,
            counted: probe::metric_sum(&metrics, "openwebui_http_requests_total") as u64
                - counted_before,
            verified: probe::metric_sum_where(&metrics, "openwebui_auth_total", VERIFIED) as u64
                - verified_before,
            lost: probe::metric_sum(&metrics, "webui_monitor_capture_lost_total") as u64,
            rss_kib: probe::rss_kib(pid)?,
        }),
    })
}

/// Reads of the ring so far and the bytes they took, from the daemon's exposition.
fn ring_reads(metrics: &str) -> (u64, u64) {
    (
        probe::metric_sum(metrics, "webui_monitor_capture_ring_read_bytes_count") as u64,
        probe::metric_sum(metrics, "webui_monitor_capture_ring_read_bytes_sum") as u64,
    )
}

/// One more attached completions run, sampled by `perf record` (cpu-clock: this guest has no
/// PMU; DWARF call graphs: the release build keeps no frame pointers). Not in the table.
fn profile(
    rundir: &Path,
    script: &Path,
    seconds: u64,
    connections: u32,
    daemon: &mut Daemon,
) -> anyhow::Result<()> {
    let data = rundir.join("perf.data");
    eprintln!("profile: attached completions under perf record ...");
    let mut perf = Process::spawn(
        "perf",
        Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "999",
                "--call-graph",
                "dwarf,16384",
            ])
            .args(["-p", &daemon.process.pid().to_string(), "-o"])
            .arg(&data)
            .args(["--", "sleep", &(seconds + 1).to_string()]),
        &rundir.join("perf.log"),
    )?;
    stand_in::sleep(Duration::from_millis(500))?;
    let run = load(rundir, script, seconds, connections, Some(daemon))?;
    perf.wait(Duration::from_secs(120))?;
    eprintln!(
        "  {} requests profiled; `perf report -i {} --no-children` shows where the time goes",
        run.served,
        data.display()
    );
    Ok(())
}

/// The daemon's RSS (KiB) with no idle connection and with each count of `counts`.
///
/// One client per source address opens its share of the connections (a client's descriptors
/// are capped by its hard limit, a source address's ports at about 28,000).
fn idle_connections(
    rundir: &Path,
    daemon: &mut Daemon,
    counts: &[u32],
) -> anyhow::Result<Vec<(u32, u64)>> {
    let pid = daemon.process.pid();
    let mut rss = vec![(0, probe::rss_kib(pid)?)];
    if counts.is_empty() {
        return Ok(rss);
    }
    let script = rundir.join("idle_connections.py");
    fs::write(&script, include_str!("bench_load/idle_connections.py"))?;
    let mut clients = Vec::new();
    for source in Network::sources() {
        let child = Command::new("python3")
            .arg(&script)
            .args([
                "--server",
                &format!("{APP_ADDR}:{PORT}"),
                "--source",
                source,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting an idle-connection client")?;
        let mut client = Process {
            child,
            name: "an idle-connection client",
        };
        let stdin = client.child.stdin.take().context("client stdin")?;
        let stdout = BufReader::new(client.child.stdout.take().context("client stdout")?);
        clients.push((client, stdin, stdout));
    }
    let mut open = 0;
    for &count in counts {
        eprintln!("idle connections: opening {count} ...");
        let counted_before = daemon.counted()?;
        let n = clients.len() as u32;
        let share = |i: usize| count / n + u32::from((i as u32) < count % n);
        for (i, (_, stdin, _)) in clients.iter_mut().enumerate() {
            writeln!(stdin, "open {}", share(i))?;
        }
        for (i, (_, _, stdout)) in clients.iter_mut().enumerate() {
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            ensure!(
                line.trim() == format!("open {}", share(i)),
                "an idle-connection client answered {line:?}"
            );
        }
        let new = u64::from(count.saturating_sub(open));
        open = count;
        stand_in::wait_for(
            "the daemon to count the idle connections' requests",
            Duration::from_secs(60),
            || daemon.counted().is_ok_and(|c| c >= counted_before + new),
        )?;
        stand_in::sleep(Duration::from_secs(1))?;
        daemon.alive()?;
        rss.push((count, probe::rss_kib(pid)?));
    }
    for (mut client, mut stdin, _) in clients {
        writeln!(stdin, "close")?;
        drop(stdin);
        client.wait(Duration::from_secs(60))?;
    }
    Ok(rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwt_verifies_with_the_secret() {
        let jwt = session_jwt(SECRET, USER).unwrap();
        let (signing_input, signature) = jwt.rsplit_once('.').unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        mac.verify_slice(&b64.decode(signature).unwrap()).unwrap();
        let claims = b64
            .decode(signing_input.split_once('.').unwrap().1)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["id"], USER);
        assert_eq!(claims["typ"], "session");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            86_400
        );
    }
}
