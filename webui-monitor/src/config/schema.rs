//! The settings: one struct per section, each key with its type, its default and its
//! documentation. Layering ([`super::layering`]) fills them; validation ([`super::validate`])
//! checks what serde cannot.
use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use webui_monitor_core::{
    MonitorConfig, http::HttpLimits, memory::MemoryLimits, openwebui::SemanticsConfig,
    pipeline::PipelineConfig, pricing::ModelPrice, reassembly::ReassemblyLimits,
    websocket::WebSocketLimits,
};

/// Default `/metrics` address. 9741 lies in the Prometheus exporter range (9100–9999) and is
/// used by none of the well-known exporters; loopback because the series name users.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9741";
/// The kernel program's port map holds at most this many ports.
pub const MAX_PORTS: usize = webui_monitor_common::MAX_PORTS;

/// The whole configuration. Every section and key is optional in the file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub capture: CaptureConfig,
    pub reassembly: ReassemblyLimits,
    pub http: HttpLimits,
    pub websocket: WebSocketLimits,
    pub memory: MemoryLimits,
    pub openwebui: OpenWebUiConfig,
    pub pricing: PricingConfig,
    pub log: LogConfig,
    pub server: ServerConfig,
    pub audit: AuditConfig,
}

/// `[capture]`: what the kernel programs watch and how the daemon serves metrics. The capture
/// module loads its programs from this same struct.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interfaces to attach to: names (`eth0`) and shell-style patterns (`veth*`, `br-*`,
    /// `cali?*`). Interfaces that appear later and match are attached, those that go are
    /// forgotten. On a host where the reverse proxy and Open WebUI share a machine the hop runs
    /// over `lo`.
    pub interfaces: Vec<String>,
    /// Most interfaces attached at once; a further match is refused and counted
    /// (`webui_monitor_capture_interface_attach_failures_total{reason="limit"}`). Bounds the
    /// `interface` label of `webui_monitor_capture_interface_attached`.
    pub max_interfaces: usize,
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
    /// 1,536 or 2,048 bytes, header included) plus 8 bytes of ring header. The default, 16 MiB,
    /// is slack for about 10,800 full-MTU segments (1,544 bytes of ring each), 250 loopback
    /// 64 KB segments, or 120,000 small ones such as 60-byte WebSocket frames.
    pub ring_bytes: u32,
    /// Entries of the kernel's per-connection LRU hash; the least recently used connection's
    /// counters are evicted beyond it. The table of skip ranges (`skip_min_bytes`) has as
    /// many entries.
    pub max_connections: u32,
    /// The rest of a body that nothing reads (static assets, media, uploads, bodies of routes
    /// whose fields are not used) is not copied to userspace once at least this many of its
    /// bytes remain and its length is known (`Content-Length`): the daemon writes one entry
    /// per such body into a kernel map, and the kernel counts those bytes
    /// (`webui_monitor_capture_skipped_bytes_total`) without copying them. Smaller bodies cost
    /// less to copy than the map write. No metric depends on these bytes. 0 (the default)
    /// turns it off, and the kernel programs then carry no code for it: with it on, they take
    /// about two fifths more of the verifier's budget (see `docs/kernels.md`).
    pub skip_min_bytes: u64,
    /// How often the kernel counters are mirrored into the metrics (1 s; not a file key).
    #[serde(skip)]
    pub stats_interval: Duration,
    /// How often the connection table is scanned for the active-connection gauge, a syscall
    /// per entry, so less often (15 s; not a file key).
    #[serde(skip)]
    pub active_scan_interval: Duration,
    /// A connection without packets for this long is no longer active (10 min; not a file key).
    #[serde(skip)]
    pub idle_timeout: Duration,
    /// How often the ring is read when the kernel has not woken the reader; it does once
    /// [`crate::capture::loader::WAKEUP_FRACTION`] of the ring is unread (10 ms; not a file key).
    #[serde(skip)]
    pub drain_interval: Duration,
    /// The longest wait between reads of an idle ring: each read that finds nothing doubles
    /// the wait from `drain_interval` up to this, and a read that finds records resets it.
    /// An idle daemon then wakes once a second instead of 100 times; the first records after
    /// a pause reach the metrics up to this late (their timestamps are the kernel's, so no
    /// measured time changes), and a burst still wakes the reader at once (1 s; not a file key).
    #[serde(skip)]
    pub idle_drain_interval: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: vec!["lo".to_owned()],
            max_interfaces: 64,
            ports: vec![8080],
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a valid address"),
            xdp_mode: XdpAttachMode::Auto,
            tc_mode: TcAttachMode::Auto,
            ring_bytes: 16 << 20,
            max_connections: 65_536,
            skip_min_bytes: 0,
            stats_interval: Duration::from_secs(1),
            active_scan_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(600),
            drain_interval: Duration::from_millis(10),
            idle_drain_interval: Duration::from_secs(1),
        }
    }
}

/// Whether a `capture.interfaces` entry is a pattern rather than a name: it holds one of
/// `*`, `?` or `[`, none of which `ip link` accepts in a name.
pub fn is_interface_pattern(entry: &str) -> bool {
    entry.contains(['*', '?', '['])
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    /// Driver (native) mode, falling back to generic mode (with a log line) if the driver has
    /// no XDP support.
    #[default]
    Auto,
    /// Driver mode only; attaching fails if unsupported.
    Driver,
    /// Generic (skb) mode only.
    Generic,
}

/// How the egress (TC) program is attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TcAttachMode {
    /// tcx where the kernel has it (6.6 and later), else classic TC (with a log line).
    #[default]
    Auto,
    /// tcx only; attaching fails on kernels without it.
    Tcx,
    /// A `cls_bpf` filter under a `clsact` qdisc, on any kernel: for setups whose other TC
    /// programs expect the classic hook.
    Classic,
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

/// `[server]`: how the metrics endpoint (at `capture.listen`) holds against its clients, and
/// its TLS and basic auth.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Web configuration file in the Prometheus exporter-toolkit format
    /// (`tls_server_config`, `basic_auth_users`); none: plain HTTP without authentication.
    /// Re-read on SIGHUP.
    pub web_config_file: Option<PathBuf>,
    /// Most connections open at once; further ones are closed at once and counted
    /// (`webui_monitor_http_server_connections_rejected_total{reason="limit"}`).
    pub max_connections: usize,
    /// Time a client has for a TLS handshake and for each request's header block, and the
    /// longest a kept-alive connection may wait for its next request.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            web_config_file: None,
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// `[audit]`: the audit trail of scripted session-credential use — one JSON line per model
/// call Open WebUI served to a session JWT or cookie from a client that does not behave like the
/// web UI (`webui_monitor_core::audit`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Record the events and serve the latest per user
    /// (`openwebui_scripted_session_last_timestamp_seconds`).
    pub enabled: bool,
    /// Where the JSON lines go.
    pub output: AuditOutput,
    /// The file of `output = "file"`.
    pub path: PathBuf,
    /// Size at which the file is rotated (`path` → `path.1` → … → `path.<keep_files>`).
    pub max_file_bytes: u64,
    /// Rotated files kept; at most `(keep_files + 1) × max_file_bytes` bytes on disk.
    pub keep_files: u32,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` and `X-Real-IP` are
    /// believed for the client address; from any other peer the peer address is the client's.
    pub trusted_proxies: Vec<String>,
    /// Most events waiting to be written; further ones are dropped and counted
    /// (`webui_monitor_audit_limit_hits_total{limit="max_queue"}`).
    pub max_queue: usize,
    /// Longest user agent kept in an event, in bytes.
    pub max_user_agent_len: usize,
    /// Most users with a `openwebui_scripted_session_*` series.
    pub max_users: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let core = webui_monitor_core::audit::AuditConfig::default();
        Self {
            enabled: core.enabled,
            output: AuditOutput::None,
            path: PathBuf::from("/var/log/webui-monitor/audit.jsonl"),
            max_file_bytes: 64 << 20,
            keep_files: 4,
            trusted_proxies: Vec::new(),
            max_queue: core.max_queue,
            max_user_agent_len: core.max_user_agent_len,
            max_users: core.max_users,
        }
    }
}

/// `[pricing]`: what tokens cost, for `openwebui_llm_spend_total`. Prices are per million
/// tokens in `currency`; a model is priced by `[pricing.models]`, else by the LiteLLM map,
/// else through `[pricing.aliases]`; a model priced nowhere is counted in
/// `openwebui_llm_unpriced_tokens_total`, never guessed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    /// ISO 4217 code of every price (three capital letters), named in the spend metric's help.
    pub currency: String,
    /// LiteLLM's `model_prices_and_context_window.json` (USD per token; `currency` must be
    /// `USD`), read at start and on SIGHUP.
    pub litellm_file: Option<PathBuf>,
    /// Prices per model name (the `model` label), per million tokens: `input`, `output`, and
    /// optionally `cached_input`, `cache_write_input` (default: `input`) and `reasoning`
    /// (default: `output`). They win over the LiteLLM map.
    pub models: BTreeMap<String, ModelPrice>,
    /// Model name → the priced model whose prices it takes (an Open WebUI model id that wraps
    /// a provider's model).
    pub aliases: BTreeMap<String, String>,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            currency: "USD".to_owned(),
            litellm_file: None,
            models: BTreeMap::new(),
            aliases: BTreeMap::new(),
        }
    }
}

/// Where audit events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutput {
    /// JSON lines appended to `audit.path`, rotated by size.
    File,
    /// The systemd journal, one entry per event (`SYSLOG_IDENTIFIER=webui-monitor-audit`,
    /// the JSON line as `MESSAGE`).
    Journal,
    /// Not written: the metrics still show the latest event per user.
    #[default]
    None,
}

impl AuditConfig {
    /// The trusted proxies as networks (a bare address is a /32 or /128). Entries that do not
    /// parse are reported by validation and left out here.
    pub fn trusted_networks(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|entry| parse_network(entry).ok())
            .collect()
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address.
pub fn parse_network(entry: &str) -> Result<ipnet::IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<ipnet::IpNet>()
        .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!(
                "{entry:?} is not an address or network: write e.g. \"10.0.0.1\", \"10.0.0.0/8\" or \"fd00::/64\""
            )
        })
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

impl Config {
    /// The monitor's settings: the `[reassembly]`, `[http]` and `[websocket]` caps, the
    /// `[openwebui]` settings the semantics layer reads, the `[pricing]` table (whose LiteLLM
    /// file is read here) and the `[audit]` sink's. The API-key header is an Open WebUI
    /// setting the HTTP engine needs to keep that header's value.
    pub fn monitor_config(&self) -> Result<MonitorConfig, super::ConfigError> {
        let openwebui = &self.openwebui;
        let mut http = self.http.clone();
        http.api_key_header = openwebui.api_key_header.clone();
        Ok(MonitorConfig {
            pipeline: PipelineConfig {
                reassembly: self.reassembly.clone(),
                http,
                websocket: self.websocket.clone(),
                memory: self.memory.clone(),
            },
            semantics: SemanticsConfig {
                max_users: openwebui.max_users,
                user_ttl_secs: openwebui.user_ttl.as_secs(),
                export_user_info: openwebui.personal_data,
                ..SemanticsConfig::default()
            },
            prices: std::sync::Arc::new(self.pricing.load()?),
            audit: webui_monitor_core::audit::AuditConfig {
                enabled: self.audit.enabled,
                trusted_proxies: self.audit.trusted_networks(),
                max_queue: self.audit.max_queue,
                max_user_agent_len: self.audit.max_user_agent_len,
                max_users: self.audit.max_users,
            },
            skip_unread_bodies_from: (self.capture.skip_min_bytes > 0)
                .then_some(self.capture.skip_min_bytes),
        })
    }
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
