//! [`ConfigError`]: everything that can go wrong while building the configuration.
use std::{fmt, path::PathBuf};

use super::{CONFIG_PATH_ENV, WEBUI_SECRET_ENV};

/// Everything that can go wrong while building the configuration. Each message names the
/// offending source and says how to fix it; none quotes a value (it may be a secret typed into
/// the wrong place).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config file {path}: {source} (create it from /usr/share/doc/webui-monitor/config.toml, or name another file with --config / {CONFIG_PATH_ENV})"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "config file {path}: {message}(every key is documented in /usr/share/doc/webui-monitor/config.toml)"
    )]
    File { path: PathBuf, message: String },
    /// An environment variable or flag that names no key, or whose value the key does not take.
    #[error("{origin}: {message}")]
    Override { origin: String, message: String },
    #[error("invalid configuration:\n{}", display_problems(.0))]
    Invalid(Vec<Problem>),
    #[error(
        "the JWT secret is configured twice ({WEBUI_SECRET_ENV} in the environment and openwebui.webui_secret_file): keep one"
    )]
    SecretTwice,
    #[error(
        "cannot read openwebui.webui_secret_file {}: {source} (the file must be readable by the daemon's user)",
        path.display()
    )]
    SecretRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "openwebui.webui_secret_file {} is empty: write Open WebUI's WEBUI_SECRET_KEY into it",
        path.display()
    )]
    SecretEmpty { path: PathBuf },
    #[error(
        "cannot read pricing.litellm_file {}: {source} (download model_prices_and_context_window.json from LiteLLM's repository, or drop the key)",
        path.display()
    )]
    PricingRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pricing.litellm_file {}: {source}", path.display())]
    Pricing {
        path: PathBuf,
        source: webui_monitor_core::pricing::PricingError,
    },
    #[error(
        "pricing.aliases: {alias:?} takes the prices of {priced:?}, which neither [pricing.models] nor pricing.litellm_file prices: name a priced model"
    )]
    AliasUnpriced { alias: String, priced: String },
}

/// One semantic problem found by [`super::Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `section.key`
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Problems one per line, indented, for an error message.
pub fn display_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
