//! The daemon's `/api/users` over HTTP: `--url` checked and turned into the request URL, one
//! GET per poll with [`ureq`], and errors that say what to check.
//!
//! The metrics port speaks plain HTTP/1.1, so the client has no TLS; it follows no redirect,
//! uses no proxy from the environment and keeps no connection between polls, like `curl` run
//! once a second would.
use std::{io, time::Duration};

use serde::Deserialize;
use ureq::{Agent, Timeout, http::uri::Authority};
use webui_monitor_core::usage_summary::UsersSummary;

use crate::server;

/// The path [`webui_monitor_core::usage_summary::users_json`] is served at.
pub const USERS_PATH: &str = "/api/users";

/// Caps of the HTTP fetch. A response beyond them is refused with an error, not cut: a partial
/// JSON document is useless.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FetchLimits {
    /// Largest response body read, in bytes. Default 16 MiB: a summary of the default 1000
    /// users is about 0.5 MiB. (The head has the client's own cap of 64 KiB.)
    pub max_response_bytes: usize,
    /// Connect timeout, and the longest wait for each write and read, in milliseconds.
    /// Default 5000.
    pub timeout_ms: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            max_response_bytes: 16 << 20,
            timeout_ms: 5000,
        }
    }
}

/// Why `top` could not get a summary; each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(
        "invalid --url {url:?}: {reason} (expected http://HOST:PORT, e.g. http://{})",
        server::DEFAULT_LISTEN
    )]
    Url { url: String, reason: String },
    #[error(
        "cannot connect to {url}: {error}; is `webui-monitor run` listening there? pass --url \
         with the address of its --listen"
    )]
    Connect { url: String, error: io::Error },
    #[error("talking to {url} failed: {error}; is `webui-monitor run` listening there?")]
    Io { url: String, error: io::Error },
    #[error("the response of {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} did not answer with valid HTTP/1.1 ({reason}); is --url a webui-monitor?")]
    Http { url: String, reason: String },
    #[error(
        "{url} answered HTTP {status}; a webui-monitor that serves {USERS_PATH} listens on its \
         --listen address (pass --url)"
    )]
    Status { url: String, status: u16 },
    #[error("{url} sent no valid users summary ({error}); is --url a webui-monitor?")]
    Json {
        url: String,
        error: serde_json::Error,
    },
}

/// `url` with any `user:password@` replaced by `***@`: error messages reach terminals and logs.
fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

/// Where the summary is fetched from, parsed from `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host as written (brackets removed from IPv6 literals).
    pub host: String,
    pub port: u16,
    /// `host:port` as written.
    pub authority: String,
    /// Request path: the URL's path with [`USERS_PATH`] appended.
    pub path: String,
    /// `--url` as given, for messages.
    pub url: String,
}

impl Endpoint {
    /// Parses `[http://]HOST[:PORT][/PREFIX]`; the port defaults to 80 as in any URL. Query and
    /// fragment are dropped; credentials are refused (the daemon asks for none, and a password
    /// on the command line is visible to every user).
    pub fn parse(url: &str) -> Result<Self, TopError> {
        let bad = |reason: String| TopError::Url {
            url: redact_userinfo(url),
            reason,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad(
                    "top speaks plain HTTP; the metrics port serves no TLS (use an SSH tunnel)"
                        .into(),
                ));
            }
            Some(_) => return Err(bad("only http:// URLs are supported".into())),
            None => url,
        };
        let (authority, prefix) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported".into()));
        }
        let parsed: Authority = authority
            .parse()
            .map_err(|e| bad(format!("{e} in {authority:?}")))?;
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host".into()));
        }
        // `Authority` accepts any text after the colon as a port; a URL's port is a number.
        let port = match &authority[parsed.host().len()..] {
            "" => 80,
            after_host => after_host
                .strip_prefix(':')
                .and_then(|port| port.parse().ok())
                .ok_or_else(|| bad("invalid port".into()))?,
        };
        let prefix = prefix.split(['?', '#']).next().unwrap_or_default();
        let prefix = prefix.trim_end_matches('/');
        let path = if prefix.ends_with(USERS_PATH) {
            prefix.to_owned()
        } else {
            format!("{prefix}{USERS_PATH}")
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
            url: url.to_owned(),
        })
    }

    /// The URL actually requested.
    pub fn target(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// The HTTP client of one fetch.
fn agent(limits: &FetchLimits) -> Agent {
    let timeout = Some(Duration::from_millis(limits.timeout_ms.max(1)));
    Agent::config_builder()
        // Statuses, redirects included, are answered below with what to do.
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .max_idle_connections(0)
        .user_agent(concat!("webui-monitor-top/", env!("CARGO_PKG_VERSION")))
        .accept("application/json")
        .timeout_connect(timeout)
        .timeout_per_write(timeout)
        .timeout_per_read(timeout)
        .build()
        .into()
}

/// Fetches one summary: one GET of [`Endpoint::target`], the body read whole.
pub fn fetch(endpoint: &Endpoint, limits: &FetchLimits) -> Result<UsersSummary, TopError> {
    let url = || endpoint.url.clone();
    let mut response = agent(limits)
        .get(endpoint.target())
        .call()
        .map_err(|e| request_error(e, url()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(TopError::Status {
            url: endpoint.target(),
            status,
        });
    }
    let limit = limits.max_response_bytes;
    let too_large = || TopError::TooLarge { url: url(), limit };
    // A declared length beyond the cap is refused before reading anything.
    let body = response.body_mut();
    if body
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let bytes = body
        .with_config()
        .limit(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => too_large(),
            e => body_error(e, url()),
        })?;
    serde_json::from_slice(&bytes).map_err(|error| TopError::Json { url: url(), error })
}

/// An error before the response head was complete: resolving, connecting, sending, reading the
/// head.
fn request_error(error: ureq::Error, url: String) -> TopError {
    use io::ErrorKind as Kind;
    match error {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => TopError::Connect {
            url,
            error: error.into_io(),
        },
        ureq::Error::Timeout(_) => TopError::Io {
            url,
            error: io::Error::new(Kind::TimedOut, error),
        },
        ureq::Error::Io(error) => match error.kind() {
            Kind::UnexpectedEof => TopError::Http {
                url,
                reason: "the connection closed before a complete response head".into(),
            },
            // Once connected, only a peer that went away fails a local exchange.
            Kind::ConnectionReset | Kind::ConnectionAborted | Kind::BrokenPipe => {
                TopError::Io { url, error }
            }
            // Resolving and connecting fail with every other kind.
            _ => TopError::Connect { url, error },
        },
        other => TopError::Http {
            url,
            reason: other.to_string(),
        },
    }
}

/// An error while reading the body.
fn body_error(error: ureq::Error, url: String) -> TopError {
    match error {
        ureq::Error::Io(error) if error.kind() == io::ErrorKind::UnexpectedEof => TopError::Http {
            url,
            reason: "the body ended before its announced end".into(),
        },
        ureq::Error::Io(error) => TopError::Io { url, error },
        ureq::Error::Timeout(_) => TopError::Io {
            url,
            error: io::Error::new(io::ErrorKind::TimedOut, error),
        },
        other => TopError::Http {
            url,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::TcpListener,
    };

    use webui_monitor_core::usage_summary::UserSummary;

    use super::*;
    use crate::top::view::{Sort, SortKey, render};

    fn user(name: &str, requests: u64) -> UserSummary {
        UserSummary {
            user: name.to_owned(),
            requests,
            ..UserSummary::default()
        }
    }

    #[test]
    fn parses_urls() {
        let e = Endpoint::parse("http://127.0.0.1:9741").unwrap();
        assert_eq!(
            (
                e.host.as_str(),
                e.port,
                e.authority.as_str(),
                e.path.as_str()
            ),
            ("127.0.0.1", 9741, "127.0.0.1:9741", "/api/users")
        );
        let e = Endpoint::parse("HTTP://[::1]:9741/monitor/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("::1", 9741, "/monitor/api/users")
        );
        let e = Endpoint::parse("localhost/api/users?x=1").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("localhost", 80, "/api/users")
        );
        assert_eq!(e.target(), "http://localhost/api/users");
        for bad in [
            "https://h:1",
            "ftp://h",
            "http://:9741",
            "http://h:port",
            "http://[::1",
        ] {
            let error = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("invalid --url {bad:?}: ")),
                "{error}"
            );
            assert!(
                error.ends_with("(expected http://HOST:PORT, e.g. http://127.0.0.1:9741)"),
                "{error}"
            );
        }
    }

    #[test]
    fn url_errors_do_not_echo_credentials() {
        let error = Endpoint::parse("http://admin:hunter2@127.0.0.1:9741/")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("http://***@127.0.0.1:9741/"), "{error}");
    }

    /// Every framing a server may answer with, and the broken ones, over a real connection.
    #[test]
    fn fetches_every_response_framing() {
        let fetch_from = |response: &'static [u8]| {
            let (url, server) = serve_once(response);
            let result = fetch(&Endpoint::parse(&url).unwrap(), &FetchLimits::default());
            server.join().unwrap();
            result
        };
        for ok in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}trailing"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1;x=y\r\n}\r\n0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\n{}",
        ] {
            assert_eq!(fetch_from(ok).unwrap(), UsersSummary::default());
        }
        assert!(matches!(
            fetch_from(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            Err(TopError::Status { status: 404, .. })
        ));
        for broken in [
            // Shorter than its Content-Length.
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}"[..],
            // Chunked without its last chunk.
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n",
            // A chunk size that is no number.
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            // No complete head.
            b"HTTP/1.1 200 OK\r\n",
            // Not HTTP.
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            let error = fetch_from(broken).unwrap_err();
            assert!(matches!(error, TopError::Http { .. }), "{error}");
        }
    }

    /// Serves `response` to one connection on loopback and returns the URL and the request seen.
    fn serve_once(response: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response).unwrap();
            request
        });
        (url, handle)
    }

    #[test]
    fn fetches_a_chunked_summary_over_tcp() {
        let (url, server) = serve_once(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
              14\r\n{\"generated_at\":12.5\r\n18\r\n,\"users\":[{\"user\":\"u\"}]}\r\n0\r\n\r\n",
        );
        let endpoint = Endpoint::parse(&url).unwrap();
        let summary = fetch(&endpoint, &FetchLimits::default()).unwrap();
        assert_eq!(summary.generated_at, 12.5);
        assert_eq!(summary.users, vec![user("u", 0)]);
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            request.starts_with("GET /api/users HTTP/1.1\r\n"),
            "{request}"
        );
        let headers = request.to_ascii_lowercase();
        for header in [
            format!("\r\nhost: {}\r\n", endpoint.authority),
            "\r\naccept: application/json\r\n".to_owned(),
            format!(
                "\r\nuser-agent: webui-monitor-top/{}\r\n",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(headers.contains(&header), "{header:?} not in {request:?}");
        }
    }

    /// The daemon's stack end to end: hyper (as `server.rs` runs it) serving
    /// [`webui_monitor_core::usage_summary::users_json`] of a registry the semantics layer filled.
    #[test]
    fn fetches_users_json_from_a_hyper_server() {
        use http_body_util::Full;
        use hyper::{Response, body::Bytes, server::conn::http1, service::service_fn};
        use hyper_util::rt::TokioIo;

        let registry = prometheus::Registry::new();
        let m = webui_monitor_core::metrics::OpenWebuiMetrics::register(&registry, "USD").unwrap();
        m.user_requests
            .with_label_values(&["alice", "jwt", "api"])
            .inc_by(3);
        m.user_last_seen.with_label_values(&["alice"]).set(100.0);
        let now = std::time::UNIX_EPOCH + Duration::from_secs(160);
        let body = webui_monitor_core::usage_summary::users_json(&registry, now);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap();
            runtime.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                let service = service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                    .unwrap();
            });
        });
        let summary = fetch(&Endpoint::parse(&url).unwrap(), &FetchLimits::default()).unwrap();
        server.join().unwrap();
        assert_eq!(summary.generated_at, 160.0);
        let sort = Sort {
            key: SortKey::Requests,
            reverse: false,
        };
        assert_eq!(
            render(&summary, None, sort, 200)[3],
            "alice        -       3      0       0        0     1m ago  jwt 100%              api 100%"
        );
    }

    #[test]
    fn errors_say_what_to_do() {
        let (url, server) = serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        let error = fetch(&Endpoint::parse(&url).unwrap(), &FetchLimits::default()).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            error.to_string(),
            format!(
                "{url}/api/users answered HTTP 404; a webui-monitor that serves /api/users listens on its --listen address (pass --url)"
            )
        );

        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nnot json!");
        let error = fetch(&Endpoint::parse(&url).unwrap(), &FetchLimits::default()).unwrap_err();
        server.join().unwrap();
        assert!(
            error.to_string().contains("sent no valid users summary"),
            "{error}"
        );

        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
        let limits = FetchLimits {
            max_response_bytes: 10,
            ..FetchLimits::default()
        };
        let error = fetch(&Endpoint::parse(&url).unwrap(), &limits).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            error.to_string(),
            format!("the response of {url} is larger than 10 bytes")
        );

        // A port nobody listens on: bind one, learn its number, close it.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let url = format!("http://{closed}");
        let error = fetch(&Endpoint::parse(&url).unwrap(), &FetchLimits::default()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("cannot connect to {url}: ")),
            "{text}"
        );
        assert!(
            text.ends_with("is `webui-monitor run` listening there? pass --url with the address of its --listen"),
            "{text}"
        );
    }
}
