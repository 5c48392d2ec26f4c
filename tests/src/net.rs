//! Guards that undo test setup on drop (also when the test panics).
use std::process::{Child, Command};

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
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
