//! Checks serde cannot express, each once: the daemon, `config check` and the capture loader
//! all call these.
use std::time::Duration;

use super::{
    AuditConfig, AuditOutput, CaptureConfig, Config, MAX_PORTS, OpenWebUiConfig, Problem,
    ServerConfig,
    schema::{PricingConfig, is_interface_pattern, parse_network},
};

impl Config {
    /// Semantic checks serde cannot express. Returns every problem, not just the first.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = self.capture.problems();
        problems.extend(self.openwebui.problems());
        problems.extend(self.server.problems());
        problems.extend(self.pricing.problems());
        problems.extend(self.audit.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl CaptureConfig {
    /// [`Config::validate`] for `[capture]` alone.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key, message: String| problems.push(Problem { key, message });
        if self.interfaces.is_empty() {
            bad(
                "capture.interfaces",
                "no interface given: name at least one, e.g. interfaces = [\"lo\"]".into(),
            );
        }
        for name in &self.interfaces {
            if is_interface_pattern(name) {
                if let Err(why) = check_interface_pattern(name) {
                    bad(
                        "capture.interfaces",
                        format!(
                            "{name:?} is not a valid interface pattern ({why}); write e.g. \"veth*\" or \"br-*\""
                        ),
                    );
                }
            } else if let Err(why) = check_interface_name(name) {
                bad(
                    "capture.interfaces",
                    format!("{name:?} is not a valid interface name ({why}); see `ip -br link`"),
                );
            }
        }
        let names = self
            .interfaces
            .iter()
            .filter(|i| !is_interface_pattern(i))
            .count();
        if self.max_interfaces == 0 || names > self.max_interfaces {
            bad(
                "capture.max_interfaces",
                format!(
                    "{} is less than the {names} interface names listed (or 0): raise it (default 64)",
                    self.max_interfaces
                ),
            );
        }
        if has_duplicates(&self.interfaces) {
            bad(
                "capture.interfaces",
                "an interface is listed twice: list each once".into(),
            );
        }
        if self.ports.is_empty() {
            bad(
                "capture.ports",
                "no port given: name Open WebUI's port, e.g. ports = [8080]".into(),
            );
        }
        if self.ports.len() > MAX_PORTS {
            bad(
                "capture.ports",
                format!(
                    "{} ports given, the kernel program watches at most {MAX_PORTS}: remove some",
                    self.ports.len()
                ),
            );
        }
        if self.ports.contains(&0) {
            bad(
                "capture.ports",
                "port 0 cannot be monitored: use Open WebUI's listening port (8080 by default)"
                    .into(),
            );
        }
        if has_duplicates(&self.ports) {
            bad(
                "capture.ports",
                "a port is listed twice: list each once".into(),
            );
        }
        if self.listen.port() == 0 {
            bad(
                "capture.listen",
                "port 0 would pick a random port Prometheus cannot find: use a fixed port such as 9741".into(),
            );
        }
        // The kernel sizes a ring buffer in whole pages, a power of two of them.
        let page = page_size();
        if !self.ring_bytes.is_power_of_two() || self.ring_bytes < page {
            bad(
                "capture.ring_bytes",
                format!(
                    "{} is not a power of two of at least {page} (the kernel requires it): use e.g. {}",
                    self.ring_bytes,
                    self.ring_bytes
                        .max(page)
                        .checked_next_power_of_two()
                        .unwrap_or(1 << 30)
                ),
            );
        }
        if self.max_connections == 0 {
            bad(
                "capture.max_connections",
                "must be at least 1 (default 65536)".into(),
            );
        }
        problems
    }
}

impl OpenWebUiConfig {
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key, message: String| problems.push(Problem { key, message });
        if self.max_users == 0 {
            bad(
                "openwebui.max_users",
                "must be at least 1 (default 1000); users beyond it are counted as \"other\""
                    .into(),
            );
        }
        if self.user_ttl.is_zero() {
            bad(
                "openwebui.user_ttl",
                "must be longer than 0, e.g. \"24h\"".into(),
            );
        }
        if self.db_reload_interval < Duration::from_secs(1) {
            bad(
                "openwebui.db_reload_interval",
                "must be at least \"1s\" (default \"60s\")".into(),
            );
        }
        if !is_header_name(&self.api_key_header) {
            bad(
                "openwebui.api_key_header",
                format!(
                    "{:?} is not an HTTP header name: use letters, digits and '-', e.g. \"x-api-key\"",
                    self.api_key_header
                ),
            );
        } else if ["authorization", "cookie"]
            .contains(&self.api_key_header.to_ascii_lowercase().as_str())
        {
            bad(
                "openwebui.api_key_header",
                "Authorization and Cookie are always examined: name the extra header Open WebUI's CUSTOM_API_KEY_HEADER uses (default \"x-api-key\")".into(),
            );
        }
        problems
    }
}

impl ServerConfig {
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key, message: String| problems.push(Problem { key, message });
        if self.max_connections == 0 {
            bad(
                "server.max_connections",
                "must be at least 1 (default 64): Prometheus, `top` and the healthcheck each hold one"
                    .into(),
            );
        }
        if self.header_read_timeout.is_zero() {
            bad(
                "server.header_read_timeout",
                "must be at least \"1s\" (default \"10s\")".into(),
            );
        }
        if self.idle_timeout.is_zero() {
            bad(
                "server.idle_timeout",
                "must be at least \"1s\" (default \"60s\")".into(),
            );
        }
        problems
    }

    /// The connection limits the server applies.
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

impl AuditConfig {
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key, message: String| problems.push(Problem { key, message });
        for entry in &self.trusted_proxies {
            if let Err(why) = parse_network(entry) {
                bad("audit.trusted_proxies", why);
            }
        }
        if self.output == AuditOutput::File {
            if self.path.as_os_str().is_empty() || self.path.file_name().is_none() {
                bad(
                    "audit.path",
                    format!(
                        "{:?} names no file: write e.g. \"/var/log/webui-monitor/audit.jsonl\"",
                        self.path
                    ),
                );
            }
            if self.max_file_bytes < 4096 {
                bad(
                    "audit.max_file_bytes",
                    format!(
                        "{} is less than 4096: rotation would leave room for a few events only (default 67108864)",
                        self.max_file_bytes
                    ),
                );
            }
        }
        if self.keep_files > 1000 {
            bad(
                "audit.keep_files",
                format!(
                    "{} is more than 1000 files: lower it (default 4)",
                    self.keep_files
                ),
            );
        }
        if self.max_queue == 0 {
            bad(
                "audit.max_queue",
                "must be at least 1 (default 10000); events beyond it are dropped and counted"
                    .into(),
            );
        }
        if self.max_users == 0 {
            bad(
                "audit.max_users",
                "must be at least 1 (default 1000)".into(),
            );
        }
        problems
    }
}

/// The kernel's page size (ring buffers are whole pages).
pub fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}

/// Linux `dev_valid_name`: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
fn check_interface_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > 15 {
        return Err("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("reserved name");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err("contains '/', ':' or whitespace");
    }
    Ok(())
}

/// A shell-style pattern over interface names: `glob`'s syntax, no character a name cannot
/// hold.
fn check_interface_pattern(pattern: &str) -> Result<(), String> {
    if pattern
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err("contains '/', ':' or whitespace".into());
    }
    glob::Pattern::new(pattern)
        .map(drop)
        .map_err(|e| e.msg.to_owned())
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn has_duplicates<T: Ord>(items: &[T]) -> bool {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort();
    sorted.windows(2).any(|w| w[0] == w[1])
}

impl PricingConfig {
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let c = &self.currency;
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(Problem {
                key: "pricing.currency",
                message: format!("{c:?} is not an ISO 4217 code: write e.g. \"USD\" or \"EUR\""),
            });
        }
        if self.litellm_file.is_some() && c != "USD" {
            problems.push(Problem {
                key: "pricing.litellm_file",
                message: format!(
                    "LiteLLM's prices are in USD but pricing.currency is {c:?}: set currency = \"USD\", or drop litellm_file and give every price in [pricing.models]"
                ),
            });
        }
        for (model, price) in &self.models {
            if !price.is_valid() {
                problems.push(Problem {
                    key: "pricing.models",
                    message: format!(
                        "model {model:?} has a negative or non-finite price: prices are per million tokens, 0 or more"
                    ),
                });
            }
        }
        for (alias, priced) in &self.aliases {
            if self.litellm_file.is_none() && !self.models.contains_key(priced) {
                problems.push(Problem {
                    key: "pricing.aliases",
                    message: format!(
                        "{alias:?} takes the prices of {priced:?}, which [pricing.models] does not price: add it there, or name a priced model"
                    ),
                });
            }
        }
        problems
    }
}
