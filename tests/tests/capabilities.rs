//! The daemon runs as an unprivileged user with exactly the capabilities the systemd unit
//! grants (its `AmbientCapabilities=`, read from the unit file so the two cannot drift apart),
//! and each of them is necessary: without it the daemon refuses to start with a message that
//! names it. With `RLIMIT_MEMLOCK` at 64 KiB, as the unit forbids raising it: BPF memory is
//! charged to the memory cgroup.
//!
//! Each case runs `webui-monitor run` under `setpriv` (no root uid, bounding/ambient/inheritable
//! sets cut to the given capabilities) in its own network namespace on a veth pair, so it
//! attaches XDP in driver mode and TC through tcx, as on a real host.
use std::{fs, os::unix::fs::PermissionsExt as _, time::Duration};

use webui_monitor_tests::{
    net::{ChildGuard, Netns, daemon_binary, wait_for},
    stack::repo_root,
};

/// `AmbientCapabilities=` of the systemd unit, as setpriv names them (`bpf`, `net_admin`, …).
fn unit_capabilities() -> anyhow::Result<Vec<String>> {
    let unit = fs::read_to_string(repo_root().join("deploy/systemd/webui-monitor.service"))?;
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .ok_or_else(|| anyhow::anyhow!("the unit has no AmbientCapabilities="))?;
    Ok(line
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect())
}

fn setpriv_set(caps: &[String]) -> String {
    caps.iter()
        .fold("-all".to_owned(), |set, c| format!("{set},+{c}"))
}

/// Fields drop in order: the daemon is killed before its binary's directory is removed.
struct Daemon {
    child: ChildGuard,
    listen: String,
    _dir: tempfile::TempDir,
}

/// Starts the daemon in `ns` on `interface` as nobody with `caps` (setpriv syntax).
fn start_as_nobody(ns: &Netns, interface: &str, caps: &str, port: u16) -> anyhow::Result<Daemon> {
    // The test binary's target directory may not be searchable by nobody: run a copy.
    let dir = tempfile::Builder::new().prefix("wm-caps-").tempdir()?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
    let binary = dir.path().join("webui-monitor");
    fs::copy(daemon_binary()?, &binary)?;
    let listen = format!("127.0.0.1:{port}");
    let set = caps;
    let child = ns
        .command(
            "prlimit",
            &[
                "--memlock=65536:65536",
                "--",
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &format!("--inh-caps={set}"),
                &format!("--ambient-caps={set}"),
                &format!("--bounding-set={set}"),
                "--",
                binary.to_str().unwrap_or_default(),
                "run",
                "--config",
                "/dev/null",
                "--interface",
                interface,
                "--listen",
                &listen,
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    Ok(Daemon {
        child: ChildGuard(child),
        listen,
        _dir: dir,
    })
}

fn veth_namespace(tag: &str) -> anyhow::Result<(Netns, String)> {
    let pid = std::process::id() % 100_000;
    let ns = Netns::new(&format!("wm-caps-{tag}-{pid}"))?;
    let (a, b) = (format!("wc{tag}a{pid}"), format!("wc{tag}b{pid}"));
    ns.run(
        "ip",
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    )?;
    for iface in [&a, &b, "lo"] {
        ns.run("ip", &["link", "set", iface, "up"])?;
    }
    Ok((ns, a))
}

#[test]
fn runs_as_nobody_with_the_units_capabilities() -> anyhow::Result<()> {
    let (ns, interface) = veth_namespace("ok")?;
    let caps = setpriv_set(&unit_capabilities()?);
    let mut daemon = start_as_nobody(&ns, &interface, &caps, 19751)?;
    let readyz = format!("http://{}/readyz", daemon.listen);
    let ready = wait_for("the daemon to attach", Duration::from_secs(60), || {
        ns.run("curl", &["-sf", &readyz]).is_ok()
    });
    if let Err(error) = ready {
        daemon.child.signal_and_wait(libc::SIGKILL)?;
        let output = daemon.child.0.wait_with_output_lossy();
        anyhow::bail!("{error}; daemon output:\n{output}");
    }
    // After attaching: the main loop's thread (the process's first) keeps CAP_BPF and
    // CAP_NET_ADMIN, every other thread holds nothing; no thread can gain anything back.
    let pid = daemon.child.0.id();
    let threads = thread_capabilities(pid)?;
    const BPF_AND_NET_ADMIN: u64 = (1 << 39) | (1 << 12);
    assert!(threads.len() >= 3, "{threads:?}");
    for t in &threads {
        let want = if t.tid == pid { BPF_AND_NET_ADMIN } else { 0 };
        assert_eq!((t.effective, t.permitted), (want, want), "{t:?}");
        assert_eq!(
            (t.inheritable, t.ambient, t.no_new_privs),
            (0, 0, true),
            "{t:?}"
        );
    }
    // Two stats ticks later it still runs: reading the maps needs no more than it kept.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(daemon.child.0.try_wait()?.is_none(), "the daemon exited");
    let status = daemon.child.signal_and_wait(libc::SIGTERM)?;
    assert!(status.success(), "daemon exit: {status}");
    Ok(())
}

/// One thread's capability sets and `no_new_privs`, from /proc.
#[derive(Debug)]
struct ThreadCaps {
    tid: u32,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    ambient: u64,
    no_new_privs: bool,
}

fn thread_capabilities(pid: u32) -> anyhow::Result<Vec<ThreadCaps>> {
    let mut threads = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let tid: u32 = entry.file_name().to_string_lossy().parse()?;
        let status = fs::read_to_string(entry.path().join("status"))?;
        let field = |name: &str| -> anyhow::Result<&str> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/task/{tid}/status"))
        };
        let hex =
            |name: &str| -> anyhow::Result<u64> { Ok(u64::from_str_radix(field(name)?, 16)?) };
        threads.push(ThreadCaps {
            tid,
            effective: hex("CapEff:")?,
            permitted: hex("CapPrm:")?,
            inheritable: hex("CapInh:")?,
            ambient: hex("CapAmb:")?,
            no_new_privs: field("NoNewPrivs:")? == "1",
        });
    }
    Ok(threads)
}

#[test]
fn every_capability_of_the_unit_is_needed_and_named_when_missing() -> anyhow::Result<()> {
    let granted = unit_capabilities()?;
    for (i, dropped) in granted.iter().enumerate() {
        let fewer: Vec<String> = granted.iter().filter(|c| *c != dropped).cloned().collect();
        let (ns, interface) = veth_namespace(&format!("n{i}"))?;
        let port = 19760 + u16::try_from(i)?;
        let mut daemon = start_as_nobody(&ns, &interface, &setpriv_set(&fewer), port)?;
        // Reads to end of file: returns when the daemon has exited.
        let output = daemon.child.0.wait_with_output_lossy();
        let status = daemon.child.0.wait()?;
        assert!(!status.success(), "without {dropped}:\n{output}");
        let name = format!("CAP_{}", dropped.to_ascii_uppercase());
        assert!(output.contains(&name), "without {dropped}:\n{output}");
    }
    Ok(())
}

trait OutputLossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl OutputLossy for std::process::Child {
    fn wait_with_output_lossy(&mut self) -> String {
        use std::io::Read as _;
        let mut text = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        if let Some(mut err) = self.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}
