//! SIGHUP: the daemon re-reads its configuration and secret, applies what can change while it
//! runs, and logs the names of what changed — never a secret — and what waits for a restart.
use std::{fs, path::PathBuf, process::Stdio, time::Duration};

use anyhow::ensure;
use webui_monitor_tests::net::{self, ChildGuard, Netns};

const SETUP_DEADLINE: Duration = Duration::from_secs(60);

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn hup(daemon: &ChildGuard) -> anyhow::Result<()> {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(daemon.0.id() as i32, libc::SIGHUP) };
    ensure!(rc == 0, "kill: {}", std::io::Error::last_os_error());
    Ok(())
}

#[test]
fn sighup_applies_what_it_can_and_names_the_rest() -> anyhow::Result<()> {
    let pid = std::process::id() % 100_000;
    let ns = Netns::new(&format!("wm-hup-{pid}"))?;
    ns.run("ip", &["link", "set", "lo", "up"])?;
    let dir = std::env::temp_dir().join(format!("webui-monitor-hup-{pid}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let scratch = Scratch(dir.clone());
    let secret = scratch.0.join("secret");
    let config = scratch.0.join("config.toml");
    let log = scratch.0.join("stderr.log");
    const FIRST_SECRET: &str = "first-signing-key-0123456789";
    const SECOND_SECRET: &str = "second-signing-key-9876543210";
    fs::write(&secret, format!("{FIRST_SECRET}\n"))?;
    let write_config = |extra_capture: &str, rest: &str| -> anyhow::Result<()> {
        fs::write(
            &config,
            format!(
                "[capture]\nlisten = \"127.0.0.1:19761\"\n{extra_capture}\n\
                 [openwebui]\nwebui_secret_file = {:?}\n{rest}\n",
                secret.display().to_string()
            ),
        )?;
        Ok(())
    };
    write_config("interfaces = [\"lo\"]", "[log]\nlevel = \"info\"")?;

    let binary = net::daemon_binary()?.to_string_lossy().into_owned();
    let mut command = ns.command(&binary, &["run", "--config", &config.to_string_lossy()]);
    command
        .env_remove("WEBUI_SECRET_KEY")
        .stderr(Stdio::from(fs::File::create(&log)?));
    let mut daemon = ChildGuard(command.spawn()?);
    let ready = || {
        ns.run("curl", &["-sf", "http://127.0.0.1:19761/readyz"])
            .is_ok()
    };
    net::wait_for("the daemon to be ready", SETUP_DEADLINE, ready)?;
    let logged = || fs::read_to_string(&log).unwrap_or_default();

    // Applied now: a new secret, a pattern, a cap, personal data, the log level. Waiting for a
    // restart: the ring size.
    fs::write(&secret, format!("{SECOND_SECRET}\n"))?;
    write_config(
        "interfaces = [\"lo\", \"wmq*\"]\nring_bytes = 1048576",
        "personal_data = true\n[http]\nmax_headers = 64\n[log]\nlevel = \"debug\"",
    )?;
    hup(&daemon)?;
    net::wait_for("the SIGHUP log line", SETUP_DEADLINE, || {
        logged().contains("SIGHUP: not applied")
    })?;
    let text = logged();
    assert!(
        text.contains(
            "SIGHUP: applied capture.interfaces, http.max_headers, log.level, \
             openwebui.personal_data, the JWT secret; Open WebUI's database re-read"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "SIGHUP: not applied until webui-monitor restarts: capture.ring_bytes (the ring \
             buffer is sized when the kernel programs load)"
        ),
        "{text}"
    );
    // The pattern matches nothing yet: not ready until an interface matching it appears.
    net::wait_for("/readyz to turn 503", SETUP_DEADLINE, || !ready())?;
    let veth = format!("wmq{pid}");
    ns.run(
        "ip",
        &[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            &format!("wmr{pid}"),
        ],
    )?;
    net::wait_for("/readyz to turn 200", SETUP_DEADLINE, ready)?;
    let metrics = ns.run("curl", &["-sf", "http://127.0.0.1:19761/metrics"])?;
    assert!(
        metrics.contains(&format!(
            "webui_monitor_capture_interface_attached{{interface=\"{veth}\"}} 1"
        )),
        "{metrics}"
    );

    // The level applies: at `warn`, the next SIGHUP's "applied" line (info) is not logged,
    // its warning about the ring size is.
    write_config(
        "interfaces = [\"lo\", \"wmq*\"]\nring_bytes = 1048576",
        "personal_data = true\n[http]\nmax_headers = 65\n[log]\nlevel = \"warn\"",
    )?;
    let before = logged().matches("SIGHUP: not applied").count();
    hup(&daemon)?;
    net::wait_for("the second SIGHUP", SETUP_DEADLINE, || {
        logged().matches("SIGHUP: not applied").count() > before
    })?;
    assert_eq!(
        logged().matches("SIGHUP: applied").count(),
        1,
        "{}",
        logged()
    );

    // A configuration that does not load changes nothing and says why.
    fs::write(&config, "[capture]\nportz = [1]\n")?;
    hup(&daemon)?;
    net::wait_for("the refusal", SETUP_DEADLINE, || {
        logged().contains("SIGHUP: configuration not applied, the running one stays")
    })?;
    assert!(ready(), "still watching what it watched");

    let status = daemon.signal_and_wait(libc::SIGTERM)?;
    assert!(status.success(), "daemon exit: {status}");
    let text = logged();
    for secret in [FIRST_SECRET, SECOND_SECRET] {
        assert!(!text.contains(secret), "a secret reached the log:\n{text}");
    }
    Ok(())
}
