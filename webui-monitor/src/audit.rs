//! Writing the audit trail (`webui_monitor_core::audit`): JSON lines to a size-rotated file or
//! the systemd journal, as `[audit]` says.
//!
//! The daemon drains the monitor's queue after each batch of input and hands the events to
//! [`AuditWriter`], whose own thread serializes and writes them, so a slow disk or journal never
//! stalls the capture. Between the two, a bounded channel: a batch that does not fit is
//! dropped and counted. A failed write is counted and logged at most once a minute (with the
//! number of failures since the last line), never fatal. `replay --audit-out` writes with
//! [`RotatingFile`] directly.
use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use prometheus::{IntCounter, IntCounterVec, Registry};
use systemd_journal_logger::JournalLog;
use webui_monitor_core::{Monitor, audit::AuditEvent, metrics::util};

use crate::config::{AuditConfig, AuditOutput};

/// Where the journal listens for native protocol datagrams.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// `SYSLOG_IDENTIFIER` of the journal entries (`journalctl -t webui-monitor-audit`).
pub const JOURNAL_IDENTIFIER: &str = "webui-monitor-audit";
/// Batches waiting for the writer thread; further ones are dropped and counted.
const BACKLOG_BATCHES: usize = 256;
/// Failures are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why the audit output cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "audit.output = \"file\": cannot open {path}: {source}; create its directory and let the daemon write there (the packaged unit has LogsDirectory=webui-monitor), or set audit.path"
    )]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "audit.output = \"journal\", but there is no journal socket at {JOURNAL_SOCKET} (systemd-journald is not running here, or a container does not mount it): mount it (-v {JOURNAL_SOCKET}:{JOURNAL_SOCKET}), or set audit.output = \"file\" with audit.path, or \"none\""
    )]
    NoJournal,
    #[error("audit.output = \"journal\": cannot open a socket to the journal: {0}")]
    Journal(io::Error),
}

/// A JSON-lines file rotated by size: when a line would take it past `max_bytes`, `path` is
/// renamed `path.1` (`path.1` → `path.2`, …, up to `path.<keep>`, the oldest removed) and a
/// new `path` is started. At most `(keep + 1) × max_bytes` bytes on disk (a single line longer
/// than `max_bytes` gets a file of its own).
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens `path` for appending (created with mode 0640), continuing its current size.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            keep,
            file,
            size,
        })
    }

    /// Appends `line` and a newline, rotating first if it would not fit.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.size += len;
        Ok(())
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let ignore_missing = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if self.keep == 0 {
            ignore_missing(std::fs::remove_file(&self.path))?;
        } else {
            for n in (1..self.keep).rev() {
                ignore_missing(std::fs::rename(self.numbered(n), self.numbered(n + 1)))?;
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// An opened audit output.
pub enum Output {
    File(RotatingFile),
    Journal(JournalLog),
    None,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::File(_) => "Output::File",
            Self::Journal(_) => "Output::Journal",
            Self::None => "Output::None",
        })
    }
}

impl Output {
    /// Opens what `config.output` names.
    pub fn open(config: &AuditConfig) -> Result<Self, AuditError> {
        match config.output {
            AuditOutput::None => Ok(Self::None),
            AuditOutput::File => {
                RotatingFile::open(&config.path, config.max_file_bytes, config.keep_files)
                    .map(Self::File)
                    .map_err(|source| AuditError::Open {
                        path: config.path.clone(),
                        source,
                    })
            }
            AuditOutput::Journal => {
                if !Path::new(JOURNAL_SOCKET).exists() {
                    return Err(AuditError::NoJournal);
                }
                let journal = JournalLog::new()
                    .map_err(AuditError::Journal)?
                    .with_syslog_identifier(JOURNAL_IDENTIFIER.to_owned());
                Ok(Self::Journal(journal))
            }
        }
    }

    /// Writes one event.
    pub fn write(&mut self, event: &AuditEvent) -> io::Result<()> {
        let line = match self {
            Self::None => return Ok(()),
            _ => serde_json::to_string(event).map_err(io::Error::other)?,
        };
        match self {
            Self::File(file) => file.write_line(&line),
            Self::Journal(journal) => journal.journal_send(
                &log::Record::builder()
                    .level(log::Level::Info)
                    .target("webui_monitor::audit")
                    .args(format_args!("{line}"))
                    .build(),
            ),
            Self::None => Ok(()),
        }
    }
}

/// The writer's families.
#[derive(Debug, Clone)]
struct WriterMetrics {
    /// `webui_monitor_audit_written_total`.
    written: IntCounter,
    /// `webui_monitor_audit_write_failures_total{reason}`: `io` (the write failed) or
    /// `backlog` (the writer was behind; the batch's events were dropped).
    failures: IntCounterVec,
}

/// The daemon's audit writer: a thread that owns the [`Output`]. With `audit.output =
/// "none"` there is no thread: the monitor builds no event ([`AuditWriter::writes_events`])
/// and the writer only counts what it would have been handed.
#[derive(Debug)]
pub struct AuditWriter {
    sender: Option<SyncSender<Vec<AuditEvent>>>,
    thread: Option<JoinHandle<()>>,
    metrics: WriterMetrics,
    /// Backlog drops not yet logged, and when the last line was.
    dropped: u64,
    last_log: Option<Instant>,
    /// `audit.output = "none"`: the monitor's queued events (recorded minus dropped) counted
    /// so far, as the writer of `none` counts them written.
    discarding: Option<u64>,
}

impl AuditWriter {
    /// Starts the thread writing to `output`; registers its families in `registry`.
    pub fn start(output: Output, registry: &Registry) -> anyhow::Result<Self> {
        let metrics = WriterMetrics {
            written: util::counter(
                registry,
                "webui_monitor_audit_written_total",
                "Audit events written to the configured output (audit.output).",
            )?,
            failures: util::counter_vec(
                registry,
                "webui_monitor_audit_write_failures_total",
                "Audit events not written: io (the write failed), backlog (the writer was behind and the events were dropped).",
                &["reason"],
            )?,
        };
        if matches!(output, Output::None) {
            return Ok(Self {
                sender: None,
                thread: None,
                metrics,
                dropped: 0,
                last_log: None,
                discarding: Some(0),
            });
        }
        let (sender, receiver) = sync_channel(BACKLOG_BATCHES);
        let thread_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                // Writing a file or the journal needs no capability (see `privileges`).
                if let Err(error) = crate::privileges::drop_all_in_this_thread() {
                    log::error!("{error}");
                }
                write_loop(output, &receiver, &thread_metrics)
            })?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            metrics,
            dropped: 0,
            last_log: None,
            discarding: None,
        })
    }

    /// Whether events go anywhere: if not, the monitor need not build them
    /// ([`Monitor::keep_audit_events`]).
    pub fn writes_events(&self) -> bool {
        self.discarding.is_none()
    }

    /// Hands the monitor's queued events to the writer thread, never blocking.
    pub fn submit(&mut self, monitor: &mut Monitor) {
        if let Some(counted) = &mut self.discarding {
            // `none` writes every event it is handed: count those the monitor queued.
            let c = monitor.audit_counters();
            let queued = c.events - c.dropped;
            self.metrics.written.inc_by(queued - *counted);
            *counted = queued;
            monitor.drain_audit().for_each(drop);
            return;
        }
        let batch: Vec<AuditEvent> = monitor.drain_audit().collect();
        if batch.is_empty() {
            return;
        }
        let Some(sender) = &self.sender else { return };
        if let Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) =
            sender.try_send(batch)
        {
            let n = batch.len() as u64;
            self.metrics
                .failures
                .with_label_values(&["backlog"])
                .inc_by(n);
            self.dropped += n;
            if self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                log::warn!(
                    "audit: {} events dropped, the writer is behind (slow disk or journal?); \
                     see webui_monitor_audit_write_failures_total",
                    self.dropped
                );
                self.dropped = 0;
                self.last_log = Some(Instant::now());
            }
        }
    }

    /// Writes what is still queued and stops the thread.
    pub fn finish(mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(mut output: Output, batches: &Receiver<Vec<AuditEvent>>, metrics: &WriterMetrics) {
    let mut failed = 0u64;
    let mut last_log: Option<Instant> = None;
    for batch in batches {
        for event in &batch {
            match output.write(event) {
                Ok(()) => metrics.written.inc(),
                Err(error) => {
                    metrics.failures.with_label_values(&["io"]).inc();
                    failed += 1;
                    if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                        log::warn!(
                            "audit: {failed} events not written ({error}); check that the \
                             audit output ({output:?}) is writable and has space; the next \
                             failures are logged at most once a minute"
                        );
                        failed = 0;
                        last_log = Some(Instant::now());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wm-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rotation_keeps_n_files_under_the_size_cap() {
        let dir = scratch("rotate");
        let path = dir.join("audit.jsonl");
        // 10-byte lines (9 + newline), 25 bytes a file: two lines each.
        let mut file = RotatingFile::open(&path, 25, 2).unwrap();
        for i in 0..7 {
            file.write_line(&format!("event-{i:03}")).unwrap();
        }
        assert_eq!(read(&path), "event-006\n");
        assert_eq!(read(&dir.join("audit.jsonl.1")), "event-004\nevent-005\n");
        assert_eq!(read(&dir.join("audit.jsonl.2")), "event-002\nevent-003\n");
        // event-000 and 001 went with the third rotation.
        assert!(!dir.join("audit.jsonl.3").exists());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]);

        // Reopened, the size continues: one more line fits, the next rotates.
        let mut file = RotatingFile::open(&path, 25, 2).unwrap();
        file.write_line("event-007").unwrap();
        assert_eq!(read(&path), "event-006\nevent-007\n");
        file.write_line("event-008").unwrap();
        assert_eq!(read(&path), "event-008\n");
        assert_eq!(read(&dir.join("audit.jsonl.1")), "event-006\nevent-007\n");
        assert_eq!(read(&dir.join("audit.jsonl.2")), "event-004\nevent-005\n");

        // keep_files = 0: the file starts over.
        let mut file = RotatingFile::open(&path, 25, 0).unwrap();
        file.write_line("event-009").unwrap();
        assert_eq!(read(&path), "event-008\nevent-009\n");
        file.write_line("event-010").unwrap();
        assert_eq!(read(&path), "event-010\n");
        assert_eq!(read(&dir.join("audit.jsonl.1")), "event-006\nevent-007\n");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn file_output_errors_say_what_to_do() {
        let config = AuditConfig {
            output: AuditOutput::File,
            path: "/nonexistent-dir/audit.jsonl".into(),
            ..AuditConfig::default()
        };
        let e = Output::open(&config).unwrap_err().to_string();
        assert!(
            e.contains("cannot open /nonexistent-dir/audit.jsonl"),
            "{e}"
        );
        assert!(e.contains("create its directory"), "{e}");
        if !Path::new(JOURNAL_SOCKET).exists() {
            let config = AuditConfig {
                output: AuditOutput::Journal,
                ..AuditConfig::default()
            };
            let e = Output::open(&config).unwrap_err().to_string();
            assert!(
                e.contains("no journal socket at /run/systemd/journal/socket"),
                "{e}"
            );
            assert!(e.contains("audit.output = \"file\""), "{e}");
        }
    }
}
