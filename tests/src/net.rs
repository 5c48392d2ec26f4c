//! Guards that undo test setup on drop (also when the test panics), and the helpers every
//! privileged test shares.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

/// Runs a command, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program).args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A network namespace, deleted on drop (which also deletes the interfaces inside it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let _ = run("ip", &["netns", "del", name]);
        run("ip", &["netns", "add", name])?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    /// `ip netns exec NAME program args...` as a command to run or spawn.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, program])
            .args(args);
        command
    }

    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A child process, killed and reaped on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Sends `signal` and waits for the exit status.
    pub fn signal_and_wait(&mut self, signal: i32) -> anyhow::Result<std::process::ExitStatus> {
        let pid = i32::try_from(self.0.id())?;
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(pid, signal) };
        Ok(self.0.wait()?)
    }
}

impl Drop for ChildGuard {
    /// SIGTERM first, so a process can stop its own children (nginx's master stops its
    /// workers; SIGKILL would orphan them) and the daemon detaches as in production; SIGKILL
    /// after a few seconds.
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return; // already reaped: its pid may belong to someone else by now
        }
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: plain syscall on our own, not yet reaped, child's pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon binary cargo built next to this test binary (`target/<profile>/webui-monitor`).
pub fn daemon_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .context("target dir")?
        .join("webui-monitor");
    ensure!(
        binary.exists(),
        "{} is missing: run the tests through `cargo xtask test`, which builds it",
        binary.display()
    );
    Ok(binary)
}

/// Polls `ready` every 100 ms until it holds, failing after `limit` with `what` in the error.
pub fn wait_for(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
