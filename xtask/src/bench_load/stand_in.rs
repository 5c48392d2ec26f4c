//! The benchmark's network and processes, each undone by a guard on drop — also when a step
//! fails, and on SIGINT/SIGTERM/SIGHUP, which [`interrupt`] turns into an error at the next
//! check instead of a death that would leave them behind.
//!
//! ```text
//!  root namespace                                   NAMESPACE
//!  wrk, idle clients ── HOST_IF ═══ veth ═══ APP_IF ── nginx (the stand-in, APP_ADDR:PORT)
//!  webui-monitor attached to HOST_IF (XDP ingress: answers, TC egress: requests)
//! ```
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

pub const NAMESPACE: &str = "wm-bench-load";
pub const HOST_IF: &str = "wmblhost";
const APP_IF: &str = "wmblapp";
const HOST_ADDR: &str = "10.217.0.1";
/// Further source addresses for the idle connections: one address has about 28,000
/// ephemeral ports towards one server port.
const EXTRA_SOURCES: [&str; 3] = ["10.217.0.11", "10.217.0.12", "10.217.0.13"];
pub const APP_ADDR: &str = "10.217.0.2";
/// The stand-in's port, which the daemon watches.
pub const PORT: u16 = 8080;
/// nginx's stub_status, on a port the daemon does not watch.
const STATUS_PORT: u16 = 8081;
/// Size of the JavaScript bundle (the median of the larger chunks in the fixtures' browser
/// session is 16 KB).
const ASSET_BYTES: usize = 16 << 10;

/// Runs a command to completion, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    ensure!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT, SIGTERM and SIGHUP into a flag that [`interrupted`] reports, so the guards
/// run. The terminal's Ctrl-C also reaches the children (same process group); they stop on
/// their own and the guards find them gone.
pub fn interrupt() -> anyhow::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic is valid;
        // sigaction reads it and nothing else.
        let result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        ensure!(
            result == 0,
            "installing a handler for signal {signal}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Fails once a signal arrived.
pub fn interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted: cleaning up");
    }
    Ok(())
}

/// Sleeps `duration`, failing early on a signal.
pub fn sleep(duration: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        interrupted()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Polls `ready` every 50 ms for up to `limit`.
pub fn wait_for(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ready() {
        interrupted()?;
        ensure!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A child process: SIGTERM on drop (nginx's master stops its workers, the daemon detaches
/// its programs), SIGKILL after 10 s.
pub struct Process {
    pub child: Child,
    pub name: &'static str,
}

impl Process {
    pub fn spawn(name: &'static str, command: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Self { child, name })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited: {status}", self.name);
        }
        Ok(())
    }

    /// Waits for the exit, failing after `limit` or on a signal.
    pub fn wait(&mut self, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            interrupted()?;
            ensure!(
                start.elapsed() < limit,
                "{} still running after {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after).
    pub fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return; // reaped: the pid may belong to another process by now
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a plain syscall on our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A sysctl set for the run and restored on drop.
pub struct Sysctl {
    path: PathBuf,
    original: String,
}

impl Sysctl {
    pub fn set(name: &str, value: &str) -> anyhow::Result<Self> {
        let path = Path::new("/proc/sys").join(name.replace('.', "/"));
        let original = fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned();
        fs::write(&path, value)
            .with_context(|| format!("writing {value} to {}", path.display()))?;
        Ok(Self { path, original })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(error) = fs::write(&self.path, &self.original) {
            eprintln!(
                "could not restore {} to {}: {error}; set it by hand",
                self.path.display(),
                self.original
            );
        }
    }
}

/// The namespace and the veth pair; deleting the namespace deletes the pair with it.
pub struct Network(());

impl Network {
    pub fn create() -> anyhow::Result<Self> {
        // Leftovers of a run that was killed with SIGKILL.
        let _ = run("ip", &["netns", "del", NAMESPACE]);
        let _ = run("ip", &["link", "del", HOST_IF]);
        run("ip", &["netns", "add", NAMESPACE])?;
        let network = Self(());
        run(
            "ip",
            &[
                "link", "add", HOST_IF, "type", "veth", "peer", "name", APP_IF, "netns", NAMESPACE,
            ],
        )?;
        run(
            "ip",
            &["addr", "add", &format!("{HOST_ADDR}/24"), "dev", HOST_IF],
        )?;
        for source in EXTRA_SOURCES {
            run(
                "ip",
                &["addr", "add", &format!("{source}/24"), "dev", HOST_IF],
            )?;
        }
        run("ip", &["link", "set", HOST_IF, "up"])?;
        in_namespace(
            "ip",
            &["addr", "add", &format!("{APP_ADDR}/24"), "dev", APP_IF],
        )?;
        in_namespace("ip", &["link", "set", APP_IF, "up"])?;
        in_namespace("ip", &["link", "set", "lo", "up"])?;
        Ok(network)
    }

    /// The source addresses of the idle connections.
    pub fn sources() -> impl Iterator<Item = &'static str> {
        std::iter::once(HOST_ADDR).chain(EXTRA_SOURCES)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", NAMESPACE]);
        let _ = run("ip", &["link", "del", HOST_IF]);
    }
}

/// `ip netns exec NAMESPACE program args...`, run to completion.
fn in_namespace(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["netns", "exec", NAMESPACE, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// The answers, as Open WebUI 0.12.4 writes them (fixtures/openwebui/script_jwt.pcap).
const COMPLETION: &str = r#"{"id":"chatcmpl-224fc64aeaa946ccaeede76c","object":"chat.completion","created":1795766827,"model":"mock-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"Mock reply #5 from mock-gpt. You said: \"Script JWT non-streaming question\". This is a deterministic test answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":17,"total_tokens":21}}"#;

/// The SSE stream: a role delta, one delta per word, the finish, the usage, `[DONE]`; under
/// 4 KiB, the longest string nginx's configuration holds.
fn stream_body() -> String {
    let event = |body: &str| {
        format!(
            "data: {{\"id\": \"chatcmpl-0cdeb7ce482c4df78493020e\", \"object\": \"chat.completion.chunk\", \"created\": 1795766827, \"model\": \"mock-gpt\", {body}}}\n\n"
        )
    };
    let mut stream = event(
        r#""choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]"#,
    );
    // Twelve words: nginx keeps a string of its configuration within 4 KiB.
    for word in
        "Mock reply #6 from mock-gpt. This is a deterministic test answer, streamed.".split(' ')
    {
        stream += &event(&format!(
            r#""choices": [{{"index": 0, "delta": {{"content": "{word} "}}, "finish_reason": null}}]"#
        ));
    }
    stream += &event(r#""choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]"#);
    stream += &event(
        r#""choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 12, "total_tokens": 16}"#,
    );
    stream + "data: [DONE]\n\n"
}

/// Quotes `text` for an nginx single-quoted string (`\n` is an escape there).
fn nginx_quoted(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('\n', "\\n")
}

/// nginx in the namespace, answering like Open WebUI.
pub struct StandIn {
    pub nginx: Process,
}

impl StandIn {
    pub fn start(rundir: &Path) -> anyhow::Result<Self> {
        let www = rundir.join("www/_app/immutable/chunks");
        fs::create_dir_all(&www)?;
        // Minified-JavaScript-like text: identifiers, punctuation, no long repeats.
        let mut asset = String::with_capacity(ASSET_BYTES);
        let mut state = 0x9e37_79b9_u32;
        while asset.len() < ASSET_BYTES {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            asset += &format!("const e{state:x}=t=>t.map(n=>n*{});", state % 97);
        }
        asset.truncate(ASSET_BYTES);
        fs::write(www.join("Bench0Load.js"), asset)?;

        for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            fs::create_dir_all(rundir.join(temp))?;
        }
        ensure!(
            !stream_body().contains('$') && !COMPLETION.contains('$'),
            "nginx would read $ as a variable"
        );
        let conf = include_str!("nginx.conf")
            .replace("@RUNDIR@", path_str(rundir)?)
            .replace("@ADDR@", APP_ADDR)
            .replace("@PORT@", &PORT.to_string())
            .replace("@STATUS_PORT@", &STATUS_PORT.to_string())
            .replace("@COMPLETION@", &nginx_quoted(COMPLETION))
            .replace("@STREAM@", &nginx_quoted(&stream_body()));
        let conf_path = rundir.join("nginx.conf");
        fs::write(&conf_path, conf)?;
        let nginx = Process::spawn(
            "nginx",
            Command::new("ip").args([
                "netns",
                "exec",
                NAMESPACE,
                "nginx",
                "-c",
                path_str(&conf_path)?,
                "-e",
                "stderr",
            ]),
            &rundir.join("nginx.log"),
        )?;
        let mut stand_in = Self { nginx };
        wait_for("nginx in the namespace", Duration::from_secs(20), || {
            Self::served().is_ok()
        })
        .with_context(|| {
            format!(
                "nginx did not answer; its log: {}",
                fs::read_to_string(rundir.join("nginx.log")).unwrap_or_default()
            )
        })?;
        stand_in.nginx.alive()?;
        Ok(stand_in)
    }

    /// Requests nginx has served so far (stub_status), this query included.
    pub fn served() -> anyhow::Result<u64> {
        let status = run(
            "curl",
            &[
                "-sf",
                "--max-time",
                "5",
                &format!("http://{APP_ADDR}:{STATUS_PORT}/status"),
            ],
        )?;
        // "Active connections: N \nserver accepts handled requests\n A H R \n..."
        let counts = status
            .lines()
            .nth(2)
            .context("stub_status without its third line")?;
        counts
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no request count in stub_status: {status}"))
    }
}

pub fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_carries_usage_and_done() {
        let stream = stream_body();
        assert!(stream.starts_with("data: {\"id\": \"chatcmpl-"));
        assert!(stream.contains(r#""usage": {"prompt_tokens": 4, "completion_tokens": 12"#));
        assert!(stream.ends_with("data: [DONE]\n\n"));
        assert_eq!(stream.matches("\n\n").count(), 16);
        assert!(nginx_quoted(&stream).len() < 4000);
    }

    #[test]
    fn nginx_quoting() {
        assert_eq!(nginx_quoted("a'b\\c\nd"), "a\\'b\\\\c\\nd");
    }
}
