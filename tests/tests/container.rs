//! The container image, built from the Containerfile with podman (`deploy/container/build.sh`)
//! and run as the README tells operators to: host network, every capability dropped except
//! CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, the image's own non-root user, the secret from an
//! env file and Open WebUI's database from a read-only volume, and podman's seccomp profile
//! with bpf(2) allowed under CAP_BPF (`deploy/container/seccomp-bpf.py`; Docker's and
//! containerd's profiles allow it already). It must capture on a veth:
//!
//! ```text
//!  host network namespace                           netns wm-ctr-PID
//!  curl ── wmctPIDh ═══════════════ veth ═══════════ wmctPIDn ── Open WebUI-shaped server :8080
//!          ↑ XDP + tcx, loaded by the container
//! ```
//!
//! Slow on first run (the build compiles the toolchain's bpf-linker and the daemon inside the
//! build stage); later runs reuse podman's layer cache and the Containerfile's cargo caches.
//! Everything the test creates — container, image tag, veth pair, namespace, files — is removed
//! by guards, also when it fails. The Debian base image and the build cache stay: they are
//! caches.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use webui_monitor_tests::{
    net::{ChildGuard, Netns, run, wait_for},
    stack::{ALICE, ALICE_API_KEY, ALICE_PASSWORD, SECRET, repo_root, sample},
};

/// /metrics of the container, on the host's loopback (the container shares the host's
/// network).
const METRICS_PORT: u16 = 19793;
const PROMPT: &str = "wombat container capture check";
/// CAP_NET_ADMIN (12), CAP_PERFMON (38) and CAP_BPF (39) as a capability mask.
const THREE_CAPABILITIES: u64 = 1 << 12 | 1 << 38 | 1 << 39;

/// `podman` with the project's settings for guests whose defaults cannot run containers
/// (deploy/container/containers.conf), leaving the machine's configuration alone.
fn podman(args: &[&str]) -> Command {
    let mut command = Command::new("podman");
    command
        .env(
            "CONTAINERS_CONF",
            repo_root().join("deploy/container/containers.conf"),
        )
        .args(args);
    command
}

fn podman_output(args: &[&str]) -> anyhow::Result<String> {
    let output = podman(args).output().context("running podman")?;
    ensure!(
        output.status.success(),
        "podman {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// An image tag, removed on drop (the layers it shares with the build cache stay).
struct ImageTag(String);

impl Drop for ImageTag {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "--force", &self.0]).output();
    }
}

/// A container, removed (stopped first) on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "10", &self.0]).output();
    }
}

/// A veth pair with one end in the host's namespace, deleted (both ends) on drop.
struct HostVeth(String);

impl Drop for HostVeth {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.0]);
    }
}

/// The file capabilities of `path`, from its `security.capability` extended attribute
/// (`struct vfs_cap_data` of include/uapi/linux/capability.h: a little-endian magic word whose
/// lowest bit is the effective flag, then permitted and inheritable words for capabilities
/// 0–31 and 32–63): (effective, permitted).
fn file_capabilities(path: &Path) -> anyhow::Result<(bool, u64)> {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut data = [0u8; 24];
    // SAFETY: both names are NUL-terminated; `data` is writable for the length passed.
    let n = unsafe {
        libc::getxattr(
            name.as_ptr(),
            c"security.capability".as_ptr(),
            data.as_mut_ptr().cast(),
            data.len(),
        )
    };
    ensure!(
        n >= 20,
        "{}: no file capabilities ({})",
        path.display(),
        std::io::Error::last_os_error()
    );
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    Ok((
        word(0) & 1 == 1,
        u64::from(word(4)) | u64::from(word(12)) << 32,
    ))
}

/// Builds the image with build.sh under `tag`; the build's output goes to `log`.
fn build_image(tag: &str, log: &Path) -> anyhow::Result<ImageTag> {
    let file = fs::File::create(log)?;
    let start = Instant::now();
    let status = Command::new("bash")
        .arg(repo_root().join("deploy/container/build.sh"))
        .args(["--tag", tag])
        .env(
            "CONTAINERS_CONF",
            repo_root().join("deploy/container/containers.conf"),
        )
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .context("running deploy/container/build.sh")?;
    let image = ImageTag(tag.to_owned());
    let output = fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = output.lines().rev().take(40).collect();
    ensure!(
        status.success(),
        "deploy/container/build.sh failed ({status}); last lines:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "image built in {:.0} s: {}",
        start.elapsed().as_secs_f64(),
        output.lines().last().unwrap_or_default()
    );
    Ok(image)
}

/// `curl` from the host to the server in the namespace: (status, body).
fn curl(url: &str, headers: &[&str], body: &str) -> anyhow::Result<(u16, String)> {
    let mut args = vec!["-s", "-X", "POST", "-w", "\n%{http_code}"];
    for header in headers {
        args.extend(["-H", header]);
    }
    args.extend([
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
    ]);
    args.push(url);
    let output = run("curl", &args)?;
    let (body, status) = output.rsplit_once('\n').context("curl output")?;
    Ok((status.trim().parse()?, body.to_owned()))
}

#[test]
fn image_captures_on_a_veth_with_three_capabilities_as_non_root() -> anyhow::Result<()> {
    let pid = std::process::id() % 100_000;
    let dir = tempfile::Builder::new().prefix("wm-container-").tempdir()?;
    let root = repo_root();

    let tag = format!("localhost/webui-monitor-test:{pid}");
    let image = build_image(&tag, &dir.path().join("build.log"))?;

    // The image as built: labels, health check, user, file capabilities.
    let labels = podman_output(&["image", "inspect", "--format", "{{json .Labels}}", &tag])?;
    let labels: serde_json::Value = serde_json::from_str(&labels)?;
    assert_eq!(labels["org.opencontainers.image.title"], "webui-monitor");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let health = podman_output(&[
        "image",
        "inspect",
        "--format",
        "{{json .HealthCheck.Test}}",
        &tag,
    ])?;
    assert_eq!(
        health.trim(),
        r#"["CMD","/usr/bin/webui-monitor","healthcheck"]"#
    );
    let user = podman_output(&["image", "inspect", "--format", "{{.User}}", &tag])?;
    assert_eq!(user.trim(), "webui-monitor");
    // The binary's file capabilities: what gives the image's user the three capabilities under
    // docker, which (unlike podman) puts none in a non-root user's ambient set.
    let mount = podman_output(&["image", "mount", &tag])?;
    let caps = file_capabilities(&Path::new(mount.trim()).join("usr/bin/webui-monitor"));
    let _ = podman(&["image", "unmount", &tag]).output();
    assert_eq!(caps?, (true, THREE_CAPABILITIES));

    // The server's namespace and the veth whose host end the container attaches to.
    let ns = Netns::new(&format!("wm-ctr-{pid}"))?;
    let (host_if, ns_if) = (format!("wmct{pid}h"), format!("wmct{pid}n"));
    let _ = run("ip", &["link", "del", &host_if]);
    run(
        "ip",
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns.name,
        ],
    )?;
    let _veth = HostVeth(host_if.clone());
    let octet = pid % 250;
    let (host_addr, server_addr) = (format!("10.214.{octet}.1"), format!("10.214.{octet}.2"));
    run(
        "ip",
        &["addr", "add", &format!("{host_addr}/30"), "dev", &host_if],
    )?;
    run("ip", &["link", "set", &host_if, "up"])?;
    ns.run(
        "ip",
        &["addr", "add", &format!("{server_addr}/30"), "dev", &ns_if],
    )?;
    ns.run("ip", &["link", "set", &ns_if, "up"])?;
    ns.run("ip", &["link", "set", "lo", "up"])?;

    // Open WebUI's data directory, as its volume would hold it: the monitor's user (not root)
    // reads the database through a read-only mount.
    let data = dir.path().join("open-webui");
    fs::create_dir(&data)?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755))?;
    let db = data.join("webui.db");
    fs::copy(root.join("fixtures/openwebui/webui.db"), &db)?;
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644))?;
    let passwords = dir.path().join("passwords");
    fs::write(&passwords, format!("alice@example.com={ALICE_PASSWORD}\n"))?;
    let mut command = ns.command(
        "python3",
        &[
            root.join("tests/support/openwebui_shaped_server.py")
                .to_str()
                .context("path")?,
            "--listen",
            &format!("{server_addr}:8080"),
            "--db",
            db.to_str().context("path")?,
            "--passwords",
            passwords.to_str().context("path")?,
        ],
    );
    command
        .env("WEBUI_SECRET_KEY", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = ChildGuard(command.spawn()?);
    let base = format!("http://{server_addr}:8080");
    wait_for(
        "the Open WebUI-shaped server",
        Duration::from_secs(20),
        || {
            run(
                "curl",
                &["-sf", "-o", "/dev/null", &format!("{base}/api/config")],
            )
            .is_ok()
        },
    )?;

    // The container, configured through an env file as compose does.
    let env_file = dir.path().join("webui.env");
    fs::write(
        &env_file,
        format!(
            "WEBUI_SECRET_KEY={SECRET}\n\
             WEBUI_MONITOR_CAPTURE_INTERFACES={host_if}\n\
             WEBUI_MONITOR_CAPTURE_PORTS=8080\n\
             WEBUI_MONITOR_CAPTURE_LISTEN=127.0.0.1:{METRICS_PORT}\n\
             WEBUI_MONITOR_OPENWEBUI_DB=/var/lib/open-webui/webui.db\n"
        ),
    )?;
    // podman's default seccomp profile here allows bpf(2) only with CAP_SYS_ADMIN; the
    // documented fix adds the rule Docker and containerd have (bpf with CAP_BPF), nothing else.
    let seccomp = dir.path().join("seccomp.json");
    let profile = run(
        "python3",
        &[root
            .join("deploy/container/seccomp-bpf.py")
            .to_str()
            .context("path")?],
    )?;
    fs::write(&seccomp, profile)?;
    let seccomp = format!("seccomp={}", seccomp.display());
    let name = format!("wm-container-test-{pid}");
    let _ = podman(&["rm", "--force", &name]).output();
    let volume = format!("{}:/var/lib/open-webui:ro", data.display());
    podman_output(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--cap-drop=all",
        "--cap-add=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN",
        "--security-opt",
        &seccomp,
        "--env-file",
        env_file.to_str().context("path")?,
        "--volume",
        &volume,
        &tag,
    ])?;
    let container = Container(name.clone());
    let logs = || podman_output(&["logs", &container.0]).unwrap_or_else(|e| e.to_string());
    let metrics_url = format!("http://127.0.0.1:{METRICS_PORT}");
    wait_for("the container to attach", Duration::from_secs(60), || {
        run(
            "curl",
            &["-sf", "-o", "/dev/null", &format!("{metrics_url}/readyz")],
        )
        .is_ok()
    })
    .with_context(|| format!("container output:\n{}", logs()))?;

    // The daemon is the image's user. It started with the three capabilities (the bounding set
    // keeps them: without CAP_SETPCAP it cannot cut it) and, attached, keeps CAP_BPF and
    // CAP_NET_ADMIN only (`privileges`), with no_new_privs.
    let status = podman_output(&["exec", &name, "cat", "/proc/1/status"])?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    assert_eq!(field("Uid:").as_deref(), Some("9741 9741 9741 9741"));
    let three = format!("{THREE_CAPABILITIES:016x}");
    let kept = format!("{:016x}", (1u64 << 39) | (1 << 12));
    assert_eq!(field("CapEff:"), Some(kept.clone()));
    assert_eq!(field("CapPrm:"), Some(kept));
    assert_eq!(field("CapBnd:"), Some(three));
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"));
    // The image's HEALTHCHECK: `webui-monitor healthcheck` with the container's settings.
    podman_output(&["healthcheck", "run", &name])
        .with_context(|| format!("container output:\n{}", logs()))?;

    // Traffic: three completions with Alice's session JWT (verified with the secret from the
    // env file), two with her API key (resolved through the mounted database).
    let (status, text) = curl(
        &format!("{base}/api/v1/auths/signin"),
        &[],
        &format!(r#"{{"email":"alice@example.com","password":"{ALICE_PASSWORD}"}}"#),
    )?;
    ensure!(status == 200, "signin answered {status}: {text}");
    let token: serde_json::Value = serde_json::from_str(&text)?;
    let bearer_jwt = format!(
        "Authorization: Bearer {}",
        token["token"].as_str().unwrap_or_default()
    );
    let bearer_key = format!("Authorization: Bearer {ALICE_API_KEY}");
    let completion = format!(
        r#"{{"model":"mock-gpt","stream":false,"messages":[{{"role":"user","content":"{PROMPT}"}}]}}"#
    );
    for header in [
        &bearer_jwt,
        &bearer_jwt,
        &bearer_jwt,
        &bearer_key,
        &bearer_key,
    ] {
        let (status, text) = curl(
            &format!("{base}/api/chat/completions"),
            &[header],
            &completion,
        )?;
        ensure!(status == 200, "completion answered {status}: {text}");
    }

    let expect = |metrics: &str| {
        let chat = |auth| {
            sample(
                metrics,
                "openwebui_chat_completions_total",
                &[
                    ("user", ALICE),
                    ("model", "mock-gpt"),
                    ("auth", auth),
                    ("client", "api"),
                    ("api", "chat"),
                    ("stream", "false"),
                    ("status_class", "2xx"),
                ],
            )
        };
        chat("jwt") == Some(3.0) && chat("api_key") == Some(2.0)
    };
    let mut metrics = String::new();
    let counted = wait_for(
        "the completions on /metrics",
        Duration::from_secs(30),
        || {
            metrics = run("curl", &["-sf", &format!("{metrics_url}/metrics")]).unwrap_or_default();
            expect(&metrics)
        },
    );
    counted.with_context(|| format!("metrics:\n{metrics}\ncontainer output:\n{}", logs()))?;

    // Exact numbers: one request of Alice's per completion (the sign-in carries no credential),
    // every credential verified, the prompt's four words in and the shaped answer's eleven out
    // per completion, nothing lost.
    let requests = |auth| {
        sample(
            &metrics,
            "openwebui_user_requests_total",
            &[("user", ALICE), ("auth", auth), ("client", "api")],
        )
    };
    assert_eq!(requests("jwt"), Some(3.0), "{metrics}");
    assert_eq!(requests("api_key"), Some(2.0), "{metrics}");
    let auth = |result| sample(&metrics, "openwebui_auth_total", &[("result", result)]);
    // Three JWTs verified with the secret, two keys found in the database; the sign-in.
    assert_eq!(auth("verified"), Some(5.0), "{metrics}");
    assert_eq!(auth("anonymous"), Some(1.0), "{metrics}");
    let tokens = |direction| {
        sample(
            &metrics,
            "openwebui_llm_tokens_total",
            &[
                ("user", ALICE),
                ("model", "mock-gpt"),
                ("direction", direction),
                ("source", "http"),
            ],
        )
    };
    assert_eq!(tokens("input"), Some(5.0 * 4.0), "{metrics}");
    assert_eq!(tokens("output"), Some(5.0 * 11.0), "{metrics}");
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("webui_monitor_capture_lost"))
    {
        assert!(line.ends_with(" 0"), "capture loss: {line}");
    }

    // SIGTERM (podman stop) detaches and exits cleanly.
    podman_output(&["stop", "--time", "20", &name])?;
    let exit = podman_output(&["inspect", "--format", "{{.State.ExitCode}}", &name])?;
    assert_eq!(exit.trim(), "0", "container output:\n{}", logs());
    let links = run("ip", &["link", "show", "dev", &host_if])?;
    assert!(!links.contains("xdp"), "XDP still attached: {links}");
    drop(container);
    drop(image);
    Ok(())
}
