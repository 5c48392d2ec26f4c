//! Which settings a running daemon takes on SIGHUP, and which wait for a restart.
//!
//! Everything the daemon can change in place is applied: the JWT secret, `[openwebui]`, the
//! `[http]`, `[websocket]` and `[reassembly]` caps, the prices (LiteLLM file re-read), the log
//! level, the interface list, the metrics endpoint's web config file (re-read on every
//! SIGHUP), and `[audit]`'s switch, trusted proxies and caps.
//! [`RESTART`] lists the rest, each with the reason it cannot change while running; those keep
//! their running values ([`running_values`]) until the next start.
use std::collections::BTreeMap;

use super::Config;

/// Settings that need a restart, and why.
pub const RESTART: &[(&str, &str)] = &[
    (
        "capture.ports",
        "the port list is written into the kernel programs when they load",
    ),
    (
        "capture.ring_bytes",
        "the ring buffer is sized when the kernel programs load",
    ),
    (
        "capture.max_connections",
        "the kernel's connection table is sized when the programs load",
    ),
    (
        "capture.skip_min_bytes",
        "whether the kernel programs consult the skip map is written into them when they load",
    ),
    (
        "capture.xdp_mode",
        "attached programs keep the mode they were attached with",
    ),
    (
        "capture.tc_mode",
        "attached programs keep the mode they were attached with",
    ),
    ("capture.listen", "the metrics socket is bound at start"),
    (
        "server.max_connections",
        "the metrics server takes its limits at start",
    ),
    (
        "server.header_read_timeout",
        "the metrics server takes its limits at start",
    ),
    (
        "server.idle_timeout",
        "the metrics server takes its limits at start",
    ),
    (
        "reassembly.max_connections",
        "the connection table is allocated at start",
    ),
    (
        "reassembly.max_closed_connections",
        "the closed-connection table is allocated at start",
    ),
    (
        "pricing.currency",
        "the currency is named in the spend metric's help, written when it is registered",
    ),
    (
        "log.format",
        "the log format is chosen when the logger starts",
    ),
    ("audit.output", "the audit output is opened at start"),
    ("audit.path", "the audit file is opened at start"),
    (
        "audit.max_file_bytes",
        "the audit file's rotation is set up at start",
    ),
    (
        "audit.keep_files",
        "the audit file's rotation is set up at start",
    ),
];

/// What differs between the running configuration and the one re-read, by `section.key`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Settings that take effect now.
    pub applied: Vec<String>,
    /// Settings that keep their running value until a restart, with the reason.
    pub restart: Vec<(String, &'static str)>,
}

impl Changes {
    /// The settings that differ between `running` and `new`, sorted by key. Names only: the
    /// values may be secret (a path is not, but the rule is simpler without exceptions).
    pub fn between(running: &Config, new: &Config) -> Self {
        let (old, new) = (flatten(running), flatten(new));
        let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut changes = Self::default();
        for key in keys {
            if old.get(key) == new.get(key) {
                continue;
            }
            match RESTART.iter().find(|(k, _)| k == key) {
                Some((_, why)) => changes.restart.push((key.clone(), why)),
                None => changes.applied.push(key.clone()),
            }
        }
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.restart.is_empty()
    }
}

/// `new` with every [`RESTART`] setting put back to its value in `running`.
pub fn running_values(running: &Config, new: &Config) -> Config {
    let (Ok(running_table), Ok(mut table)) = (
        toml::Table::try_from(running),
        toml::Table::try_from(new.clone()),
    ) else {
        return running.clone();
    };
    for (key, _) in RESTART {
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        let value = running_table
            .get(section)
            .and_then(|s| s.get(name))
            .cloned();
        if let Some(section) = table.get_mut(section).and_then(toml::Value::as_table_mut) {
            match value {
                Some(value) => section.insert(name.to_owned(), value),
                None => section.remove(name),
            };
        }
    }
    toml::Value::Table(table)
        .try_into()
        .unwrap_or_else(|_| running.clone())
}

/// Every key of `config` as `section.key` (nested tables joined with `.`) → its value.
fn flatten(config: &Config) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value.as_table() {
                Some(nested) => walk(&name, nested, out),
                None => {
                    out.insert(name, value.clone());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(table) = toml::Table::try_from(config) {
        walk("", &table, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_named_and_split_by_whether_they_apply_now() {
        let running = Config::default();
        let mut new = Config::default();
        new.openwebui.personal_data = true;
        new.openwebui.webui_secret_file = Some("/run/secret".into());
        new.http.max_headers = 64;
        new.log.level = super::super::LogLevel::Debug;
        new.capture.interfaces = vec!["veth*".into()];
        new.capture.ring_bytes = 1 << 20;
        new.log.format = super::super::LogFormat::Json;
        let changes = Changes::between(&running, &new);
        assert_eq!(
            changes.applied,
            [
                "capture.interfaces",
                "http.max_headers",
                "log.level",
                "openwebui.personal_data",
                "openwebui.webui_secret_file",
            ]
        );
        let restart: Vec<&str> = changes.restart.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(restart, ["capture.ring_bytes", "log.format"]);
        assert!(Changes::between(&running, &running).is_empty());

        let effective = running_values(&running, &new);
        assert_eq!(effective.capture.ring_bytes, running.capture.ring_bytes);
        assert_eq!(effective.log.format, running.log.format);
        assert_eq!(effective.http.max_headers, 64);
        assert_eq!(effective.capture.interfaces, ["veth*"]);
        assert!(effective.openwebui.personal_data);
    }

    #[test]
    fn every_restart_setting_is_a_real_key() {
        let keys = flatten(&Config::default());
        // Keys without a default value are absent from the defaults' table.
        let optional = ["server.web_config_file"];
        for (key, _) in RESTART {
            assert!(keys.contains_key(*key) || optional.contains(key), "{key}");
        }
    }
}
