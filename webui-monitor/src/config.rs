//! Configuration: one file, `WEBUI_MONITOR_*` environment variables and command-line flags.
//!
//! # Where each part lives
//!
//! * [`schema`]: the sections and keys, their types, defaults and documentation — the one
//!   definition of every setting (the capture module loads its programs from
//!   [`CaptureConfig`] too).
//! * [`layering`]: file → environment → flags into one table, typed by serde.
//! * [`validate`]: the checks serde cannot express, for every caller.
//! * [`args`]: the flags, each declared once with the key it sets; `config check` ([`check`]).
//! * [`reload`]: which settings SIGHUP applies and which wait for a restart.
//! * [`secret`]: the JWT signing key; `pricing`: the price table (reads the LiteLLM map);
//!   [`logging`]: the logger; [`error`]: [`ConfigError`].
//!
//! # Precedence
//!
//! **flags > environment > file > built-in defaults**, key by key. A key set nowhere keeps its
//! default; a key set in several places takes the value of the highest one. Lists (interfaces,
//! ports) are replaced, never merged, so `--port 3000` means "port 3000 only".
//!
//! * File: `--config FILE`, else `$WEBUI_MONITOR_CONFIG`, else [`DEFAULT_CONFIG_PATH`]. A file
//!   named explicitly must exist; the default file may be absent (defaults then apply).
//! * Environment: `WEBUI_MONITOR_<SECTION>_<KEY>`, e.g. `WEBUI_MONITOR_CAPTURE_PORTS=8080,8081`
//!   or `WEBUI_MONITOR_LOG_FORMAT=json`. Section names contain no `_`, so the first `_` after the
//!   prefix separates section and key. A value is read as a TOML value if it is one (`8080`,
//!   `true`, `["lo"]`), else as a comma-separated list, else as a plain string — whichever the key
//!   accepts first. Unknown `WEBUI_MONITOR_*` variables are errors, like unknown keys in the file,
//!   so a typo never silently leaves a default in place.
//! * Flags: the dedicated flags of [`ConfigArgs`] and `--set SECTION.KEY=VALUE` for any key.
//!
//! # Secrets
//!
//! The only secret is Open WebUI's JWT signing key. It never comes from a command-line value
//! (`ps` and `/proc/PID/cmdline` show those to every user) nor from the config file (a conffile
//! readable by all): it comes from `WEBUI_SECRET_KEY` in the environment — the variable Open WebUI
//! itself reads — or from the file named by `openwebui.webui_secret_file`. Configuring both is an
//! error rather than a silent choice. [`check`] prints the effective configuration with the
//! secret masked.
pub mod args;
mod check;
pub mod error;
pub mod layering;
mod logging;
mod pricing;
pub mod reload;
pub mod schema;
pub mod secret;
pub mod validate;

pub use args::{ConfigArgs, ConfigCommand};
pub use check::{check, check_args};
pub use error::{ConfigError, Problem};
pub use layering::{FileSource, Loaded, load, load_with_env};
pub use schema::{
    AuditConfig, AuditOutput, CaptureConfig, Config, DEFAULT_LISTEN, LogConfig, LogFormat,
    LogLevel, MAX_PORTS, OpenWebUiConfig, PricingConfig, ServerConfig, TcAttachMode, XdpAttachMode,
    format_duration, parse_duration,
};
pub use secret::SecretSource;

/// Where the daemon looks for its configuration file when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/webui-monitor/config.toml";
/// Prefix of every environment variable that overrides a config key.
pub const ENV_PREFIX: &str = "WEBUI_MONITOR_";
/// Environment variable naming the config file (below `--config`, above the default path).
pub const CONFIG_PATH_ENV: &str = "WEBUI_MONITOR_CONFIG";
/// Open WebUI's own variable for its JWT signing key; read as-is so both can share one unit
/// environment file.
pub const WEBUI_SECRET_ENV: &str = "WEBUI_SECRET_KEY";

#[cfg(test)]
use {
    layering::raw_candidates,
    logging::json_log_line,
    std::{
        path::{Path, PathBuf},
        time::Duration,
    },
};

#[cfg(test)]
mod tests;
