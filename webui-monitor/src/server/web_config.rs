//! The web configuration file: TLS and basic authentication for the metrics endpoint, in the
//! format of Prometheus' exporter-toolkit (`--web.config.file` of node_exporter and the other
//! official exporters), so one file and one habit serve every exporter on a host:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # PEM, leaf first, then intermediates
//!   key_file: server.key           # PEM (PKCS#8, PKCS#1 or SEC1)
//!   client_auth_type: RequireAndVerifyClientCert   # optional, default NoClientCert
//!   client_ca_file: clients-ca.crt # required by the two Verify… policies
//!   min_version: TLS12             # optional: TLS12 (default) or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$…           # bcrypt hash of the password
//! ```
//!
//! Relative paths are relative to the directory of the web configuration file, as in
//! exporter-toolkit. Keys exporter-toolkit has and this reader does not (`cipher_suites`,
//! `curve_preferences`, `max_version`, `client_allowed_sans`, `http_server_config`, inline
//! `cert`/`key`) are refused by name rather than ignored, so a file written for another exporter
//! never silently serves weaker settings than it says.
//!
//! Reading ([`WebConfig::load`]) checks everything that can be checked before serving: the
//! files exist and parse, the key matches the certificate, every hash is a bcrypt hash.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use serde::Deserialize;

/// Why a web configuration file cannot be used. Messages name the file and key and say what to
/// do; none holds a password hash or key material.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read the web config file {path}: {source}; check server.web_config_file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "web config file {path}: {message}; the accepted keys are tls_server_config \
         (cert_file, key_file, client_auth_type, client_ca_file, min_version) and \
         basic_auth_users (see docs/operations.md, \"TLS and authentication\")"
    )]
    Parse { path: PathBuf, message: String },
    #[error("web config file {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: ClientAuth,
    client_ca_file: Option<PathBuf>,
    min_version: Option<TlsVersion>,
}

/// exporter-toolkit's `client_auth_type` values (Go's `tls.ClientAuthType` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    /// Accepted by exporter-toolkit, which then takes any certificate without verifying it;
    /// refused here (see [`WebConfig::load`]).
    RequestClientCert,
    /// As above.
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum TlsVersion {
    TLS12,
    TLS13,
}

/// A loaded web configuration: what the server needs to serve it.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// TLS, when `tls_server_config` is present.
    pub tls: Option<Arc<ServerConfig>>,
    /// Whether clients must present a certificate the server verifies.
    pub client_auth: ClientAuth,
    /// Users and their bcrypt hashes; empty: no authentication.
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes stay out of debug output: they are offline-attackable.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the file at `path` (relative paths inside resolve against its
    /// directory; the certificate files are read).
    pub fn parse(path: &Path, text: &str) -> Result<Self, WebConfigError> {
        let invalid = |key: &str, message: String| WebConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        // An empty file is exporter-toolkit's "no TLS, no auth"; YAML reads it as null.
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_norway::from_str(text).map_err(|e| WebConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut config = WebConfig::default();
        if let Some(tls) = file.tls_server_config {
            let (cert, key) = match (tls.cert_file, tls.key_file) {
                (Some(cert), Some(key)) => (dir.join(cert), dir.join(key)),
                (None, _) => {
                    return Err(invalid(
                        "tls_server_config.cert_file",
                        "missing: name the PEM certificate (chain) file, or remove \
                         tls_server_config to serve plain HTTP"
                            .into(),
                    ));
                }
                (_, None) => {
                    return Err(invalid(
                        "tls_server_config.key_file",
                        "missing: name the PEM private key file of cert_file".into(),
                    ));
                }
            };
            config.client_auth = tls.client_auth_type;
            let verifier =
                match (tls.client_auth_type, tls.client_ca_file) {
                    (ClientAuth::NoClientCert, None) => None,
                    (ClientAuth::NoClientCert, Some(_)) => {
                        return Err(invalid(
                            "tls_server_config.client_ca_file",
                            "given without a client_auth_type that uses it: set client_auth_type \
                         to RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove \
                         client_ca_file"
                                .into(),
                        ));
                    }
                    (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, _) => {
                        return Err(invalid(
                            "tls_server_config.client_auth_type",
                            format!(
                                "{:?} accepts client certificates without verifying them, which \
                             authenticates nobody: use RequireAndVerifyClientCert with a \
                             client_ca_file",
                                tls.client_auth_type
                            ),
                        ));
                    }
                    (_, None) => {
                        return Err(invalid(
                            "tls_server_config.client_ca_file",
                            format!(
                                "missing: {:?} verifies client certificates against it; name the \
                             PEM file of the CA that signs them",
                                tls.client_auth_type
                            ),
                        ));
                    }
                    (auth, Some(ca)) => {
                        let ca = dir.join(ca);
                        let mut roots = RootCertStore::empty();
                        for cert in read_certs(&ca)
                            .map_err(|m| invalid("tls_server_config.client_ca_file", m))?
                        {
                            roots.add(cert).map_err(|e| {
                                invalid(
                                    "tls_server_config.client_ca_file",
                                    format!("{}: not a usable CA certificate ({e})", ca.display()),
                                )
                            })?;
                        }
                        let builder = WebPkiClientVerifier::builder_with_provider(
                            Arc::new(roots),
                            Arc::new(provider()),
                        );
                        let builder = if auth == ClientAuth::VerifyClientCertIfGiven {
                            builder.allow_unauthenticated()
                        } else {
                            builder
                        };
                        Some(builder.build().map_err(|e| {
                            invalid("tls_server_config.client_ca_file", e.to_string())
                        })?)
                    }
                };
            let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
                None | Some(TlsVersion::TLS12) => rustls::ALL_VERSIONS,
                Some(TlsVersion::TLS13) => &[&rustls::version::TLS13],
            };
            let chain = read_certs(&cert).map_err(|m| invalid("tls_server_config.cert_file", m))?;
            let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
                invalid(
                    "tls_server_config.key_file",
                    format!(
                        "{}: no PEM private key read ({e}); give the key of cert_file in PEM",
                        key.display()
                    ),
                )
            })?;
            let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
                .with_protocol_versions(versions)
                .map_err(|e| invalid("tls_server_config.min_version", e.to_string()))?;
            let builder = match verifier {
                Some(verifier) => builder.with_client_cert_verifier(verifier),
                None => builder.with_no_client_auth(),
            };
            let mut server = builder.with_single_cert(chain, key).map_err(|e| {
                let why = match e {
                    rustls::Error::InconsistentKeys(_) => {
                        "the key does not belong to the certificate".to_owned()
                    }
                    other => other.to_string(),
                };
                invalid(
                    "tls_server_config.key_file",
                    format!(
                        "does not fit cert_file ({why}): give the private key the certificate \
                         was issued for"
                    ),
                )
            })?;
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
            config.tls = Some(Arc::new(server));
        }
        for (user, hash) in file.basic_auth_users.unwrap_or_default() {
            if user.is_empty() || user.contains(':') {
                return Err(invalid(
                    "basic_auth_users",
                    format!(
                        "{user:?} cannot be a basic-auth user name (empty or holding ':'): \
                         rename it"
                    ),
                ));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(invalid(
                    &format!("basic_auth_users.{user}"),
                    "is not a bcrypt hash ($2y$…, $2b$…): store the hash, never the password; \
                     make one with `htpasswd -nbBC 10 \"\" PASSWORD | tr -d ':\\n'`"
                        .into(),
                ));
            }
            config.users.insert(user, hash);
        }
        Ok(config)
    }

    /// Whether clients must present a verified certificate (a client such as the healthcheck,
    /// which has none, cannot connect).
    pub fn requires_client_certificate(&self) -> bool {
        self.tls.is_some() && self.client_auth == ClientAuth::RequireAndVerifyClientCert
    }
}

/// The crypto provider of the server and of the healthcheck client.
///
/// *ring*, which rustls marks deprecated because it lacks the post-quantum key exchange
/// (X25519MLKEM768) that its aws-lc-rs provider has. aws-lc-rs compiles the AWS-LC C library,
/// a much larger build than *ring* for every build of the daemon (.deb, container, kernel
/// matrix); the classical key exchanges protect a scrape against every attacker without a
/// quantum computer. Switching is this one function and the two `ring` features in Cargo.toml.
#[allow(deprecated)]
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let not_read = |e: &dyn std::fmt::Display| {
        format!(
            "{}: no PEM certificate read ({e}); give a PEM file (-----BEGIN CERTIFICATE-----)",
            path.display()
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| not_read(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_read(&e))?;
    if certs.is_empty() {
        return Err(not_read(&"the file holds none"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a self-signed certificate (`server.crt`, `server.key`) and a second key
    /// that does not fit it (`other.key`); removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "webui-monitor-webconfig-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            std::fs::write(dir.join("server.crt"), cert.cert.pem()).unwrap();
            std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem()).unwrap();
            let other = rcgen::KeyPair::generate().unwrap();
            std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
            Self(dir)
        }

        fn parse(&self, text: &str) -> Result<WebConfig, String> {
            WebConfig::parse(&self.0.join("web.yml"), text)
                .map_err(|e| e.to_string().replace(&self.0.display().to_string(), "DIR"))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const HASH: &str = "$2b$04$Bv3VOz1yWU5Sgf0bo9iF4.YN6y7U/KNJ9tY4mHGtRkuyEg9XUY6cW";

    #[test]
    fn reads_tls_and_users_with_paths_relative_to_the_file() {
        let dir = Dir::new("ok");
        let config = dir
            .parse(&format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
                 basic_auth_users:\n  prometheus: {HASH}\n"
            ))
            .unwrap();
        assert!(config.tls.is_some());
        assert_eq!(config.client_auth, ClientAuth::NoClientCert);
        assert_eq!(config.users.keys().collect::<Vec<_>>(), vec!["prometheus"]);
        assert!(!config.requires_client_certificate());
        // Debug output names users, never hashes.
        assert_eq!(
            format!("{config:?}"),
            "WebConfig { tls: true, client_auth: NoClientCert, users: [\"prometheus\"] }"
        );
        let mtls = dir
            .parse(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.crt\n  \
                 min_version: TLS13\n",
            )
            .unwrap();
        assert!(mtls.requires_client_certificate());
        assert!(mtls.users.is_empty());
    }

    #[test]
    fn an_empty_file_serves_plain_http() {
        let dir = Dir::new("empty");
        let config = dir.parse("").unwrap();
        assert!(config.tls.is_none());
        assert!(config.users.is_empty());
        let config = dir.parse("basic_auth_users: {}\n").unwrap();
        assert!(config.users.is_empty());
    }

    #[test]
    fn errors_say_what_is_wrong_and_what_to_do() {
        let dir = Dir::new("errors");
        let cases: &[(&str, &str)] = &[
            (
                "tls_server_config:\n  key_file: server.key\n",
                "web config file DIR/web.yml: tls_server_config.cert_file: missing: name the PEM \
                 certificate (chain) file, or remove tls_server_config to serve plain HTTP",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n",
                "web config file DIR/web.yml: tls_server_config.key_file: missing: name the PEM \
                 private key file of cert_file",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
                "web config file DIR/web.yml: tls_server_config.key_file: does not fit cert_file \
                 (the key does not belong to the certificate): give the private key the \
                 certificate was issued for",
            ),
            (
                "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
                "web config file DIR/web.yml: tls_server_config.cert_file: DIR/server.key: no PEM \
                 certificate read (the file holds none); give a PEM file (-----BEGIN \
                 CERTIFICATE-----)",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_ca_file: server.crt\n",
                "web config file DIR/web.yml: tls_server_config.client_ca_file: given without a \
                 client_auth_type that uses it: set client_auth_type to \
                 RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: RequireAndVerifyClientCert\n",
                "web config file DIR/web.yml: tls_server_config.client_ca_file: missing: \
                 RequireAndVerifyClientCert verifies client certificates against it; name the PEM \
                 file of the CA that signs them",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: RequireAnyClientCert\n",
                "web config file DIR/web.yml: tls_server_config.client_auth_type: \
                 RequireAnyClientCert accepts client certificates without verifying them, which \
                 authenticates nobody: use RequireAndVerifyClientCert with a client_ca_file",
            ),
            (
                "basic_auth_users:\n  prometheus: hunter2\n",
                "web config file DIR/web.yml: basic_auth_users.prometheus: is not a bcrypt hash \
                 ($2y$…, $2b$…): store the hash, never the password; make one with `htpasswd \
                 -nbBC 10 \"\" PASSWORD | tr -d ':\\n'`",
            ),
            (
                &format!("basic_auth_users:\n  \"a:b\": {HASH}\n"),
                "web config file DIR/web.yml: basic_auth_users: \"a:b\" cannot be a basic-auth \
                 user name (empty or holding ':'): rename it",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(dir.parse(text).unwrap_err(), *expected, "{text}");
        }
        // Parse errors name the key and list what is accepted; a password never appears.
        let unknown = dir
            .parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n")
            .unwrap_err();
        assert!(
            unknown.starts_with(
                "web config file DIR/web.yml: tls_server_config: unknown field `cipher_suites`, \
                 expected one of `cert_file`, `key_file`, `client_auth_type`, `client_ca_file`, \
                 `min_version`"
            ),
            "{unknown}"
        );
        assert!(
            unknown.ends_with(
                "; the accepted keys are tls_server_config (cert_file, key_file, \
                 client_auth_type, client_ca_file, min_version) and basic_auth_users (see \
                 docs/operations.md, \"TLS and authentication\")"
            ),
            "{unknown}"
        );
        let missing = WebConfig::load(&dir.0.join("absent.yml"))
            .unwrap_err()
            .to_string()
            .replace(&dir.0.display().to_string(), "DIR");
        assert_eq!(
            missing,
            "cannot read the web config file DIR/absent.yml: No such file or directory (os error \
             2); check server.web_config_file"
        );
    }
}
