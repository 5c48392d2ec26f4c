//! The daemon's logger, built from `[log]`.
use super::{LogConfig, LogFormat, LogLevel};

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            Self::Off => log::LevelFilter::Off,
            Self::Error => log::LevelFilter::Error,
            Self::Warn => log::LevelFilter::Warn,
            Self::Info => log::LevelFilter::Info,
            Self::Debug => log::LevelFilter::Debug,
            Self::Trace => log::LevelFilter::Trace,
        }
    }
}

impl LogConfig {
    /// A logger writing to stderr (the journal under systemd) in the configured format and
    /// level; the daemon calls `.init()` on it once. `json`: one object per line with `ts`,
    /// `level`, `target` and `msg`, for log shippers.
    pub fn logger(&self) -> env_logger::Builder {
        let mut builder = env_logger::Builder::new();
        builder
            .filter_level(self.level.filter())
            .target(env_logger::Target::Stderr);
        if self.format == LogFormat::Json {
            builder.format(|buf, record| {
                use std::io::Write;
                let ts = buf.timestamp_millis().to_string();
                let msg = record.args().to_string();
                writeln!(
                    buf,
                    "{}",
                    json_log_line(&ts, record.level(), record.target(), &msg)
                )
            });
        }
        builder
    }
}

/// One JSON log object (no trailing newline).
pub(super) fn json_log_line(ts: &str, level: log::Level, target: &str, msg: &str) -> String {
    format!(
        "{{\"ts\":{},\"level\":\"{}\",\"target\":{},\"msg\":{}}}",
        json_string(ts),
        level.as_str().to_ascii_lowercase(),
        json_string(target),
        json_string(msg)
    )
}

/// `text` as a JSON string literal (RFC 8259 escaping).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
