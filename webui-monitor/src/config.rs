//! Configuration: one file, `WEBUI_MONITOR_*` environment variables and command-line flags.
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
use std::{
    collections::BTreeMap,
    ffi::OsString,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use webui_monitor_core::{
    MonitorConfig, http::HttpLimits, openwebui::SemanticsConfig, pipeline::PipelineConfig,
    reassembly::ReassemblyLimits, secret::Secret, websocket::WebSocketLimits,
};

pub use crate::capture::{TcAttachMode, XdpAttachMode};

/// Where the daemon looks for its configuration file when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/webui-monitor/config.toml";
/// Prefix of every environment variable that overrides a config key.
pub const ENV_PREFIX: &str = "WEBUI_MONITOR_";
/// Environment variable naming the config file (below `--config`, above the default path).
pub const CONFIG_PATH_ENV: &str = "WEBUI_MONITOR_CONFIG";
/// Open WebUI's own variable for its JWT signing key; read as-is so both can share one unit
/// environment file.
pub const WEBUI_SECRET_ENV: &str = "WEBUI_SECRET_KEY";
/// Default `/metrics` address. 9741 lies in the Prometheus exporter range (9100–9999) and is
/// used by none of the well-known exporters; loopback because the series name users.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9741";
/// The kernel program's port map holds at most this many ports.
pub const MAX_PORTS: usize = 16;

/// The whole configuration. Every section and key is optional in the file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub capture: CaptureConfig,
    pub reassembly: ReassemblyLimits,
    pub http: HttpLimits,
    pub websocket: WebSocketLimits,
    pub openwebui: OpenWebUiConfig,
    pub log: LogConfig,
}

/// `[capture]`: what the kernel programs watch and how the daemon serves metrics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interfaces to attach to. On a host where the reverse proxy and Open WebUI share a
    /// machine the hop runs over `lo`.
    pub interfaces: Vec<String>,
    /// TCP server ports of Open WebUI (at most [`MAX_PORTS`]).
    pub ports: Vec<u16>,
    /// Address of the `/metrics` endpoint.
    pub listen: SocketAddr,
    /// XDP attach mode: `auto` tries driver mode and falls back to generic (logged).
    pub xdp_mode: XdpAttachMode,
    /// Egress attach mode: `auto` uses tcx and falls back to classic TC (clsact) on kernels
    /// without tcx (logged).
    pub tc_mode: TcAttachMode,
    /// Size of the BPF ring buffer carrying payload chunks to userspace (power of two, at least
    /// one page). Too small a ring shows up as `webui_monitor_capture_lost_total{reason="ring_full"}`.
    /// A record takes the smallest size class that holds its payload (64, 128, 256, 512, 1,024,
    /// 1,536 or 2,048 bytes, header included) plus 8 bytes of ring header.
    pub ring_bytes: u32,
    /// Entries of the kernel's per-connection LRU hash; the least recently used connection's
    /// counters are evicted beyond it.
    pub max_connections: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: vec!["lo".to_owned()],
            ports: vec![8080],
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a valid address"),
            xdp_mode: XdpAttachMode::Auto,
            tc_mode: TcAttachMode::Auto,
            ring_bytes: 16 << 20,
            max_connections: 65_536,
        }
    }
}

/// `[openwebui]`: how requests are attributed to Open WebUI users.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenWebUiConfig {
    /// File holding Open WebUI's `WEBUI_SECRET_KEY` (JWT signing key). Without a secret, JWTs are
    /// decoded but not verified (`auth` result `unverified`).
    pub webui_secret_file: Option<PathBuf>,
    /// Open WebUI's SQLite database (`webui.db`), opened read-only to resolve API keys to users
    /// and, with `personal_data`, to serve `openwebui_user_info`.
    pub db: Option<PathBuf>,
    /// How often the database is re-read (SIGHUP also re-reads it).
    #[serde(with = "duration")]
    pub db_reload_interval: Duration,
    /// Header Open WebUI accepts API keys in, besides `Authorization: Bearer sk-…`.
    pub api_key_header: String,
    /// Most distinct `user` label values; further users are counted as `other`.
    pub max_users: usize,
    /// Series of a user idle this long are dropped from /metrics.
    #[serde(with = "duration")]
    pub user_ttl: Duration,
    /// Serve names, emails and roles (`openwebui_user_info`). Off: users are pseudonymous ids.
    pub personal_data: bool,
}

impl Default for OpenWebUiConfig {
    fn default() -> Self {
        Self {
            webui_secret_file: None,
            db: None,
            db_reload_interval: Duration::from_secs(60),
            api_key_header: "x-api-key".to_owned(),
            max_users: 1_000,
            user_ttl: Duration::from_secs(24 * 3600),
            personal_data: false,
        }
    }
}

/// `[log]`: the daemon logs to stderr (the journal under systemd).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: LogLevel,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Most verbose level logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

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
fn json_log_line(ts: &str, level: log::Level, target: &str, msg: &str) -> String {
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

/// Flags shared by every subcommand that reads the configuration (`run`, `replay`,
/// `config check`); flatten it with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file [default: $WEBUI_MONITOR_CONFIG, else /etc/webui-monitor/config.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to capture on (repeat for several) [config: capture.interfaces]
    #[arg(long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Open WebUI's TCP port (repeat for several) [config: capture.ports]
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Address of the /metrics endpoint [config: capture.listen]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// How XDP is attached: auto (driver, else generic), driver or generic [config: capture.xdp_mode]
    #[arg(long, value_enum, value_name = "MODE")]
    pub xdp_mode: Option<XdpAttachMode>,
    /// How the egress program is attached: auto (tcx, else classic TC), tcx or classic [config: capture.tc_mode]
    #[arg(long, value_enum, value_name = "MODE")]
    pub tc_mode: Option<TcAttachMode>,
    /// File holding Open WebUI's WEBUI_SECRET_KEY [config: openwebui.webui_secret_file]
    #[arg(long, value_name = "PATH")]
    pub webui_secret_file: Option<PathBuf>,
    /// Open WebUI's SQLite database, opened read-only [config: openwebui.db]
    #[arg(long, value_name = "PATH")]
    pub openwebui_db: Option<PathBuf>,
    /// Most distinct user label values [config: openwebui.max_users]
    #[arg(long, value_name = "N")]
    pub max_users: Option<usize>,
    /// Serve user names, emails and roles [config: openwebui.personal_data]
    #[arg(long)]
    pub personal_data: bool,
    /// Log format [config: log.format]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log level [config: log.level]
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Set any config key, e.g. `--set http.max_headers=64` (repeatable; highest precedence)
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

/// `webui-monitor config …`: wire as `Config { #[command(subcommand)] command: ConfigCommand }`
/// and call [`ConfigCommand::run`].
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, environment, flags, secret) and print it, secret masked
    Check(ConfigArgs),
}

impl ConfigCommand {
    /// Prints the outcome on stdout; errors (with their fix) are returned for `main` to print.
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            Self::Check(args) => {
                print!("{}", check_args(args)?);
                Ok(())
            }
        }
    }
}

/// Everything that can go wrong while building the configuration. Each message names the
/// offending source and says how to fix it.
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
    #[error("{origin}: {message}")]
    Override { origin: String, message: String },
    #[error("invalid configuration:\n{}", display_problems(.0))]
    Invalid(Vec<Problem>),
    #[error("{0}")]
    Secret(String),
}

/// One semantic problem found by [`Config::validate`].
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

fn display_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The config file as read: its path and text (I/O stays in [`load`]).
#[derive(Debug, Clone, Copy)]
pub struct FileSource<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

/// A resolved configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Environment variables and flags applied, lowest precedence first (names only).
    pub overrides: Vec<String>,
}

/// Where the JWT signing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// No secret: JWTs are decoded but not verified.
    None,
    /// `WEBUI_SECRET_KEY` in the daemon's environment.
    Environment,
    /// `openwebui.webui_secret_file`.
    File(PathBuf),
}

/// A value given outside the file, not yet typed.
enum OverrideValue {
    /// Typed by a dedicated flag.
    Typed(toml::Value),
    /// From the environment or `--set`: typed by what the key accepts.
    Raw(String),
}

struct Override {
    section: String,
    key: String,
    value: OverrideValue,
    origin: String,
}

impl Config {
    /// Builds the configuration from the file (if any), `WEBUI_MONITOR_*` variables of `env`
    /// and the flags, in that order of increasing precedence, then validates it.
    pub fn resolve(
        file: Option<FileSource<'_>>,
        env: &[(String, String)],
        args: &ConfigArgs,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut table = match file {
            Some(file) => parse_file(file)?,
            None => toml::Table::new(),
        };
        let mut overrides = env_overrides(env)?;
        overrides.extend(flag_overrides(args)?);
        let mut origins = Vec::with_capacity(overrides.len());
        for o in overrides {
            apply(&mut table, &o)?;
            origins.push(o.origin);
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Override {
                    origin: "configuration".to_owned(),
                    message: e.message().to_owned(),
                })?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok((config, origins))
    }

    /// Semantic checks serde cannot express. Returns every problem, not just the first.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let mut bad = |key, message: String| problems.push(Problem { key, message });
        let c = &self.capture;
        if c.interfaces.is_empty() {
            bad(
                "capture.interfaces",
                "no interface given: name at least one, e.g. interfaces = [\"lo\"]".into(),
            );
        }
        for name in &c.interfaces {
            if let Err(why) = check_interface_name(name) {
                bad(
                    "capture.interfaces",
                    format!("{name:?} is not a valid interface name ({why}); see `ip -br link`"),
                );
            }
        }
        if has_duplicates(&c.interfaces) {
            bad(
                "capture.interfaces",
                "an interface is listed twice: list each once".into(),
            );
        }
        if c.ports.is_empty() {
            bad(
                "capture.ports",
                "no port given: name Open WebUI's port, e.g. ports = [8080]".into(),
            );
        }
        if c.ports.len() > MAX_PORTS {
            bad(
                "capture.ports",
                format!(
                    "{} ports given, the kernel program watches at most {MAX_PORTS}: remove some",
                    c.ports.len()
                ),
            );
        }
        if c.ports.contains(&0) {
            bad(
                "capture.ports",
                "port 0 cannot be monitored: use Open WebUI's listening port (8080 by default)"
                    .into(),
            );
        }
        if has_duplicates(&c.ports) {
            bad(
                "capture.ports",
                "a port is listed twice: list each once".into(),
            );
        }
        if c.listen.port() == 0 {
            bad(
                "capture.listen",
                "port 0 would pick a random port Prometheus cannot find: use a fixed port such as 9741".into(),
            );
        }
        if !c.ring_bytes.is_power_of_two() || c.ring_bytes < 4096 {
            bad(
                "capture.ring_bytes",
                format!(
                    "{} is not a power of two of at least 4096 (the kernel requires it): use e.g. {}",
                    c.ring_bytes,
                    c.ring_bytes
                        .max(4096)
                        .checked_next_power_of_two()
                        .unwrap_or(1 << 30)
                ),
            );
        }
        if c.max_connections == 0 {
            bad(
                "capture.max_connections",
                "must be at least 1 (default 65536)".into(),
            );
        }
        let o = &self.openwebui;
        if o.max_users == 0 {
            bad(
                "openwebui.max_users",
                "must be at least 1 (default 1000); users beyond it are counted as \"other\""
                    .into(),
            );
        }
        if o.user_ttl.is_zero() {
            bad(
                "openwebui.user_ttl",
                "must be longer than 0, e.g. \"24h\"".into(),
            );
        }
        if o.db_reload_interval < Duration::from_secs(1) {
            bad(
                "openwebui.db_reload_interval",
                "must be at least \"1s\" (default \"60s\")".into(),
            );
        }
        if !is_header_name(&o.api_key_header) {
            bad(
                "openwebui.api_key_header",
                format!(
                    "{:?} is not an HTTP header name: use letters, digits and '-', e.g. \"x-api-key\"",
                    o.api_key_header
                ),
            );
        } else if ["authorization", "cookie"]
            .contains(&o.api_key_header.to_ascii_lowercase().as_str())
        {
            bad(
                "openwebui.api_key_header",
                "Authorization and Cookie are always examined: name the extra header Open WebUI's CUSTOM_API_KEY_HEADER uses (default \"x-api-key\")".into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Where the JWT signing key comes from, given whether `WEBUI_SECRET_KEY` is set.
    pub fn secret_source(&self, env_has_secret: bool) -> Result<SecretSource, ConfigError> {
        match (&self.openwebui.webui_secret_file, env_has_secret) {
            (Some(_), true) => Err(ConfigError::Secret(format!(
                "the JWT secret is configured twice ({WEBUI_SECRET_ENV} in the environment and openwebui.webui_secret_file): keep one"
            ))),
            (Some(path), false) => Ok(SecretSource::File(path.clone())),
            (None, true) => Ok(SecretSource::Environment),
            (None, false) => Ok(SecretSource::None),
        }
    }

    /// Reads the JWT signing key from the daemon's environment or the secret file. A trailing
    /// newline in the file is not part of the key.
    pub fn load_webui_secret(&self) -> Result<Option<Secret>, ConfigError> {
        let env_secret = std::env::var_os(WEBUI_SECRET_ENV).filter(|v| !v.is_empty());
        match self.secret_source(env_secret.is_some())? {
            SecretSource::None => Ok(None),
            SecretSource::Environment => {
                let value = env_secret
                    .map(OsString::into_encoded_bytes)
                    .unwrap_or_default();
                Ok(Some(Secret::new(&value)))
            }
            SecretSource::File(path) => {
                let bytes = std::fs::read(&path).map_err(|e| {
                    ConfigError::Secret(format!(
                        "cannot read openwebui.webui_secret_file {}: {e} (the file must be readable by the daemon's user)",
                        path.display()
                    ))
                })?;
                let key = trim_line_end(&bytes);
                if key.is_empty() {
                    return Err(ConfigError::Secret(format!(
                        "openwebui.webui_secret_file {} is empty: write Open WebUI's WEBUI_SECRET_KEY into it",
                        path.display()
                    )));
                }
                Ok(Some(Secret::new(key)))
            }
        }
    }

    /// The monitor's settings: the `[reassembly]`, `[http]` and `[websocket]` caps, and the
    /// `[openwebui]` settings the semantics layer reads. The API-key header is an Open WebUI
    /// setting the HTTP engine needs to keep that header's value.
    pub fn monitor_config(&self) -> MonitorConfig {
        let openwebui = &self.openwebui;
        let mut http = self.http.clone();
        http.api_key_header = openwebui.api_key_header.clone();
        MonitorConfig {
            pipeline: PipelineConfig {
                reassembly: self.reassembly.clone(),
                http,
                websocket: self.websocket.clone(),
            },
            semantics: SemanticsConfig {
                max_users: openwebui.max_users,
                user_ttl_secs: openwebui.user_ttl.as_secs(),
                export_user_info: openwebui.personal_data,
                ..SemanticsConfig::default()
            },
        }
    }

    /// The effective configuration as commented TOML, secrets masked. `secret` describes the
    /// secret's source without its value.
    pub fn render(&self, loaded_from: &str, overrides: &[String], secret: &str) -> String {
        let mut out = String::new();
        out.push_str("# webui-monitor effective configuration\n");
        out.push_str(&format!(
            "# precedence: flags > environment > file > defaults\n# file: {loaded_from}\n"
        ));
        if overrides.is_empty() {
            out.push_str("# overrides: none\n");
        } else {
            out.push_str(&format!(
                "# overrides (lowest precedence first): {}\n",
                overrides.join(", ")
            ));
        }
        out.push_str(&format!("# JWT secret: {secret}\n\n"));
        out.push_str(&toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n")));
        out
    }
}

/// Reads the configuration the way the daemon does: file, process environment, `args`.
pub fn load(args: &ConfigArgs) -> Result<Loaded, ConfigError> {
    // Variables that are not UTF-8 cannot be configuration; they are not ours.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(args, &env)
}

/// [`load`] with an explicit environment (the file is still read from disk).
pub fn load_with_env(args: &ConfigArgs, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let env_path = env
        .iter()
        .find(|(k, _)| k == CONFIG_PATH_ENV)
        .map(|(_, v)| PathBuf::from(v));
    let (path, explicit) = match (&args.config, env_path) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(p)) => (p, true),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let file = text.as_deref().map(|text| FileSource { path: &path, text });
    let (config, overrides) = Config::resolve(file, env, args)?;
    Ok(Loaded {
        config,
        file: text.map(|_| path),
        overrides,
    })
}

/// `webui-monitor config check [--config FILE]`: validates the configuration the daemon would
/// run with (file, environment, secret) and returns it as TOML, secret masked.
pub fn check(path: Option<&Path>) -> anyhow::Result<String> {
    check_args(&ConfigArgs {
        config: path.map(Path::to_path_buf),
        ..ConfigArgs::default()
    })
}

/// [`check`] with every flag of [`ConfigArgs`].
pub fn check_args(args: &ConfigArgs) -> anyhow::Result<String> {
    let loaded = load(args)?;
    let config = &loaded.config;
    let secret = config.load_webui_secret()?;
    let env_has_secret = std::env::var_os(WEBUI_SECRET_ENV).is_some_and(|v| !v.is_empty());
    let secret_desc = match (config.secret_source(env_has_secret)?, &secret) {
        (SecretSource::None, _) | (_, None) => {
            "not configured (JWTs are decoded but not verified)".to_owned()
        }
        (SecretSource::Environment, Some(s)) => {
            format!(
                "from {WEBUI_SECRET_ENV}, {} bytes, value masked",
                s.expose().len()
            )
        }
        (SecretSource::File(p), Some(s)) => format!(
            "from {}, {} bytes, value masked",
            p.display(),
            s.expose().len()
        ),
    };
    let from = loaded.file.as_ref().map_or_else(
        || format!("none ({DEFAULT_CONFIG_PATH} absent, defaults used)"),
        |p| p.display().to_string(),
    );
    let mut out = config.render(&from, &loaded.overrides, &secret_desc);
    for warning in warnings(config) {
        out.push_str(&format!("# warning: {warning}\n"));
    }
    Ok(out)
}

/// Settings that are valid but probably not what the admin meant.
fn warnings(config: &Config) -> Vec<String> {
    let o = &config.openwebui;
    let mut out = Vec::new();
    if o.personal_data && o.db.is_none() {
        out.push("openwebui.personal_data is on but openwebui.db is not set: names and emails come from the database, so nothing is served".to_owned());
    }
    if let Some(db) = &o.db
        && !db.exists()
    {
        out.push(format!(
            "openwebui.db {} does not exist (yet): API keys stay unresolved until it does",
            db.display()
        ));
    }
    #[cfg(unix)]
    if let Some(path) = &o.webui_secret_file {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            out.push(format!(
                "{} is readable by every user: chmod 0640 (or 0600) it",
                path.display()
            ));
        }
    }
    if !config.capture.listen.ip().is_loopback() {
        out.push(format!(
            "/metrics listens on {}, reachable from the network: the series carry user ids; firewall the port to Prometheus",
            config.capture.listen
        ));
    }
    out
}

fn parse_file(file: FileSource<'_>) -> Result<toml::Table, ConfigError> {
    // Not `e.to_string()`: toml quotes the offending line, and a secret pasted into the file
    // by mistake (an unknown key) would then reach stderr and the journal.
    let err = |e: toml::de::Error| ConfigError::File {
        path: file.path.to_owned(),
        message: match e.span() {
            Some(span) => {
                let before = &file.text[..span.start.min(file.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |nl| nl + 1) + 1;
                format!("line {line}, column {column}: {}\n", e.message())
            }
            None => format!("{}\n", e.message()),
        },
    };
    // Deserializing the text (not just the table) gives line/column spans for unknown keys and
    // wrong types, which the merged table no longer has.
    toml::from_str::<Config>(file.text).map_err(err)?;
    toml::from_str::<toml::Table>(file.text).map_err(err)
}

const SECTIONS: [&str; 6] = [
    "capture",
    "reassembly",
    "http",
    "websocket",
    "openwebui",
    "log",
];

fn env_overrides(env: &[(String, String)]) -> Result<Vec<Override>, ConfigError> {
    // Sorted so the result does not depend on the process environment's order.
    let vars: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k != CONFIG_PATH_ENV)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::new();
    for (name, value) in vars {
        let rest = name[ENV_PREFIX.len()..].to_ascii_lowercase();
        let Some((section, key)) = rest
            .split_once('_')
            .filter(|(s, k)| SECTIONS.contains(s) && !k.is_empty())
        else {
            // The value is not echoed: someone may have put a secret in a misnamed variable.
            let hint = if rest.contains("secret") {
                format!(
                    "the JWT secret is read from {WEBUI_SECRET_ENV} or the file named by WEBUI_MONITOR_OPENWEBUI_WEBUI_SECRET_FILE"
                )
            } else {
                format!(
                    "variables are named {ENV_PREFIX}<SECTION>_<KEY> with SECTION one of {}; unset it or fix the name",
                    SECTIONS.join(", ")
                )
            };
            return Err(ConfigError::Override {
                origin: format!("environment variable {name}"),
                message: format!("not a configuration key: {hint}"),
            });
        };
        out.push(Override {
            section: section.to_owned(),
            key: key.to_owned(),
            value: OverrideValue::Raw(value.to_owned()),
            origin: name.to_owned(),
        });
    }
    Ok(out)
}

fn flag_overrides(args: &ConfigArgs) -> Result<Vec<Override>, ConfigError> {
    let mut out = Vec::new();
    let mut typed = |section: &str, key: &str, value: toml::Value, flag: &str| {
        out.push(Override {
            section: section.to_owned(),
            key: key.to_owned(),
            value: OverrideValue::Typed(value),
            origin: flag.to_owned(),
        })
    };
    let string = |s: &str| toml::Value::String(s.to_owned());
    let path = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned());
    if !args.interfaces.is_empty() {
        let list = args.interfaces.iter().map(|i| string(i)).collect();
        typed(
            "capture",
            "interfaces",
            toml::Value::Array(list),
            "--interface",
        );
    }
    if !args.ports.is_empty() {
        let list = args
            .ports
            .iter()
            .map(|&p| toml::Value::Integer(p.into()))
            .collect();
        typed("capture", "ports", toml::Value::Array(list), "--port");
    }
    if let Some(listen) = args.listen {
        typed("capture", "listen", string(&listen.to_string()), "--listen");
    }
    if let Some(mode) = args.xdp_mode {
        let v = toml::Value::try_from(mode).unwrap_or_else(|_| string("auto"));
        typed("capture", "xdp_mode", v, "--xdp-mode");
    }
    if let Some(mode) = args.tc_mode {
        let v = toml::Value::try_from(mode).unwrap_or_else(|_| string("auto"));
        typed("capture", "tc_mode", v, "--tc-mode");
    }
    if let Some(p) = &args.webui_secret_file {
        typed(
            "openwebui",
            "webui_secret_file",
            path(p),
            "--webui-secret-file",
        );
    }
    if let Some(p) = &args.openwebui_db {
        typed("openwebui", "db", path(p), "--openwebui-db");
    }
    if let Some(n) = args.max_users {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        typed(
            "openwebui",
            "max_users",
            toml::Value::Integer(n),
            "--max-users",
        );
    }
    if args.personal_data {
        typed(
            "openwebui",
            "personal_data",
            toml::Value::Boolean(true),
            "--personal-data",
        );
    }
    if let Some(f) = args.log_format {
        let v = toml::Value::try_from(f).unwrap_or_else(|_| string("human"));
        typed("log", "format", v, "--log-format");
    }
    if let Some(l) = args.log_level {
        let v = toml::Value::try_from(l).unwrap_or_else(|_| string("info"));
        typed("log", "level", v, "--log-level");
    }
    for set in &args.set {
        // Errors name the key, never the value: a misplaced secret must not be echoed.
        let (name, value) = set.split_once('=').ok_or_else(|| ConfigError::Override {
            origin: "--set".to_owned(),
            message: "expected SECTION.KEY=VALUE, e.g. --set http.max_headers=64".into(),
        })?;
        let bad = |message: String| ConfigError::Override {
            origin: format!("--set {name}"),
            message,
        };
        let (section, key) = name
            .trim()
            .split_once('.')
            .filter(|(s, k)| SECTIONS.contains(s) && !k.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "{name:?} is not SECTION.KEY with SECTION one of {}",
                    SECTIONS.join(", ")
                ))
            })?;
        out.push(Override {
            section: section.to_owned(),
            key: key.to_owned(),
            value: OverrideValue::Raw(value.to_owned()),
            origin: format!("--set {name}"),
        });
    }
    Ok(out)
}

/// Sets `section.key` in `table` to the first reading of the override's value that the
/// configuration accepts; reports the most telling error when none does.
fn apply(table: &mut toml::Table, o: &Override) -> Result<(), ConfigError> {
    let candidates = match &o.value {
        OverrideValue::Typed(v) => vec![v.clone()],
        OverrideValue::Raw(raw) => raw_candidates(raw),
    };
    // The error worth showing is the one of the reading whose shape (list or scalar) fits the
    // key: "expected u16" beats "expected a sequence" for `ports=http`. The shape is known from
    // the defaults where they serialize; otherwise guessed from the error text.
    let wants_list = expects_list(&o.section, &o.key);
    let mut shown: Option<String> = None;
    let mut last_error = String::new();
    for value in &candidates {
        let mut trial = table.clone();
        let section = trial
            .entry(o.section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            return Err(ConfigError::Override {
                origin: o.origin.clone(),
                message: format!("[{}] in the config file is not a table", o.section),
            });
        };
        section.insert(o.key.clone(), value.clone());
        match toml::Value::Table(trial.clone()).try_into::<Config>() {
            Ok(_) => {
                *table = trial;
                return Ok(());
            }
            Err(e) => {
                let message = e.message().trim_end().to_owned();
                let fits = match wants_list {
                    Some(list) => list == value.is_array(),
                    None => {
                        !(message.contains("invalid type: sequence")
                            || message.contains("expected a sequence"))
                    }
                };
                if fits && shown.is_none() {
                    shown = Some(message.clone());
                }
                last_error = message;
            }
        }
    }
    let last_error = shown.unwrap_or(last_error);
    Err(ConfigError::Override {
        origin: o.origin.clone(),
        message: format!(
            "{} (for {}.{}; see deploy/config.toml for the accepted values)",
            last_error, o.section, o.key
        ),
    })
}

/// Whether `section.key` takes a list, when its default says so.
fn expects_list(section: &str, key: &str) -> Option<bool> {
    let defaults = toml::Table::try_from(Config::default()).ok()?;
    Some(defaults.get(section)?.get(key)?.is_array())
}

/// Readings of an untyped value, most specific first: a TOML value, a comma-separated list of
/// TOML values or strings, a plain string.
fn raw_candidates(raw: &str) -> Vec<toml::Value> {
    let literal = |s: &str| -> Option<toml::Value> {
        let mut t: toml::Table = toml::from_str(&format!("v = {s}")).ok()?;
        t.remove("v")
    };
    let mut out = Vec::with_capacity(3);
    if let Some(v) = literal(raw) {
        out.push(v);
    }
    let items: Vec<toml::Value> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| literal(s).unwrap_or_else(|| toml::Value::String(s.to_owned())))
        .collect();
    out.push(toml::Value::Array(items));
    out.push(toml::Value::String(raw.to_owned()));
    out
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

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Parses durations written like Prometheus': `"90s"`, `"15m"`, `"24h"`, `"7d"`, `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let err =
        || format!("{text:?} is not a duration: write e.g. \"30s\", \"15m\", \"24h\" or \"7d\"");
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(err)?;
    }
    Ok(Duration::from_secs(total))
}

/// Formats whole seconds back into the largest exact units: 5400 s → `"1h30m"`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, name) in [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")] {
        if secs >= unit {
            out.push_str(&format!("{}{name}", secs / unit));
            secs %= unit;
        }
    }
    out
}

/// `#[serde(with = "duration")]` for [`Duration`] fields written as strings.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
