//! Open WebUI's JWT signing key: from `WEBUI_SECRET_KEY` or `openwebui.webui_secret_file`,
//! never from a flag value or the config file itself.
use std::{ffi::OsString, path::PathBuf};

use webui_monitor_core::secret::Secret;

use super::{Config, ConfigError, WEBUI_SECRET_ENV};

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

impl Config {
    /// Where the JWT signing key comes from, given whether `WEBUI_SECRET_KEY` is set.
    pub fn secret_source(&self, env_has_secret: bool) -> Result<SecretSource, ConfigError> {
        match (&self.openwebui.webui_secret_file, env_has_secret) {
            (Some(_), true) => Err(ConfigError::SecretTwice),
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
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(source) => return Err(ConfigError::SecretRead { path, source }),
                };
                let key = trim_line_end(&bytes);
                if key.is_empty() {
                    return Err(ConfigError::SecretEmpty { path });
                }
                Ok(Some(Secret::new(key)))
            }
        }
    }
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}
