//! `webui-monitor config check`: the effective configuration as commented TOML, the secret
//! masked, followed by warnings about valid settings that are probably not what was meant.
use std::path::Path;

use super::{
    Config, ConfigArgs, DEFAULT_CONFIG_PATH, SecretSource, WEBUI_SECRET_ENV, layering::load,
};

impl Config {
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
    if let Some(web_config) = &config.server.web_config_file {
        crate::server::WebConfig::load(web_config)?;
    }
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
    if !config.capture.listen.ip().is_loopback() && config.server.web_config_file.is_none() {
        out.push(format!(
            "/metrics listens on {}, reachable from the network: the series carry user ids; firewall the port to Prometheus, or serve TLS with basic auth (server.web_config_file)",
            config.capture.listen
        ));
    }
    out
}
