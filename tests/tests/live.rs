//! Live capture on real interfaces, each test in its own network namespaces (so nothing touches
//! the host's interfaces): a real HTTP server, curl as the client, multi-megabyte bodies both
//! ways. The bytes the capture delivered, reassembled by sequence number, must equal what the
//! sockets sent, and the kernel's byte counters must match.
use std::{
    collections::HashMap,
    fs,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, ensure};
use aya::programs::{SchedClassifier, TcAttachType};
use webui_monitor::capture::{
    Attachment, Capture, CaptureConfig, TcAttachMode, XdpAttachMode,
    check::{TCX_KERNEL, parse_kernel_release},
};
use webui_monitor_common::{CaptureStats, ConnKey, ConnStats};
use webui_monitor_core::segment::{ConnectionKey, Direction};
use webui_monitor_tests::net::{self, ChildGuard, Netns, run};

const SERVER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/recording_server.py");
/// Upper bound for setup steps (server start, daemon readiness): a hang guard, not a timing
/// assertion.
const SETUP_DEADLINE: Duration = Duration::from_secs(60);
const BIG: usize = 3_000_000;

/// A per-test scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("webui-monitor-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn wait_for(what: &str, done: impl FnMut() -> bool) -> anyhow::Result<()> {
    net::wait_for(what, SETUP_DEADLINE, done)
}

/// Moves the calling thread into network namespace `name`.
fn enter_netns(name: &str) -> anyhow::Result<()> {
    let file = fs::File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: setns on a valid namespace fd; affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    ensure!(rc == 0, "setns: {}", std::io::Error::last_os_error());
    Ok(())
}

#[derive(Debug, Clone)]
struct Rec {
    key: ConnectionKey,
    direction: Direction,
    seq: u32,
    syn: bool,
    payload: Vec<u8>,
}

struct Captured {
    attachments: Vec<Attachment>,
    records: Vec<Rec>,
    totals: CaptureStats,
    connections: Vec<(ConnKey, ConnStats)>,
}

/// The capture, running on its own thread inside a network namespace.
struct LiveCapture {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<anyhow::Result<Captured>>>,
}

impl LiveCapture {
    fn start(
        netns: &str,
        interfaces: &[&str],
        tc_mode: TcAttachMode,
    ) -> anyhow::Result<(Self, Vec<Attachment>)> {
        let netns = netns.to_owned();
        let interfaces: Vec<String> = interfaces.iter().map(|s| (*s).to_owned()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop_flag = Arc::clone(&stop);
        let handle = thread::spawn(move || -> anyhow::Result<Captured> {
            enter_netns(&netns)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut capture = Capture::load(&CaptureConfig::default())?;
                let attachments = capture
                    .attach(&interfaces, XdpAttachMode::Auto, tc_mode)?
                    .to_vec();
                let _ = ready_tx.send(attachments.clone());
                let mut records = Vec::new();
                let mut push = |r: Result<webui_monitor::capture::Record<'_>, _>| {
                    let r = r.expect("decodable record");
                    records.push(Rec {
                        key: r.key,
                        direction: r.direction,
                        seq: r.seq,
                        syn: r.flags.syn(),
                        payload: r.payload.to_vec(),
                    });
                };
                while !stop_flag.load(Ordering::Relaxed) {
                    tokio::select! {
                        ready = capture.readable() => {
                            ready?;
                            capture.drain(&mut push);
                        }
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
                capture.detach()?;
                capture.drain(&mut push);
                Ok(Captured {
                    attachments,
                    records,
                    totals: capture.totals()?,
                    connections: capture.connections(),
                })
            })
        });
        let attachments = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("capture thread failed before attaching"));
        let mut live = Self {
            stop,
            handle: Some(handle),
        };
        match attachments {
            Ok(attachments) => Ok((live, attachments)),
            Err(error) => Err(live.finish().err().unwrap_or(error)),
        }
    }

    fn finish(&mut self) -> anyhow::Result<Captured> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().context("already finished")?;
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("capture thread panicked"))?
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        // Detaches (the thread drops the Capture) even if the test failed.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Reassembles one direction of one connection by sequence number (from its SYN). Fails on
/// holes or on overlapping chunks that disagree.
fn reassemble(
    records: &[Rec],
    key: &ConnectionKey,
    direction: Direction,
) -> anyhow::Result<Vec<u8>> {
    let ours: Vec<&Rec> = records
        .iter()
        .filter(|r| r.key == *key && r.direction == direction)
        .collect();
    let syn = ours
        .iter()
        .find(|r| r.syn)
        .with_context(|| format!("no SYN for {key} {direction:?}"))?;
    let base = syn.seq.wrapping_add(1);
    let mut stream: Vec<u8> = Vec::new();
    let mut have: Vec<bool> = Vec::new();
    for r in ours.iter().filter(|r| !r.payload.is_empty()) {
        let offset = r.seq.wrapping_sub(base) as usize;
        let end = offset + r.payload.len();
        if stream.len() < end {
            stream.resize(end, 0);
            have.resize(end, false);
        }
        for (i, byte) in r.payload.iter().enumerate() {
            if have[offset + i] {
                ensure!(
                    stream[offset + i] == *byte,
                    "retransmission differs at {}",
                    offset + i
                );
            }
            stream[offset + i] = *byte;
            have[offset + i] = true;
        }
    }
    if let Some(hole) = have.iter().position(|h| !h) {
        anyhow::bail!("{key} {direction:?}: hole at byte {hole} of {}", have.len());
    }
    Ok(stream)
}

/// Bytes the server's socket received and sent on one connection.
type Recorded = (Vec<u8>, Vec<u8>);

/// What the server recorded per client port.
fn server_records(dir: &Path) -> anyhow::Result<HashMap<u16, Recorded>> {
    let mut out = HashMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "req") {
            let port: u16 = path
                .file_stem()
                .and_then(|s| s.to_str())
                .context("name")?
                .parse()?;
            let request = fs::read(&path)?;
            let response = fs::read(path.with_extension("resp"))?;
            out.insert(port, (request, response));
        }
    }
    Ok(out)
}

fn conn_key(client: SocketAddr, server: SocketAddr) -> ConnKey {
    let mut key = ConnKey::ZERO;
    let put = |dst: &mut [u8; 16], ip: IpAddr| match ip {
        IpAddr::V4(v4) => dst[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => dst.copy_from_slice(&v6.octets()),
    };
    put(&mut key.client_addr, client.ip());
    put(&mut key.server_addr, server.ip());
    key.client_port = client.port();
    key.server_port = server.port();
    key.family = if client.is_ipv4() { 4 } else { 6 };
    key
}

/// Runs the exchanges (client in `client_ns`) against the recording server and checks the
/// capture byte for byte.
fn exchange_and_verify(
    capture_ns: &str,
    interfaces: &[&str],
    tc_mode: TcAttachMode,
    expected: &[Attachment],
    server_ns: &Netns,
    client_ns: &Netns,
    server_ip: &str,
) -> anyhow::Result<()> {
    let scratch = Scratch::new(&format!("{capture_ns}-srv"))?;
    let _server = ChildGuard(
        server_ns
            .command(
                "python3",
                &[
                    SERVER_SCRIPT,
                    server_ip,
                    "8080",
                    &scratch.0.to_string_lossy(),
                ],
            )
            .spawn()?,
    );
    wait_for("the test server", || scratch.0.join("ready").exists())?;
    let (mut live, attachments) = LiveCapture::start(capture_ns, interfaces, tc_mode)?;
    assert_eq!(attachments, expected);

    let upload = scratch.0.join("upload.bin");
    fs::write(&upload, webui_monitor_tests::frame::pattern(BIG))?;
    let base = format!("http://{server_ip}:8080");
    let upload_arg = format!("@{}", upload.display());
    client_ns.run(
        "curl",
        &["-sS", "-o", "/dev/null", &format!("{base}/bytes/{BIG}")],
    )?;
    client_ns.run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-H",
            "Expect:",
            "--data-binary",
            &upload_arg,
            &format!("{base}/upload"),
        ],
    )?;
    client_ns.run(
        "curl",
        &["-sS", "-o", "/dev/null", &format!("{base}/bytes/10")],
    )?;
    wait_for("the server's records", || {
        server_records(&scratch.0).is_ok_and(|r| r.len() == 3)
    })?;
    let captured = live.finish()?;
    assert_eq!(captured.attachments, expected);

    let server: SocketAddr = format!("{server_ip}:8080").parse()?;
    let recorded = server_records(&scratch.0)?;
    let mut sizes = Vec::new();
    for (port, (request, response)) in &recorded {
        let client = SocketAddr::new(server.ip(), *port);
        let client = SocketAddr::new(
            match server.ip() {
                IpAddr::V4(_) if server_ip == "127.0.0.1" => server.ip(),
                _ => client_ip(server_ip).parse()?,
            },
            client.port(),
        );
        let key = ConnectionKey { client, server };
        let got_request = reassemble(&captured.records, &key, Direction::Request)?;
        let got_response = reassemble(&captured.records, &key, Direction::Response)?;
        assert!(
            got_request == *request,
            "{key}: request stream differs ({} vs {} bytes)",
            got_request.len(),
            request.len()
        );
        assert!(
            got_response == *response,
            "{key}: response stream differs ({} vs {} bytes)",
            got_response.len(),
            response.len()
        );
        let stats = captured
            .connections
            .iter()
            .find(|(k, _)| *k == conn_key(client, server))
            .map(|(_, s)| *s)
            .with_context(|| format!("{key} not in the connection table"))?;
        // The kernel counts payload on the wire, retransmissions included: exactly what the
        // records carried.
        let delivered = |direction| -> u64 {
            captured
                .records
                .iter()
                .filter(|r| r.key == key && r.direction == direction)
                .map(|r| r.payload.len() as u64)
                .sum()
        };
        assert_eq!(
            stats.bytes,
            [
                delivered(Direction::Request),
                delivered(Direction::Response)
            ],
            "{key}"
        );
        assert!(stats.bytes[0] >= request.len() as u64 && stats.bytes[1] >= response.len() as u64);
        sizes.push((request.len(), response.len()));
    }
    sizes.sort_unstable();
    assert!(
        sizes.iter().any(|(req, _)| *req > BIG),
        "a multi-megabyte request"
    );
    assert!(
        sizes.iter().any(|(_, resp)| *resp > BIG),
        "a multi-megabyte response"
    );
    let totals = captured.totals;
    assert_eq!(totals.lost_records, [0, 0, 0], "nothing lost");
    let delivered: u64 = captured
        .records
        .iter()
        .map(|r| r.payload.len() as u64)
        .sum();
    assert_eq!(totals.bytes[0] + totals.bytes[1], delivered);
    Ok(())
}

/// The client's address in the veth test.
fn client_ip(server_ip: &str) -> &'static str {
    if server_ip == "10.200.0.1" {
        "10.200.0.2"
    } else {
        "127.0.0.1"
    }
}

/// On loopback: generic XDP alone sees both directions, 64 KB GSO packets included.
#[test]
fn loopback_delivers_every_byte() -> anyhow::Result<()> {
    let ns = Netns::new(&format!("wm-lo-{}", std::process::id()))?;
    ns.run("ip", &["link", "set", "lo", "up"])?;
    exchange_and_verify(
        &ns.name,
        &["lo"],
        TcAttachMode::Auto,
        &[Attachment::XdpGeneric {
            interface: "lo".into(),
        }],
        &ns,
        &ns,
        "127.0.0.1",
    )
}

/// A server and a client namespace joined by a veth pair, removed on drop.
struct VethPair {
    server: Netns,
    client: Netns,
    /// The server side's interface.
    server_if: String,
}

impl VethPair {
    fn new(tag: &str) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let server = Netns::new(&format!("wm-{tag}s-{pid}"))?;
        let client = Netns::new(&format!("wm-{tag}c-{pid}"))?;
        let (vs, vc) = (
            format!("wm{tag}s{}", pid % 100_000),
            format!("wm{tag}c{}", pid % 100_000),
        );
        run(
            "ip",
            &[
                "link",
                "add",
                &vs,
                "netns",
                &server.name,
                "type",
                "veth",
                "peer",
                "name",
                &vc,
                "netns",
                &client.name,
            ],
        )?;
        server.run("ip", &["addr", "add", "10.200.0.1/24", "dev", &vs])?;
        server.run("ip", &["link", "set", &vs, "up"])?;
        server.run("ip", &["link", "set", "lo", "up"])?;
        client.run("ip", &["addr", "add", "10.200.0.2/24", "dev", &vc])?;
        client.run("ip", &["link", "set", &vc, "up"])?;
        Ok(Self {
            server,
            client,
            server_if: vs,
        })
    }

    fn verify(&self, tc_mode: TcAttachMode, egress: Attachment) -> anyhow::Result<()> {
        exchange_and_verify(
            &self.server.name,
            &[&self.server_if],
            tc_mode,
            &[
                Attachment::XdpDriver {
                    interface: self.server_if.clone(),
                },
                egress,
            ],
            &self.server,
            &self.client,
            "10.200.0.1",
        )
    }
}

/// Whether this kernel has tcx, by its version (the daemon itself tries tcx and falls back).
fn kernel_has_tcx() -> anyhow::Result<bool> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let version = parse_kernel_release(release.trim()).context("kernel release")?;
    Ok(version >= TCX_KERNEL)
}

/// Native XDP ingress and TC egress on the server side of a veth pair: tcx where the kernel
/// has it, else classic TC (a clsact qdisc added for it and removed again).
#[test]
fn veth_delivers_every_byte() -> anyhow::Result<()> {
    let pair = VethPair::new("v")?;
    let interface = pair.server_if.clone();
    let egress = if kernel_has_tcx()? {
        Attachment::TcxEgress { interface }
    } else {
        Attachment::TcEgress {
            interface,
            added_qdisc: true,
        }
    };
    pair.verify(TcAttachMode::Auto, egress)?;
    assert_eq!(
        attached(&pair.server, &pair.server_if)?,
        Attached::default(),
        "nothing left attached"
    );
    Ok(())
}

/// Classic TC egress on any kernel: the clsact qdisc the capture adds is gone afterwards; one
/// that was there before stays, with no filter of the capture's left under it.
#[test]
fn veth_classic_tc_delivers_every_byte_and_removes_what_it_added() -> anyhow::Result<()> {
    let pair = VethPair::new("c")?;
    pair.verify(
        TcAttachMode::Classic,
        Attachment::TcEgress {
            interface: pair.server_if.clone(),
            added_qdisc: true,
        },
    )?;
    assert_eq!(
        attached(&pair.server, &pair.server_if)?,
        Attached::default()
    );

    pair.server
        .run("tc", &["qdisc", "add", "dev", &pair.server_if, "clsact"])?;
    pair.verify(
        TcAttachMode::Classic,
        Attachment::TcEgress {
            interface: pair.server_if.clone(),
            added_qdisc: false,
        },
    )?;
    assert_eq!(
        attached(&pair.server, &pair.server_if)?,
        Attached {
            clsact: true,
            ..Attached::default()
        },
        "the qdisc that was there before stays, without the capture's filter"
    );
    Ok(())
}

/// What is attached to an interface.
#[derive(Debug, Default, PartialEq, Eq)]
struct Attached {
    /// An XDP program (per `ip link`).
    xdp: bool,
    /// tcx egress programs.
    tcx: usize,
    /// A clsact qdisc.
    clsact: bool,
    /// Classic TC egress filters.
    tc_filters: usize,
}

/// What is attached to `interface` in `netns`.
fn attached(netns: &Netns, interface: &str) -> anyhow::Result<Attached> {
    let link = netns.run("ip", &["-d", "link", "show", "dev", interface])?;
    let qdiscs = netns.run("tc", &["qdisc", "show", "dev", interface])?;
    let filters = netns.run("tc", &["filter", "show", "dev", interface, "egress"])?;
    let name = netns.name.clone();
    let iface = interface.to_owned();
    let tcx = thread::spawn(move || -> anyhow::Result<usize> {
        enter_netns(&name)?;
        let name = std::ffi::CString::new(iface)?;
        // Kernels without tcx have nothing to query.
        Ok(
            SchedClassifier::query_tcx(name.as_c_str(), TcAttachType::Egress)
                .map_or(0, |(_, programs)| programs.len()),
        )
    })
    .join()
    .map_err(|_| anyhow::anyhow!("tcx query panicked"))??;
    Ok(Attached {
        xdp: link.contains("xdp"),
        tcx,
        clsact: qdiscs.contains("qdisc clsact"),
        tc_filters: filters.lines().filter(|l| l.contains(" handle ")).count(),
    })
}

/// The daemon detaches everything on SIGTERM (and exits 0).
#[test]
fn daemon_detaches_on_sigterm() -> anyhow::Result<()> {
    let pid = std::process::id();
    let ns = Netns::new(&format!("wm-dt-{pid}"))?;
    let (a, b) = (
        format!("wmd{}", pid % 100_000),
        format!("wme{}", pid % 100_000),
    );
    ns.run(
        "ip",
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    )?;
    ns.run("ip", &["link", "set", &a, "up"])?;
    ns.run("ip", &["link", "set", &b, "up"])?;
    ns.run("ip", &["link", "set", "lo", "up"])?;
    assert_eq!(attached(&ns, &a)?, Attached::default());

    let binary = net::daemon_binary()?.to_string_lossy().into_owned();
    let mut daemon = ChildGuard(
        ns.command(
            &binary,
            &[
                "run",
                "--interface",
                &a,
                "--interface",
                "lo",
                "--listen",
                "127.0.0.1:19741",
            ],
        )
        .spawn()?,
    );
    wait_for("the daemon to be ready", || {
        ns.run("curl", &["-sf", "http://127.0.0.1:19741/readyz"])
            .is_ok()
    })?;
    let egress = if kernel_has_tcx()? {
        Attached {
            xdp: true,
            tcx: 1,
            ..Attached::default()
        }
    } else {
        Attached {
            xdp: true,
            clsact: true,
            tc_filters: 1,
            ..Attached::default()
        }
    };
    assert_eq!(attached(&ns, &a)?, egress);
    assert!(attached(&ns, "lo")?.xdp);
    let metrics = ns.run("curl", &["-sf", "http://127.0.0.1:19741/metrics"])?;
    assert!(metrics.contains("webui_monitor_build_info{version=\""));

    // One exchange with a server on the monitored port: the counters reach /metrics exactly.
    let scratch = Scratch::new("daemon-srv")?;
    let _server = ChildGuard(
        ns.command(
            "python3",
            &[
                SERVER_SCRIPT,
                "127.0.0.1",
                "8080",
                &scratch.0.to_string_lossy(),
            ],
        )
        .spawn()?,
    );
    wait_for("the test server", || scratch.0.join("ready").exists())?;
    ns.run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "http://127.0.0.1:8080/bytes/100000",
        ],
    )?;
    wait_for("the server's record", || {
        server_records(&scratch.0).is_ok_and(|r| r.len() == 1)
    })?;
    let recorded = server_records(&scratch.0)?;
    let (request, response) = recorded.values().next().context("one exchange")?;
    // The daemon mirrors the kernel counters once per second: poll until they show the
    // exchange. The kernel counts every payload byte on the wire, retransmissions included
    // (rare on lo, but seen), so the byte counters are at least what the sockets sent; the
    // connection count and the loss counter are exact.
    let value = |text: &str, series: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let mut last = String::new();
    let shown = wait_for("the counters on /metrics", || {
        let Ok(text) = ns.run("curl", &["-sf", "http://127.0.0.1:19741/metrics"]) else {
            return false;
        };
        let ok = value(&text, "webui_monitor_tcp_connections_total") == Some(1)
            && value(
                &text,
                "webui_monitor_tcp_bytes_total{direction=\"request\"}",
            )
            .is_some_and(|n| n >= request.len() as u64)
            && value(
                &text,
                "webui_monitor_tcp_bytes_total{direction=\"response\"}",
            )
            .is_some_and(|n| n >= response.len() as u64);
        last = text;
        ok
    });
    if let Err(error) = shown {
        anyhow::bail!("{error}; last /metrics:\n{last}");
    }
    assert_eq!(
        value(
            &last,
            "webui_monitor_capture_lost_total{reason=\"ring_full\"}"
        ),
        Some(0)
    );

    let status = daemon.signal_and_wait(libc::SIGTERM)?;
    assert!(status.success(), "daemon exit: {status}");
    assert_eq!(attached(&ns, &a)?, Attached::default());
    assert!(!attached(&ns, "lo")?.xdp);
    Ok(())
}

/// A classic TC filter outlives a killed daemon (unlike XDP and tcx links); the next run
/// removes it before attaching its own, and its own on exit.
#[test]
fn a_killed_daemons_classic_tc_filter_is_replaced_by_the_next_run() -> anyhow::Result<()> {
    let pid = std::process::id();
    let ns = Netns::new(&format!("wm-kl-{pid}"))?;
    let (a, b) = (
        format!("wmk{}", pid % 100_000),
        format!("wml{}", pid % 100_000),
    );
    ns.run(
        "ip",
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    )?;
    ns.run("ip", &["link", "set", &a, "up"])?;
    ns.run("ip", &["link", "set", &b, "up"])?;
    ns.run("ip", &["link", "set", "lo", "up"])?;
    let binary = net::daemon_binary()?.to_string_lossy().into_owned();
    let start = || -> anyhow::Result<ChildGuard> {
        let daemon = ChildGuard(
            ns.command(
                &binary,
                &[
                    "run",
                    "--interface",
                    &a,
                    "--tc-mode",
                    "classic",
                    "--listen",
                    "127.0.0.1:19742",
                ],
            )
            .spawn()?,
        );
        wait_for("the daemon to be ready", || {
            ns.run("curl", &["-sf", "http://127.0.0.1:19742/readyz"])
                .is_ok()
        })?;
        Ok(daemon)
    };
    let running = Attached {
        xdp: true,
        clsact: true,
        tc_filters: 1,
        ..Attached::default()
    };
    let mut first = start()?;
    assert_eq!(attached(&ns, &a)?, running);
    first.signal_and_wait(libc::SIGKILL)?;
    assert_eq!(
        attached(&ns, &a)?,
        Attached {
            xdp: false,
            ..running
        },
        "the filter and the qdisc outlive the killed daemon"
    );

    let mut second = start()?;
    assert_eq!(attached(&ns, &a)?, running, "one filter, not two");
    let status = second.signal_and_wait(libc::SIGTERM)?;
    assert!(status.success(), "daemon exit: {status}");
    assert_eq!(
        attached(&ns, &a)?,
        Attached {
            clsact: true,
            ..Attached::default()
        },
        "its own filter removed; the qdisc it found stays"
    );
    Ok(())
}
