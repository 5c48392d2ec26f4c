//! The configuration's command-line flags and the `config` subcommand.
//!
//! Each dedicated flag is declared once, in the table of [`config_args!`]: its field, its long
//! name, the key it sets and its help. The struct clap parses and the list of overrides
//! ([`ConfigArgs::given`]) are both generated from that table, so a flag cannot set a key other
//! than the one its help names. Every key also has `--set SECTION.KEY=VALUE` and an environment
//! variable derived from its name ([`super::layering::env_var`]).
use std::{net::SocketAddr, path::PathBuf};

use serde::Serialize;

use super::{LogFormat, LogLevel, TcAttachMode, XdpAttachMode};

/// A flag's value as the TOML value it sets, or `None` when the flag was not given.
trait FlagValue {
    fn given(&self) -> Option<toml::Value>;
}

impl<T: Serialize> FlagValue for Vec<T> {
    fn given(&self) -> Option<toml::Value> {
        if self.is_empty() {
            return None;
        }
        toml::Value::try_from(self).ok()
    }
}

impl<T: Serialize> FlagValue for Option<T> {
    fn given(&self) -> Option<toml::Value> {
        self.as_ref().and_then(|v| toml::Value::try_from(v).ok())
    }
}

impl FlagValue for bool {
    fn given(&self) -> Option<toml::Value> {
        self.then_some(toml::Value::Boolean(true))
    }
}

/// One flag given on the command line, as an override of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct GivenFlag {
    /// `section.key`
    pub key: &'static str,
    /// `--long-name`
    pub flag: &'static str,
    pub value: toml::Value,
}

macro_rules! config_args {
    ($($field:ident: $ty:ty, $long:literal => $key:literal, $help:literal $(, $extra:meta)*;)*) => {
        /// Flags shared by every subcommand that reads the configuration (`run`, `check`,
        /// `replay`, `config check`); flatten it with `#[command(flatten)]`.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct ConfigArgs {
            /// Configuration file [default: $WEBUI_MONITOR_CONFIG, else /etc/webui-monitor/config.toml]
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                #[arg(long = $long, $($extra,)* help = concat!($help, " [config: ", $key, "]"))]
                pub $field: $ty,
            )*
            /// Set any config key, e.g. `--set http.max_headers=64` (repeatable; highest precedence)
            #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
            pub set: Vec<String>,
        }

        impl ConfigArgs {
            /// The dedicated flags that were given, in declaration order.
            pub fn given(&self) -> Vec<GivenFlag> {
                let mut out = Vec::new();
                $(
                    if let Some(value) = FlagValue::given(&self.$field) {
                        out.push(GivenFlag { key: $key, flag: concat!("--", $long), value });
                    }
                )*
                out
            }

            /// The dedicated flag that sets `key`, if there is one.
            pub fn flag_for(key: &str) -> Option<&'static str> {
                [$(($key, concat!("--", $long))),*]
                    .into_iter()
                    .find_map(|(k, flag)| (k == key).then_some(flag))
            }
        }
    };
}

config_args! {
    interfaces: Vec<String>, "interface" => "capture.interfaces",
        "Interface to capture on (repeat for several)", value_name = "IFACE";
    ports: Vec<u16>, "port" => "capture.ports",
        "Open WebUI's TCP port (repeat for several)", value_name = "PORT";
    listen: Option<SocketAddr>, "listen" => "capture.listen",
        "Address of the /metrics endpoint", value_name = "ADDR";
    xdp_mode: Option<XdpAttachMode>, "xdp-mode" => "capture.xdp_mode",
        "How XDP is attached: auto (driver, else generic), driver or generic",
        value_enum, value_name = "MODE";
    tc_mode: Option<TcAttachMode>, "tc-mode" => "capture.tc_mode",
        "How the egress program is attached: auto (tcx, else classic TC), tcx or classic",
        value_enum, value_name = "MODE";
    webui_secret_file: Option<PathBuf>, "webui-secret-file" => "openwebui.webui_secret_file",
        "File holding Open WebUI's WEBUI_SECRET_KEY", value_name = "PATH";
    openwebui_db: Option<PathBuf>, "openwebui-db" => "openwebui.db",
        "Open WebUI's SQLite database, opened read-only", value_name = "PATH";
    max_users: Option<usize>, "max-users" => "openwebui.max_users",
        "Most distinct user label values", value_name = "N";
    personal_data: bool, "personal-data" => "openwebui.personal_data",
        "Serve user names, emails and roles";
    web_config_file: Option<PathBuf>, "web-config-file" => "server.web_config_file",
        "Web config file (exporter-toolkit format): TLS and basic auth of /metrics",
        value_name = "PATH";
    log_format: Option<LogFormat>, "log-format" => "log.format",
        "Log format", value_enum, value_name = "FORMAT";
    log_level: Option<LogLevel>, "log-level" => "log.level",
        "Log level", value_enum, value_name = "LEVEL";
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
                print!("{}", super::check_args(args)?);
                Ok(())
            }
        }
    }
}
