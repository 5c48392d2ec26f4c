//! A production-shaped Open WebUI stack in two network namespaces, for end-to-end tests:
//!
//! ```text
//!  proxy netns                                   app netns
//!  curl / web-UI client → nginx (TLS :8443) ──veth── Open WebUI-shaped server (:8080)
//!                                                    webui-monitor on the app side of the veth
//! ```
//!
//! The monitor watches the plaintext hop nginx → Open WebUI exactly as in production: XDP sees
//! the requests arriving on the app's veth, TC egress the responses leaving it. Everything is
//! torn down by guards on drop, also when a test fails.
use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use crate::net::{ChildGuard, Netns, daemon_binary, wait_for};

/// Open WebUI's `WEBUI_SECRET_KEY` for the shaped server and the monitor.
pub const SECRET: &str = "e2e-webui-secret-key-do-not-leak-4242";
/// Alice's and the admin's ids in `fixtures/openwebui/webui.db`.
pub const ALICE: &str = "700c1556-9d86-452a-880f-edbc8a74ead8";
pub const ADMIN: &str = "93966668-8c59-43ba-b3b7-c151e6d780a4";
/// Alice's API key in the fixture database.
pub const ALICE_API_KEY: &str = "sk-b2f36db1e8f4423697d7fa73f0ac0987";
pub const ALICE_PASSWORD: &str = "alice-pw-Tr0ub4dor&3-e2e";
pub const ADMIN_PASSWORD: &str = "admin-pw-c0rrect-h0rse-e2e";

/// nginx's address on the veth: the peer Open WebUI (and the monitor) sees.
pub const PROXY_ADDR: &str = "10.213.0.1";
/// The scripts' own address, on the proxy namespace's loopback: `Stack::curl` connects to nginx
/// from it, so the client address nginx forwards differs from nginx's own.
pub const CLIENT_ADDR: &str = "10.213.9.9";
pub const APP_ADDR: &str = "10.213.0.2";
pub const METRICS_PORT: u16 = 19741;
const NGINX_PORT: u16 = 8443;

/// Repository root (the tests crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A daemon or server whose output is captured to a file, so the test can grep it for secrets.
pub struct Logged {
    pub child: ChildGuard,
    pub log: PathBuf,
}

impl Logged {
    fn spawn(mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        let file = fs::File::create(&log)?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command
            .spawn()
            .with_context(|| format!("spawning {command:?}"))?;
        Ok(Self {
            child: ChildGuard(child),
            log,
        })
    }

    pub fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

/// The two namespaces, their processes and the scratch directory; dropped in reverse order of
/// creation (processes first, then namespaces).
pub struct Stack {
    pub monitor: Logged,
    pub nginx: Logged,
    pub server: Logged,
    pub proxy: Netns,
    pub app: Netns,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// Builds the stack; `monitor_args` are appended to `webui-monitor run`.
    pub fn start(tag: &str, monitor_args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("wm-e2e-").tempdir()?;
        let root = repo_root();
        let app = Netns::new(&format!("wm-{tag}-app"))?;
        let proxy = Netns::new(&format!("wm-{tag}-proxy"))?;
        let (app_if, proxy_if) = (format!("wm{tag}a"), format!("wm{tag}p"));
        app.run(
            "ip",
            &[
                "link",
                "add",
                &app_if,
                "type",
                "veth",
                "peer",
                "name",
                &proxy_if,
                "netns",
                &proxy.name,
            ],
        )?;
        app.run(
            "ip",
            &["addr", "add", &format!("{APP_ADDR}/24"), "dev", &app_if],
        )?;
        proxy.run(
            "ip",
            &["addr", "add", &format!("{PROXY_ADDR}/24"), "dev", &proxy_if],
        )?;
        for (ns, iface) in [(&app, &app_if), (&proxy, &proxy_if)] {
            ns.run("ip", &["link", "set", iface, "up"])?;
            ns.run("ip", &["link", "set", "lo", "up"])?;
        }
        proxy.run(
            "ip",
            &["addr", "add", &format!("{CLIENT_ADDR}/32"), "dev", "lo"],
        )?;

        // Open WebUI-shaped server with a copy of the fixture database.
        let db = dir.path().join("webui.db");
        fs::copy(root.join("fixtures/openwebui/webui.db"), &db)?;
        let passwords = dir.path().join("passwords");
        fs::write(
            &passwords,
            format!("alice@example.com={ALICE_PASSWORD}\nadmin@example.com={ADMIN_PASSWORD}\n"),
        )?;
        let mut command = app.command(
            "python3",
            &[
                root.join("tests/support/openwebui_shaped_server.py")
                    .to_str()
                    .context("path")?,
                "--listen",
                &format!("{APP_ADDR}:8080"),
                "--db",
                db.to_str().context("path")?,
                "--passwords",
                passwords.to_str().context("path")?,
            ],
        );
        command.env("WEBUI_SECRET_KEY", SECRET);
        let server = Logged::spawn(command, dir.path().join("server.log"))?;
        wait_for(
            "the Open WebUI-shaped server",
            Duration::from_secs(20),
            || {
                proxy
                    .run(
                        "curl",
                        &[
                            "-sf",
                            "-o",
                            "/dev/null",
                            &format!("http://{APP_ADDR}:8080/api/config"),
                        ],
                    )
                    .is_ok()
            },
        )?;

        // The monitor on the app side of the hop.
        let binary = daemon_binary()?;
        let listen = format!("{APP_ADDR}:{METRICS_PORT}");
        let mut args = vec![
            "run",
            "--config",
            "/dev/null",
            "--interface",
            &app_if,
            "--port",
            "8080",
            "--listen",
            &listen,
            "--openwebui-db",
            db.to_str().context("path")?,
        ];
        args.extend_from_slice(monitor_args);
        let mut command = app.command(binary.to_str().context("path")?, &args);
        command
            .env("WEBUI_SECRET_KEY", SECRET)
            .env("RUST_LOG", "debug");
        let monitor = Logged::spawn(command, dir.path().join("monitor.log"))?;
        let readyz = format!("http://{listen}/readyz");
        wait_for("webui-monitor to be ready", Duration::from_secs(60), || {
            proxy
                .run("curl", &["-sf", "-o", "/dev/null", &readyz])
                .is_ok()
        })
        .with_context(|| format!("monitor output:\n{}", monitor.output()))?;

        // nginx terminating TLS with a certificate made for this run.
        let rundir = dir.path().join("nginx");
        fs::create_dir_all(&rundir)?;
        crate::net::run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=openwebui.test",
                "-keyout",
                rundir.join("key.pem").to_str().context("path")?,
                "-out",
                rundir.join("cert.pem").to_str().context("path")?,
            ],
        )?;
        let conf = fs::read_to_string(root.join("tests/support/nginx.conf.template"))?
            .replace("@RUNDIR@", rundir.to_str().context("path")?)
            .replace("@LISTEN@", &format!("127.0.0.1:{NGINX_PORT}"))
            .replace("@UPSTREAM@", &format!("{APP_ADDR}:8080"));
        let conf_path = rundir.join("nginx.conf");
        fs::write(&conf_path, conf)?;
        let nginx = Logged::spawn(
            proxy.command(
                "nginx",
                &["-c", conf_path.to_str().context("path")?, "-e", "stderr"],
            ),
            dir.path().join("nginx.log"),
        )?;
        wait_for("nginx", Duration::from_secs(20), || {
            proxy
                .run(
                    "curl",
                    &[
                        "-skf",
                        "-o",
                        "/dev/null",
                        &format!("https://127.0.0.1:{NGINX_PORT}/nginx-ready"),
                    ],
                )
                .is_ok()
        })?;

        Ok(Self {
            monitor,
            nginx,
            server,
            proxy,
            app,
            dir,
        })
    }

    /// Signs in through nginx as Open WebUI's sign-in form does; returns the session JWT.
    pub fn signin(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let body = format!(r#"{{"email":"{email}","password":"{password}"}}"#);
        let (status, text) = self.curl("POST", "/api/v1/auths/signin", &[], Some(&body))?;
        anyhow::ensure!(status == 200, "signin answered {status}");
        let value: serde_json::Value = serde_json::from_str(&text)?;
        Ok(value["token"].as_str().unwrap_or_default().to_owned())
    }

    /// `curl -sk` to the proxy from the proxy namespace, from [`CLIENT_ADDR`]: returns
    /// (status, body).
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("https://127.0.0.1:{NGINX_PORT}{path}");
        let mut args = vec![
            "-sk",
            "--interface",
            CLIENT_ADDR,
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ];
        for header in headers {
            args.extend(["-H", header]);
        }
        if let Some(body) = body {
            args.extend([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        args.push(&url);
        let output = self.proxy.run("curl", &args)?;
        let (body, status) = output.rsplit_once('\n').context("curl output")?;
        Ok((status.trim().parse()?, body.to_owned()))
    }

    /// Runs the web-UI client (socket.io + web-UI completions) with `token`; returns its JSON line.
    pub fn webui_chat(&self, token: &str, prompts: &[&str]) -> anyhow::Result<String> {
        let token_file = self.dir.path().join("webui-token");
        fs::write(&token_file, token)?;
        let client = repo_root().join("tests/support/webui_client.py");
        let port = NGINX_PORT.to_string();
        let mut args = vec![
            client.to_str().context("path")?,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--token-file",
            token_file.to_str().context("path")?,
        ];
        args.extend_from_slice(prompts);
        let output = self.proxy.run("python3", &args)?;
        fs::remove_file(&token_file)?;
        Ok(output)
    }

    /// The monitor's /metrics, fetched from the proxy namespace.
    pub fn metrics(&self) -> anyhow::Result<String> {
        self.proxy.run(
            "curl",
            &["-sf", &format!("http://{APP_ADDR}:{METRICS_PORT}/metrics")],
        )
    }
}

/// The value of the sample `name{labels}` in a Prometheus text exposition, with labels given
/// in any order as `key="value"` pairs. `None` if there is no such sample.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let mut got: Vec<(String, String)> = Vec::new();
        for pair in split_labels(label_text) {
            let (k, v) = pair.split_once('=')?;
            got.push((k.to_owned(), v.trim_matches('"').to_owned()));
        }
        let wanted_all = labels.len() == got.len()
            && labels
                .iter()
                .all(|(k, v)| got.iter().any(|(gk, gv)| gk == k && gv == v));
        wanted_all.then(|| value.trim().parse().ok()).flatten()
    })
}

/// Splits `a="x",b="y,z"` on the commas between pairs (label values may contain commas).
fn split_labels(text: &str) -> Vec<&str> {
    let mut pairs = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pairs.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        pairs.push(&text[start..]);
    }
    pairs
}
