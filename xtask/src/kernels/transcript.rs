//! Following one row's run: the lines a guest's serial console (or the host row's steps
//! script) prints, read as they come, cut into steps at the marker lines of
//! `tests/kernel-matrix/run-step` and `init`, with a deadline on every phase so that a hung
//! guest costs minutes, not the CI job.
use std::{
    io::{BufRead as _, BufReader, Write},
    process::{Child, Command},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;

/// What every line the harness reads starts with (after whatever the kernel printed into it).
const MARKER: &str = "@@kernel-matrix ";

/// How long a guest may take from QEMU's start to the init's `guest-ready` (TCG boots the
/// cloud kernels in 3 to 5 s).
const BOOT_LIMIT: Duration = Duration::from_secs(120);
/// How long the harness waits for the next marker between steps, and beyond a step's own
/// timeout (which `run-step` enforces inside the guest, killing 10 s after it asks politely).
const SLACK: Duration = Duration::from_secs(60);

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Exit status other than 0 (`timeout`'s 124 excepted).
    Failed(i32),
    /// The step's own timeout fired.
    TimedOut,
    /// The guest stopped answering during the step and was killed.
    Hung,
    /// The run ended before the step began.
    NotRun,
    /// Its test executable did not build.
    NotBuilt,
}

#[derive(Debug, Clone)]
pub struct StepResult {
    pub outcome: Outcome,
    pub duration: Option<Duration>,
    /// What the step printed, stdout and stderr merged (and any kernel message in between).
    pub output: Vec<String>,
}

impl StepResult {
    pub fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            duration: None,
            output: Vec::new(),
        }
    }
}

/// Everything one row's run produced.
pub struct Transcript {
    /// One per step of the steps script, in its order.
    pub steps: Vec<StepResult>,
    /// What went wrong outside the steps: boot, guest setup, a hang, a crash.
    pub problem: Option<String>,
    /// The release the guest booted (`uname -r` at `guest-ready`).
    pub release: Option<String>,
    /// When the guest said `guest-ready`, from QEMU's start.
    pub ready_after: Option<Duration>,
    /// Every line, for the tail shown with a problem.
    pub console: Vec<String>,
}

impl Transcript {
    /// Before a run of `steps` steps.
    fn new(steps: usize) -> Self {
        Self {
            steps: vec![StepResult::new(Outcome::NotRun); steps],
            problem: None,
            release: None,
            ready_after: None,
            console: Vec::new(),
        }
    }

    /// A run that could not start.
    pub fn failed(steps: usize, problem: String) -> Self {
        Self {
            problem: Some(problem),
            ..Self::new(steps)
        }
    }
}

/// A child process killed (if it still runs) and reaped when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `command` with stdout and stderr on one pipe (QEMU's own errors then appear among
/// the console lines) and a thread forwarding the pipe's lines.
pub fn spawn(mut command: Command) -> anyhow::Result<(Child, Receiver<String>)> {
    let (reader, writer) = std::io::pipe().context("creating a pipe")?;
    command.stdout(writer.try_clone()?).stderr(writer);
    let child = command
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    // Dropping the command closes its copies of the write end: the reader sees the end of the
    // output when the child (and whatever it started) is gone.
    drop(command);
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            // The serial console ends lines with \r\n and the firmware sends escape codes.
            let line: String = String::from_utf8_lossy(&line)
                .chars()
                .filter(|c| *c == '\t' || !c.is_control())
                .collect();
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, lines))
}

/// Where a run stands, for its deadline.
#[derive(Clone, Copy)]
enum Phase {
    /// A guest booting (the host row starts `Idle`).
    Booting,
    /// Between steps, since the last marker.
    Idle,
    /// In step `index`, which began then.
    InStep { index: usize, began: Instant },
}

/// Follows `child`'s output `lines` through the steps `steps` (name and timeout, in the
/// script's order) until it exits or a deadline passes (then it is killed), copying every line
/// to `log` and calling `on_step` as each step ends. `guest` says the child is QEMU: it must
/// first say `guest-ready` and finish with `guest-done`.
pub fn follow(
    child: &mut Child,
    lines: &Receiver<String>,
    steps: &[(&str, Duration)],
    guest: bool,
    log: &mut impl Write,
    on_step: impl FnMut(&str, &StepResult),
) -> Transcript {
    let mut follower = Follower {
        steps,
        transcript: Transcript::new(steps.len()),
        phase: if guest { Phase::Booting } else { Phase::Idle },
        started: Instant::now(),
        last_marker: Instant::now(),
        done: false,
        on_step,
    };
    let exit = loop {
        let deadline = match follower.phase {
            Phase::Booting => follower.started + BOOT_LIMIT,
            Phase::Idle => follower.last_marker + SLACK,
            Phase::InStep { index, began } => began + steps[index].1 + SLACK,
        };
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            if !follower.done {
                follower.hung(guest);
            }
            return follower.transcript;
        }
        // Wake up at least once a second: a host row's script may have exited while a process
        // it left behind still holds the pipe open.
        match lines.recv_timeout((deadline - now).min(Duration::from_secs(1))) {
            Ok(line) => {
                let _ = writeln!(log, "{line}");
                follower.line(line);
            }
            Err(RecvTimeoutError::Disconnected) => break child.wait().ok(),
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    // Take what is still on its way, until the pipe is quiet.
                    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                        let _ = writeln!(log, "{line}");
                        follower.line(line);
                    }
                    break Some(status);
                }
            }
        }
    };
    let mut transcript = follower.transcript;
    if transcript.problem.is_none() {
        let status = exit.map_or_else(|| "status unknown".to_owned(), |s| s.to_string());
        if guest && !follower.done {
            transcript.problem = Some(format!(
                "the guest stopped before its steps finished (QEMU {status}): a kernel panic, \
                 or QEMU could not start (see the console)"
            ));
        } else if !guest && !exit.is_some_and(|s| s.success()) {
            transcript.problem = Some(format!("the steps script failed ({status})"));
        }
    }
    transcript
}

/// The state of [`follow`].
struct Follower<'a, F> {
    steps: &'a [(&'a str, Duration)],
    transcript: Transcript,
    phase: Phase,
    started: Instant,
    last_marker: Instant,
    /// The guest said `guest-done`: every step ran.
    done: bool,
    on_step: F,
}

impl<F: FnMut(&str, &StepResult)> Follower<'_, F> {
    fn line(&mut self, line: String) {
        match line.split_once(MARKER) {
            Some((_, marker)) => {
                self.last_marker = Instant::now();
                self.marker(marker);
            }
            None => {
                if let Phase::InStep { index, .. } = self.phase {
                    self.transcript.steps[index].output.push(line.clone());
                }
            }
        }
        self.transcript.console.push(line);
    }

    fn marker(&mut self, marker: &str) {
        let words: Vec<&str> = marker.split_whitespace().collect();
        match words.as_slice() {
            ["guest-ready", release] => {
                self.transcript.release = Some((*release).to_owned());
                self.transcript.ready_after = Some(self.started.elapsed());
                self.phase = Phase::Idle;
            }
            ["begin", name] => {
                if let Some(index) = self.steps.iter().position(|(n, _)| n == name) {
                    self.phase = Phase::InStep {
                        index,
                        began: self.last_marker,
                    };
                }
            }
            ["end", name, rc, ms] => {
                if let Phase::InStep { index, .. } = self.phase
                    && self.steps[index].0 == *name
                {
                    let result = &mut self.transcript.steps[index];
                    result.outcome = match rc.strip_prefix("rc=").and_then(|rc| rc.parse().ok()) {
                        Some(0) => Outcome::Passed,
                        Some(124) => Outcome::TimedOut,
                        Some(status) => Outcome::Failed(status),
                        None => Outcome::Failed(-1),
                    };
                    result.duration = ms
                        .strip_prefix("ms=")
                        .and_then(|ms| ms.parse().ok())
                        .map(Duration::from_millis);
                    (self.on_step)(name, result);
                    self.phase = Phase::Idle;
                }
            }
            ["guest-error", ..] => {
                let error = marker.trim_start_matches("guest-error").trim();
                self.transcript.problem = Some(format!("the guest's init failed: {error}"));
            }
            ["guest-done", ..] => self.done = true,
            _ => {}
        }
    }

    /// Records what a run that had to be killed was doing.
    fn hung(&mut self, guest: bool) {
        let what = if guest {
            "the guest"
        } else {
            "the steps script"
        };
        let problem = match self.phase {
            Phase::Booting => format!(
                "no `guest-ready` within {} s: the kernel or the init hung; QEMU killed",
                BOOT_LIMIT.as_secs()
            ),
            Phase::Idle => format!(
                "nothing from {what} for {} s between steps; killed",
                SLACK.as_secs()
            ),
            Phase::InStep { index, .. } => {
                self.transcript.steps[index].outcome = Outcome::Hung;
                let (name, timeout) = self.steps[index];
                format!(
                    "step {name} outlived its {} s timeout by {} s: {what} stopped \
                     responding; killed",
                    timeout.as_secs(),
                    SLACK.as_secs()
                )
            }
        };
        self.transcript.problem = Some(problem);
    }
}
