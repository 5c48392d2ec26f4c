//! The metrics endpoint against hostile and legitimate clients, with TLS and basic auth from an
//! exporter-toolkit web config: connections over `server.max_connections` are refused and
//! counted, a client holding a half-sent TLS handshake or a half-sent header block is dropped
//! after `server.header_read_timeout`, the container healthcheck still answers, a wrong
//! password gets 401 with `WWW-Authenticate: Basic`, and a real Prometheus scrapes over TLS
//! with basic auth (`up == 1`) while a job with a wrong password is refused (`up == 0`, 401);
//! SIGHUP then applies a changed password without a restart.
//!
//! The daemon runs in its own network namespace (it attaches to that namespace's `lo`), so the
//! fixed ports cannot collide with the host's; the test's own sockets are opened inside it from
//! a thread that joined the namespace.
use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use webui_monitor_tests::{
    net::{self, ChildGuard, Netns},
    stack::sample,
};

const DEADLINE: Duration = Duration::from_secs(60);
const METRICS: &str = "127.0.0.1:19771";
const PROMETHEUS: &str = "127.0.0.1:19772";
const MAX_CONNECTIONS: usize = 4;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const PASSWORD: &str = "correct horse battery staple";
const WRONG_PASSWORD: &str = "incorrect donkey battery staple";

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost: `ca.crt`,
/// `server.crt`, `server.key` in `dir`.
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "webui-monitor test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate()?)?;
    let key = rcgen::KeyPair::generate()?;
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?
        .signed_by(&key, &ca)?;
    fs::write(dir.join("ca.crt"), ca.pem())?;
    fs::write(dir.join("server.crt"), server.pem())?;
    fs::write(dir.join("server.key"), key.serialize_pem())?;
    Ok(())
}

/// Runs `f` on a thread that joined network namespace `ns` (sockets it opens stay there).
fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = fs::File::open(&path).with_context(|| path.clone())?;
        // SAFETY: setns(2) on a namespace file we opened; it affects only this thread, which
        // ends after `f`.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        ensure!(rc == 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}

/// Reads until the server closes the connection; returns how long that took. Fails if it does
/// not close within `limit`.
fn wait_for_close(stream: &mut impl Read, limit: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(start.elapsed()),
            Ok(_) => continue,
            // A server that gives up on a client closes the socket; TLS sees that as a
            // truncation (no close_notify).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(start.elapsed());
            }
            Err(e) => {
                anyhow::bail!(
                    "connection still open after {:?} (limit {limit:?}): {e}",
                    start.elapsed()
                )
            }
        }
    }
}

#[test]
fn metrics_endpoint_holds_and_serves_tls_with_basic_auth() -> anyhow::Result<()> {
    let pid = std::process::id() % 100_000;
    let ns = Netns::new(&format!("wm-srv-{pid}"))?;
    ns.run("ip", &["link", "set", "lo", "up"])?;
    let dir = std::env::temp_dir().join(format!("webui-monitor-server-{pid}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let scratch = Scratch(dir.clone());
    make_certificates(&scratch.0)?;
    // Cost 4 keeps a debug build's bcrypt short; production hashes use 10 or more.
    let hash = bcrypt::hash(PASSWORD, 4)?;
    fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    )?;
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            "[capture]\ninterfaces = [\"lo\"]\nlisten = \"{METRICS}\"\n\
             [server]\nweb_config_file = {:?}\nmax_connections = {MAX_CONNECTIONS}\n\
             header_read_timeout = \"{}s\"\n",
            dir.join("web.yml").display().to_string(),
            HEADER_READ_TIMEOUT.as_secs()
        ),
    )?;
    let config = config.to_string_lossy().into_owned();
    let log = dir.join("stderr.log");
    let binary = net::daemon_binary()?.to_string_lossy().into_owned();
    let mut command = ns.command(&binary, &["run", "--config", &config]);
    command.stderr(Stdio::from(fs::File::create(&log)?));
    let mut daemon = ChildGuard(command.spawn()?);

    // The container's HEALTHCHECK speaks TLS to the daemon and needs no password.
    let healthcheck = || {
        ns.command(&binary, &["healthcheck", "--config", &config])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    net::wait_for("the healthcheck to pass", DEADLINE, healthcheck)?;

    let ca = dir.join("ca.crt").to_string_lossy().into_owned();
    let url = format!("https://{METRICS}/metrics");
    let user = format!("prometheus:{PASSWORD}");
    let metrics = || {
        ns.run(
            "curl",
            &["-sf", "--cacert", &ca, "--user", &user, url.as_str()],
        )
    };
    let value = |text: &str, name: &str, labels: &[(&str, &str)]| {
        sample(text, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{text}"))
    };
    // The healthcheck's connections have closed once curl's own is the only one open.
    net::wait_for("one open connection", DEADLINE, || {
        metrics().is_ok_and(|text| {
            sample(&text, "webui_monitor_http_server_connections_open", &[]) == Some(1.0)
        })
    })?;

    // MAX_CONNECTIONS clients connect and send nothing: they take every slot. The next one is
    // closed at once and counted; the silent ones are dropped once the handshake times out.
    let held_for = in_netns(&ns, || {
        let connected = Instant::now();
        let mut held = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(METRICS))
            .collect::<Result<Vec<_>, _>>()?;
        // Each is accepted (and takes its slot) before the next in the listen queue.
        std::thread::sleep(Duration::from_millis(300));
        // Closed by the server; the rejection counter below says it was refused rather than
        // timed out.
        let mut extra = TcpStream::connect(METRICS)?;
        extra.set_read_timeout(Some(DEADLINE))?;
        wait_for_close(&mut extra, DEADLINE)?;
        let mut held_for = Vec::new();
        for stream in &mut held {
            stream.set_read_timeout(Some(DEADLINE))?;
            wait_for_close(stream, DEADLINE)?;
            // Seen closed now; closed no earlier than this.
            held_for.push(connected.elapsed());
        }
        Ok(held_for)
    })?;
    for held in held_for {
        assert!(
            held >= HEADER_READ_TIMEOUT,
            "dropped before the timeout: {held:?}"
        );
    }

    // A slowloris behind TLS: the handshake completes, half a header block follows, and the
    // server drops the connection once header_read_timeout has passed.
    let ca_pem = fs::read(dir.join("ca.crt"))?;
    let slow_for = in_netns(&ns, move || {
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
                &ca_pem,
            )
        {
            roots.add(cert?)?;
        }
        #[allow(deprecated)] // the daemon's own provider; see its web_config::provider
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
        let connection = rustls::ClientConnection::new(Arc::new(client), name)?;
        let socket = TcpStream::connect(METRICS)?;
        socket.set_read_timeout(Some(DEADLINE))?;
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let start = Instant::now();
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")?;
        tls.flush()?;
        wait_for_close(&mut tls, DEADLINE)?;
        Ok(start.elapsed())
    })?;
    assert!(slow_for >= HEADER_READ_TIMEOUT, "{slow_for:?}");

    // A wrong password: 401 with a Basic challenge, and no metrics.
    let wrong = ns.run(
        "curl",
        &[
            "-s",
            "-i",
            "--cacert",
            &ca,
            "--user",
            &format!("prometheus:{WRONG_PASSWORD}"),
            url.as_str(),
        ],
    )?;
    assert!(
        wrong.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{wrong}"
    );
    assert!(
        wrong.contains("www-authenticate: Basic realm=\"webui-monitor\"\r\n"),
        "{wrong}"
    );
    assert!(!wrong.contains("webui_monitor_build_info"), "{wrong}");
    let no_password = ns.run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &ca,
            url.as_str(),
        ],
    )?;
    assert_eq!(no_password, "401");
    // /healthz needs no password (the healthcheck has none).
    let healthz = ns.run(
        "curl",
        &[
            "-sf",
            "--cacert",
            &ca,
            &format!("https://{METRICS}/healthz"),
        ],
    )?;
    assert_eq!(healthz, "ok\n");

    let text = metrics()?;
    let rejected = [("reason", "limit")];
    assert_eq!(
        value(
            &text,
            "webui_monitor_http_server_connections_rejected_total",
            &rejected
        ),
        1.0
    );
    // MAX_CONNECTIONS silent handshakes and the half-sent header block.
    assert_eq!(
        value(
            &text,
            "webui_monitor_http_server_connections_closed_total",
            &[("reason", "header_timeout")]
        ),
        (MAX_CONNECTIONS + 1) as f64
    );
    assert_eq!(
        value(
            &text,
            "webui_monitor_http_server_auth_failures_total",
            &[("reason", "invalid")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "webui_monitor_http_server_auth_failures_total",
            &[("reason", "missing")]
        ),
        1.0
    );
    assert_eq!(
        value(&text, "webui_monitor_http_server_connections_open", &[]),
        1.0
    );

    // A real Prometheus: one job with the password, one with a wrong one.
    fs::write(dir.join("password"), PASSWORD)?;
    fs::write(dir.join("wrong-password"), WRONG_PASSWORD)?;
    let job = |name: &str, password_file: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    basic_auth:\n      username: prometheus\n      \
             password_file: {}\n    tls_config:\n      ca_file: {ca}\n    static_configs:\n      \
             - targets: [\"{METRICS}\"]\n",
            dir.join(password_file).display()
        )
    };
    fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}",
            job("good", "password"),
            job("bad", "wrong-password")
        ),
    )?;
    let prometheus_log = dir.join("prometheus.log");
    let mut command = ns.command(
        "prometheus",
        &[
            &format!("--config.file={}", dir.join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address={PROMETHEUS}"),
        ],
    );
    command
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(&prometheus_log)?));
    let _prometheus = ChildGuard(command.spawn()?);
    let targets = || {
        ns.run(
            "curl",
            &["-sf", &format!("http://{PROMETHEUS}/api/v1/targets")],
        )
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    };
    let health = |targets: &serde_json::Value, job: &str| -> Option<(String, String)> {
        targets["data"]["activeTargets"]
            .as_array()?
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .map(|t| {
                (
                    t["health"].as_str().unwrap_or_default().to_owned(),
                    t["lastError"].as_str().unwrap_or_default().to_owned(),
                )
            })
    };
    net::wait_for("Prometheus to scrape both jobs", DEADLINE, || {
        targets().is_some_and(|t| {
            health(&t, "good").is_some_and(|(h, _)| h == "up")
                && health(&t, "bad").is_some_and(|(h, _)| h == "down")
        })
    })
    .with_context(|| fs::read_to_string(&prometheus_log).unwrap_or_default())?;
    let t = targets().context("targets")?;
    assert_eq!(health(&t, "good"), Some(("up".to_owned(), String::new())));
    assert_eq!(
        health(&t, "bad"),
        Some((
            "down".to_owned(),
            "server returned HTTP status 401 Unauthorized".to_owned()
        ))
    );
    let up = |job: &str| -> anyhow::Result<String> {
        let answer = ns.run(
            "curl",
            &[
                "-sf",
                &format!("http://{PROMETHEUS}/api/v1/query?query=up%7Bjob%3D%22{job}%22%7D"),
            ],
        )?;
        let answer: serde_json::Value = serde_json::from_str(&answer)?;
        Ok(answer["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    };
    assert_eq!(up("good")?, "1");
    assert_eq!(up("bad")?, "0");

    // SIGHUP re-reads the web config: a file that does not load keeps the running users, a new
    // password replaces the old one without a restart.
    let web_config = dir.join("web.yml");
    let hup = || -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(daemon.0.id() as i32, libc::SIGHUP) };
        ensure!(rc == 0, "kill: {}", std::io::Error::last_os_error());
        Ok(())
    };
    let logged = || fs::read_to_string(&log).unwrap_or_default();
    fs::write(&web_config, "basic_auth_users:\n  prometheus: not-a-hash\n")?;
    hup()?;
    net::wait_for("the refused web config in the log", DEADLINE, || {
        logged().contains("the metrics endpoint keeps its TLS and users")
    })?;
    assert!(metrics().is_ok(), "the running password stays");
    const NEW_PASSWORD: &str = "a rotated password";
    let new_hash = bcrypt::hash(NEW_PASSWORD, 4)?;
    fs::write(
        &web_config,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: {new_hash}\n"
        ),
    )?;
    hup()?;
    net::wait_for("the re-read web config in the log", DEADLINE, || {
        logged().contains(&format!(
            "SIGHUP: web config {} re-read: serving /metrics on https://{METRICS} with basic auth (1 user(s))",
            web_config.display()
        ))
    })?;
    let status_with = |password: &str| {
        ns.run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &ca,
                "--user",
                &format!("prometheus:{password}"),
                url.as_str(),
            ],
        )
    };
    assert_eq!(status_with(PASSWORD)?, "401");
    assert_eq!(status_with(NEW_PASSWORD)?, "200");

    let status = daemon.signal_and_wait(libc::SIGTERM)?;
    assert!(status.success(), "daemon exit: {status}");
    let logged = fs::read_to_string(&log)?;
    assert!(
        logged.contains(&format!(
            "serving /metrics on https://{METRICS} with basic auth (1 user(s))"
        )),
        "{logged}"
    );
    for secret in [
        PASSWORD,
        WRONG_PASSWORD,
        NEW_PASSWORD,
        hash.as_str(),
        new_hash.as_str(),
        "not-a-hash",
    ] {
        assert!(
            !logged.contains(secret),
            "{secret:?} reached the log:\n{logged}"
        );
    }
    drop(scratch);
    Ok(())
}

/// `accept()` failing with EMFILE (the daemon's file limit lowered while it runs) is counted,
/// logged once, and the endpoint serves again once descriptors are free.
#[test]
fn accept_errors_do_not_stop_the_endpoint() -> anyhow::Result<()> {
    const LISTEN: &str = "127.0.0.1:19773";
    let pid = std::process::id() % 100_000;
    let ns = Netns::new(&format!("wm-emf-{pid}"))?;
    ns.run("ip", &["link", "set", "lo", "up"])?;
    let dir = std::env::temp_dir().join(format!("webui-monitor-emfile-{pid}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let scratch = Scratch(dir.clone());
    let config = dir.join("config.toml");
    // Silent clients must outlast the test's pause rather than time out.
    fs::write(
        &config,
        format!(
            "[capture]\ninterfaces = [\"lo\"]\nlisten = \"{LISTEN}\"\n\
             [server]\nheader_read_timeout = \"1m\"\n"
        ),
    )?;
    let log = dir.join("stderr.log");
    let binary = net::daemon_binary()?.to_string_lossy().into_owned();
    let mut command = ns.command(&binary, &["run", "--config", &config.to_string_lossy()]);
    command.stderr(Stdio::from(fs::File::create(&log)?));
    let mut daemon = ChildGuard(command.spawn()?);
    let url = format!("http://{LISTEN}");
    let get = |path: &str| {
        ns.run(
            "curl",
            &["-sf", "--max-time", "10", &format!("{url}{path}")],
        )
    };
    net::wait_for("the daemon to serve", DEADLINE, || get("/healthz").is_ok())?;

    // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
    let daemon_pid = daemon.0.id().to_string();
    let open_fds = fs::read_dir(format!("/proc/{daemon_pid}/fd"))?.count();
    let limits = fs::read_to_string(format!("/proc/{daemon_pid}/limits"))?;
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .context("soft file limit")?
        .to_owned();
    // Room for two connections; the third and fourth find the file table full.
    net::run(
        "prlimit",
        &["--pid", &daemon_pid, &format!("--nofile={}:", open_fds + 2)],
    )?;
    in_netns(&ns, || {
        let held = (0..4)
            .map(|_| TcpStream::connect(LISTEN))
            .collect::<Result<Vec<_>, _>>()?;
        std::thread::sleep(Duration::from_secs(1));
        drop(held);
        Ok(())
    })?;
    net::run(
        "prlimit",
        &["--pid", &daemon_pid, &format!("--nofile={soft}:")],
    )?;

    assert_eq!(get("/healthz")?, "ok\n");
    let text = get("/metrics")?;
    let errors = sample(
        &text,
        "webui_monitor_http_server_accept_errors_total",
        &[("reason", "emfile")],
    )
    .with_context(|| format!("no EMFILE counted:\n{text}"))?;
    assert!(errors >= 1.0, "{errors}");
    let status = daemon.signal_and_wait(libc::SIGTERM)?;
    assert!(status.success(), "daemon exit: {status}");
    let logged = fs::read_to_string(&log)?;
    // Logged once however often it failed (at most one line a minute).
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("metrics endpoint: accept() failed"))
        .collect();
    assert_eq!(lines.len(), 1, "{logged}");
    assert!(
        lines[0].contains("last: Too many open files (os error 24); retrying every 100ms"),
        "{}",
        lines[0]
    );
    drop(scratch);
    Ok(())
}
