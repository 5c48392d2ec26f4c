//! The daemon following interfaces that come and go, in network namespaces of their own: a
//! veth deleted and recreated under load, and Docker's default topology (a Linux bridge with
//! a "container" namespace behind a veth enslaved to it). Counts are exact: requests the
//! client completed are the requests counted, and nothing stays attached after the daemon
//! exits (checked with `bpftool net` and the interfaces' own views).
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use std::os::fd::AsRawFd as _;

use anyhow::ensure;
use aya::programs::{SchedClassifier, TcAttachType};
use webui_monitor_tests::net::{self, ChildGuard, Netns};

const SERVER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/recording_server.py");
/// A hang guard for setup steps, not a timing assertion.
const SETUP_DEADLINE: Duration = Duration::from_secs(60);

fn wait_for(what: &str, done: impl FnMut() -> bool) -> anyhow::Result<()> {
    net::wait_for(what, SETUP_DEADLINE, done)
}

/// A per-test scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("webui-monitor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sum of every series of `name` whose labels include `labels`.
fn sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .map(|v| v as u64)
        .sum()
}

/// The daemon under test, in `ns`, serving on `listen`.
struct Daemon<'a> {
    ns: &'a Netns,
    child: ChildGuard,
    listen: String,
}

impl<'a> Daemon<'a> {
    fn start(ns: &'a Netns, port: u16, args: &[&str]) -> anyhow::Result<Self> {
        let binary = net::daemon_binary()?.to_string_lossy().into_owned();
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["run", "--listen", &listen];
        all.extend_from_slice(args);
        let child = ChildGuard(ns.command(&binary, &all).spawn()?);
        Ok(Self { ns, child, listen })
    }

    fn get(&self, path: &str) -> anyhow::Result<String> {
        self.ns
            .run("curl", &["-sf", &format!("http://{}{path}", self.listen)])
    }

    fn ready(&self) -> bool {
        self.get("/readyz").is_ok()
    }

    /// Waits until `/metrics` satisfies `done`; returns that exposition.
    fn metrics_until(
        &self,
        what: &str,
        mut done: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut last = String::new();
        let outcome = wait_for(what, || {
            let Ok(text) = self.get("/metrics") else {
                return false;
            };
            let ok = done(&text);
            last = text;
            ok
        });
        match outcome {
            Ok(()) => Ok(last),
            Err(error) => anyhow::bail!("{error}; last /metrics:\n{last}"),
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        let status = self.child.signal_and_wait(libc::SIGTERM)?;
        ensure!(status.success(), "daemon exit: {status}");
        Ok(())
    }
}

/// Programs attached to interfaces of `ns`: XDP and classic TC as `bpftool net` lists them,
/// and tcx egress programs of `interfaces` (which bpftool before 7.3 does not list), queried
/// over netlink from inside the namespace.
fn attached_programs(ns: &Netns, interfaces: &[&str]) -> anyhow::Result<Vec<String>> {
    let out = ns.run("bpftool", &["net", "show"])?;
    let mut programs: Vec<String> = out
        .lines()
        .filter(|l| l.contains(" id ") || l.contains(" prog_id "))
        .map(str::to_owned)
        .collect();
    let name = ns.name.clone();
    let interfaces: Vec<String> = interfaces.iter().map(|s| (*s).to_owned()).collect();
    let tcx = thread::spawn(move || -> anyhow::Result<Vec<String>> {
        let file = std::fs::File::open(format!("/var/run/netns/{name}"))?;
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        ensure!(rc == 0, "setns: {}", std::io::Error::last_os_error());
        let mut out = Vec::new();
        for interface in interfaces {
            let c_name = std::ffi::CString::new(interface.clone())?;
            // An interface that does not exist (or a kernel without tcx) has none.
            if let Ok((_, found)) =
                SchedClassifier::query_tcx(c_name.as_c_str(), TcAttachType::Egress)
            {
                out.extend(found.iter().map(|_| format!("{interface} tcx/egress")));
            }
        }
        Ok(out)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("tcx query panicked"))??;
    programs.extend(tcx);
    Ok(programs)
}

fn veth_up(server: &Netns, client: &Netns, a: &str, b: &str, net: &str) -> anyhow::Result<()> {
    veth_add(server, client, a, b)?;
    veth_configure(server, client, a, b, net)
}

/// A veth pair, `a` in `server` and `b` in `client`, both down.
fn veth_add(server: &Netns, client: &Netns, a: &str, b: &str) -> anyhow::Result<()> {
    let peer = [
        "link",
        "add",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        &client.name,
    ];
    server.run("ip", &peer)?;
    Ok(())
}

/// Addresses `net.1` on `a` and `net.2` on `b`, both up.
fn veth_configure(
    server: &Netns,
    client: &Netns,
    a: &str,
    b: &str,
    net: &str,
) -> anyhow::Result<()> {
    server.run("ip", &["addr", "add", &format!("{net}.1/24"), "dev", a])?;
    server.run("ip", &["link", "set", a, "up"])?;
    client.run("ip", &["addr", "add", &format!("{net}.2/24"), "dev", b])?;
    client.run("ip", &["link", "set", b, "up"])?;
    Ok(())
}

/// One request from namespace `client` to `url`: whether the whole response arrived.
fn request(client: &str, url: &str) -> bool {
    net::run(
        "ip",
        &[
            "netns",
            "exec",
            client,
            "curl",
            "-sf",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            url,
        ],
    )
    .is_ok()
}

/// Completed requests, counted from /metrics: every status but `none` (no response).
fn answered(text: &str) -> u64 {
    sum(text, "openwebui_http_requests_total", &[("status", "200")])
}

/// A veth the daemon follows by pattern is deleted and recreated under the same name while a
/// client keeps sending requests through it. The capture resumes on the new interface, every
/// request the client completed is counted once, and the daemon's exit leaves nothing attached.
#[test]
fn veth_deleted_and_recreated_under_load_is_followed() -> anyhow::Result<()> {
    let pid = std::process::id() % 100_000;
    let server = Netns::new(&format!("wm-fs-{pid}"))?;
    let client = Netns::new(&format!("wm-fc-{pid}"))?;
    let (a, b) = (format!("wmf{pid}"), format!("wmg{pid}"));
    let net = "10.78.0";
    server.run("ip", &["link", "set", "lo", "up"])?;
    client.run("ip", &["link", "set", "lo", "up"])?;
    veth_up(&server, &client, &a, &b, net)?;
    let scratch = Scratch::new("follow-srv")?;
    let _http = ChildGuard(
        server
            .command(
                "python3",
                &[
                    SERVER_SCRIPT,
                    &format!("{net}.1"),
                    "8080",
                    &scratch.0.to_string_lossy(),
                ],
            )
            .spawn()?,
    );
    wait_for("the test server", || scratch.0.join("ready").exists())?;

    // A pattern, as for container veths; the client's side lives in another namespace.
    let daemon = Daemon::start(&server, 19751, &["--interface", "wmf*"])?;
    wait_for("the daemon to be ready", || daemon.ready())?;
    let attached = attached_programs(&server, &[&a])?;
    ensure!(
        attached.len() == 2 && attached.iter().all(|l| l.starts_with(&a)),
        "XDP and egress on {a}: {attached:?}"
    );

    let url = format!("http://{net}.1:8080/bytes/1000");
    // Phase 1: ten requests, nothing else.
    for _ in 0..10 {
        ensure!(request(&client.name, &url), "phase 1 request failed");
    }
    daemon.metrics_until("phase 1 counted", |t| answered(t) == 10)?;

    // Phase 2: a client sending without pause while the veth is deleted and recreated.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, done, url) = (Arc::clone(&stop), Arc::clone(&done), url.clone());
        let client = client.name.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if request(&client, &url) {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    wait_for("load before the deletion", || {
        done.load(Ordering::Relaxed) >= 5
    })?;
    server.run("ip", &["link", "del", &a])?;
    wait_for("/readyz to turn 503", || !daemon.ready())?;
    let gone = daemon.metrics_until("the detach counted", |t| {
        sum(
            t,
            "webui_monitor_capture_interface_events_total",
            &[("event", "detach")],
        ) == 1
    })?;
    ensure!(
        sum(&gone, "webui_monitor_capture_interface_attached", &[]) == 0,
        "no interface attached while the veth is gone:\n{gone}"
    );
    let before_recreation = done.load(Ordering::Relaxed);
    // Recreated as container runtimes do: created, then configured. The daemon attaches when
    // the link appears; traffic can flow once it is up, and by then the capture is attached
    // (waiting for /readyz keeps the count exact, not the daemon's speed).
    veth_add(&server, &client, &a, &b)?;
    wait_for("/readyz to turn 200 again", || daemon.ready())?;
    veth_configure(&server, &client, &a, &b, net)?;
    wait_for("load after the recreation", || {
        done.load(Ordering::Relaxed) >= before_recreation + 5
    })?;
    stop.store(true, Ordering::Relaxed);
    load.join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    let completed = done.load(Ordering::Relaxed);
    ensure!(completed >= 10, "{completed} requests under load");
    let text = daemon.metrics_until("phase 2 counted", |t| answered(t) >= 10 + completed)?;
    // Settled: nothing more arrives after a further second of mirrored counters.
    thread::sleep(Duration::from_secs(2));
    let text = daemon.get("/metrics").unwrap_or(text);
    assert_eq!(
        answered(&text),
        10 + completed,
        "each completed request counted once"
    );
    let unanswered = sum(
        &text,
        "openwebui_http_requests_total",
        &[("status", "none")],
    );
    eprintln!(
        "under load: {completed} requests completed ({before_recreation} before the \
         recreation), {unanswered} on the wire when the veth went"
    );
    // A request on the wire when the veth went never gets its response.
    assert!(unanswered <= 1, "{unanswered} unanswered requests");
    assert_eq!(
        sum(
            &text,
            "webui_monitor_capture_interface_events_total",
            &[("event", "attach")]
        ),
        2
    );
    assert_eq!(
        sum(
            &text,
            "webui_monitor_capture_interface_attached",
            &[("interface", a.as_str())]
        ),
        1
    );
    assert_eq!(
        sum(
            &text,
            "webui_monitor_capture_interface_attach_failures_total",
            &[]
        ),
        0
    );
    let attached = attached_programs(&server, &[&a])?;
    assert_eq!(attached.len(), 2, "XDP and egress once each: {attached:?}");

    // Phase 3: ten more, exactly.
    for _ in 0..10 {
        ensure!(request(&client.name, &url), "phase 3 request failed");
    }
    daemon.metrics_until("phase 3 counted", |t| answered(t) == 20 + completed)?;

    daemon.stop()?;
    assert_eq!(attached_programs(&server, &[&a])?, Vec::<String>::new());
    let link = server.run("ip", &["-d", "link", "show", "dev", &a])?;
    assert!(!link.contains("xdp"), "{link}");
    Ok(())
}

/// Docker's default topology: a bridge (like `docker0`) in the host namespace, a "container"
/// namespace behind a veth enslaved to it, the daemon attached to the bridge. Every request
/// and every response byte is counted.
#[test]
fn docker_bridge_topology_counts_exactly() -> anyhow::Result<()> {
    let pid = std::process::id() % 100_000;
    let host = Netns::new(&format!("wm-dh-{pid}"))?;
    let container = Netns::new(&format!("wm-dc-{pid}"))?;
    let (bridge, veth, eth) = (format!("wmbr{pid}"), format!("wmv{pid}"), "eth0");
    host.run("ip", &["link", "set", "lo", "up"])?;
    container.run("ip", &["link", "set", "lo", "up"])?;
    host.run("ip", &["link", "add", &bridge, "type", "bridge"])?;
    host.run("ip", &["addr", "add", "172.31.0.1/16", "dev", &bridge])?;
    host.run("ip", &["link", "set", &bridge, "up"])?;
    host.run(
        "ip",
        &[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            eth,
            "netns",
            &container.name,
        ],
    )?;
    host.run("ip", &["link", "set", &veth, "master", &bridge])?;
    host.run("ip", &["link", "set", &veth, "up"])?;
    container.run("ip", &["addr", "add", "172.31.0.2/16", "dev", eth])?;
    container.run("ip", &["link", "set", eth, "up"])?;
    container.run("ip", &["route", "add", "default", "via", "172.31.0.1"])?;
    let scratch = Scratch::new("bridge-srv")?;
    let _http = ChildGuard(
        container
            .command(
                "python3",
                &[
                    SERVER_SCRIPT,
                    "172.31.0.2",
                    "8080",
                    &scratch.0.to_string_lossy(),
                ],
            )
            .spawn()?,
    );
    wait_for("the container's server", || {
        scratch.0.join("ready").exists()
    })?;

    let daemon = Daemon::start(&host, 19752, &["--interface", &bridge])?;
    wait_for("the daemon to be ready", || daemon.ready())?;
    const REQUESTS: u64 = 20;
    const BODY: u64 = 5_000;
    for _ in 0..REQUESTS {
        ensure!(
            request(&host.name, &format!("http://172.31.0.2:8080/bytes/{BODY}")),
            "request through the bridge failed"
        );
    }
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n");
    let response_bytes = REQUESTS * (head.len() as u64 + BODY);
    // The kernel's counters reach /metrics on the daemon's 1 s tick, the pipeline's at once.
    let text =
        daemon.metrics_until("every request, response byte and connection counted", |t| {
            answered(t) == REQUESTS
                && sum(
                    t,
                    "openwebui_user_bytes_total",
                    &[("direction", "response")],
                ) == response_bytes
                && sum(t, "webui_monitor_tcp_connections_total", &[]) == REQUESTS
        })?;
    assert_eq!(answered(&text), REQUESTS);
    assert_eq!(
        sum(&text, "webui_monitor_tcp_connections_total", &[]),
        REQUESTS
    );
    assert_eq!(
        sum(&text, "webui_monitor_capture_lost_total", &[]),
        0,
        "nothing lost"
    );
    daemon.stop()?;
    assert_eq!(
        attached_programs(&host, &[&bridge, &veth])?,
        Vec::<String>::new()
    );
    Ok(())
}
