//! The HTTP endpoint: `/metrics` for Prometheus, a landing page at `/`, `/healthz` (the process
//! serves) and `/readyz` (the capture is attached).
//!
//! HTTP/1.1 only, GET and HEAD only; routing is a pure function ([`respond`]) so it is tested
//! without sockets. [`connections`] holds the accept loop and the limits that keep the endpoint
//! up against hostile clients; [`web_config`] reads the TLS and basic-auth settings
//! (exporter-toolkit's web configuration file) and [`auth`] checks the credentials.
//!
//! With basic auth configured, every path asks for credentials except `/healthz` and `/readyz`:
//! they say only whether the process serves and whether the capture is attached, and liveness
//! probes (the container's `webui-monitor healthcheck`, a kubelet's `httpGet`) hold no password
//! (the file holds only hashes). exporter-toolkit protects every path; this is the one
//! deliberate difference.
mod auth;
pub mod connections;
pub mod web_config;

use std::{
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
};
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio_rustls::TlsAcceptor;

pub use connections::{ServerMetrics, serve};
pub use web_config::WebConfig;

/// Default listen address of the metrics endpoint: `127.0.0.1:9741`.
///
/// 9741 lies in the Prometheus exporter range (9100–9999) and is the default of none of the
/// well-known exporters (the range's wiki list is fully allocated, so check it before
/// registering). Loopback by default because the series name users: exposing them is an
/// explicit choice (`--listen 0.0.0.0:9741`).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9741);

/// What the endpoint serves.
pub struct State {
    pub registry: Registry,
    /// Set once the capture is attached.
    pub ready: AtomicBool,
}

/// The limits of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How the endpoint serves: limits, TLS and users, and its own metrics.
pub struct Server {
    pub limits: Limits,
    pub security: SecurityHandle,
    pub metrics: ServerMetrics,
}

/// The TLS settings and users in force.
pub struct Security {
    tls: Option<TlsAcceptor>,
    auth: Option<auth::BasicAuth>,
}

/// The [`Security`] the endpoint applies to new connections, replaceable while it runs (SIGHUP
/// re-reads the web config, so a renewed certificate or a changed password needs no restart).
/// A connection keeps the settings it was accepted under.
#[derive(Clone)]
pub struct SecurityHandle(Arc<RwLock<Arc<Security>>>);

impl SecurityHandle {
    pub fn new(web: &WebConfig) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(Security::from(web)))))
    }

    /// Applies `web` to connections accepted from now on.
    pub fn replace(&self, web: &WebConfig) {
        *self.0.write().expect("security lock") = Arc::new(Security::from(web));
    }

    fn current(&self) -> Arc<Security> {
        Arc::clone(&self.0.read().expect("security lock"))
    }
}

impl From<&WebConfig> for Security {
    fn from(web: &WebConfig) -> Self {
        Self {
            tls: web.tls.clone().map(TlsAcceptor::from),
            auth: (!web.users.is_empty()).then(|| auth::BasicAuth::new(web.users.clone())),
        }
    }
}

/// How `web` serves, for the log: `https://ADDR with basic auth (N user(s))`.
pub fn describe(web: &WebConfig, listen: SocketAddr) -> String {
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    match web.users.len() {
        0 => format!("{scheme}://{listen}"),
        n => format!("{scheme}://{listen} with basic auth ({n} user(s))"),
    }
}

/// Paths served without basic auth (see the module documentation).
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Answers `request`: 401 if basic auth is configured and the path needs it and the credentials
/// do not match, else [`respond`].
pub async fn handle(
    request: &Request<Incoming>,
    state: &State,
    auth: Option<&auth::BasicAuth>,
    metrics: &ServerMetrics,
) -> Response<Full<Bytes>> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    answer(
        request.method(),
        request.uri().path(),
        authorization,
        state,
        auth,
        metrics,
    )
    .await
}

/// [`handle`] on the parts of a request it reads.
async fn answer(
    method: &Method,
    path: &str,
    authorization: Option<&[u8]>,
    state: &State,
    auth: Option<&auth::BasicAuth>,
    metrics: &ServerMetrics,
) -> Response<Full<Bytes>> {
    if let Some(auth) = auth.filter(|_| !OPEN_PATHS.contains(&path))
        && let Err(refusal) = auth.check(authorization).await
    {
        metrics
            .auth_failures
            .with_label_values(&[refusal.label()])
            .inc();
        return unauthorized();
    }
    respond(method, path, state)
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized\n")
        .unwrap_or_else(|_| Response::new(Full::default()));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"webui-monitor\""),
    );
    response
}

/// Registers `webui_monitor_build_info{version}` (always 1).
pub fn register_build_info(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new(
            "webui_monitor_build_info",
            "webui-monitor version (always 1)",
        ),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info))
}

const LANDING: &str = concat!(
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>webui-monitor</title></head>\n",
    "<body><h1>webui-monitor ",
    env!("CARGO_PKG_VERSION"),
    "</h1>\n<ul>\n<li><a href=\"/metrics\">/metrics</a> (Prometheus)</li>\n",
    "<li><a href=\"/api/users\">/api/users</a> (per-user JSON for <code>webui-monitor top</code>)</li>\n",
    "<li><a href=\"/healthz\">/healthz</a></li>\n<li><a href=\"/readyz\">/readyz</a></li>\n",
    "</ul></body></html>\n"
);

/// The response to `method path`.
pub fn respond(method: &Method, path: &str, state: &State) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n")
            .map(|mut r| {
                r.headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
                r
            })
            .unwrap_or_else(|_| Response::new(Full::default()));
    }
    let response = match path {
        "/" => with_type(StatusCode::OK, "text/html; charset=utf-8", LANDING.into()),
        "/metrics" => {
            let mut body = Vec::new();
            let encoder = TextEncoder::new();
            match encoder.encode(&state.registry.gather(), &mut body) {
                Ok(()) => with_type(StatusCode::OK, encoder.format_type(), body.into()),
                Err(error) => {
                    log::warn!("encoding metrics failed: {error}");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "encoding metrics failed\n",
                    )
                }
            }
        }
        "/api/users" => {
            let body =
                webui_monitor_core::usage_summary::users_json(&state.registry, SystemTime::now());
            with_type(StatusCode::OK, "application/json", body.into())
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Relaxed) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "capture not attached\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut response = response.unwrap_or_else(|_| Response::new(Full::default()));
    if method == Method::HEAD {
        *response.body_mut() = Full::default();
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> hyper::http::Result<Response<Full<Bytes>>> {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_type(
    status: StatusCode,
    content_type: &str,
    body: Bytes,
) -> hyper::http::Result<Response<Full<Bytes>>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn state(ready: bool) -> State {
        let registry = Registry::new();
        register_build_info(&registry).unwrap();
        State {
            registry,
            ready: AtomicBool::new(ready),
        }
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn routes() {
        let s = state(false);
        let metrics = respond(&Method::GET, "/metrics", &s);
        assert_eq!(metrics.status(), StatusCode::OK);
        let text = body(metrics).await;
        assert!(text.contains(&format!(
            "webui_monitor_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        let landing = body(respond(&Method::GET, "/", &s)).await;
        assert!(landing.contains("<a href=\"/metrics\">"));
        assert_eq!(
            respond(&Method::GET, "/healthz", &s).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&Method::GET, "/readyz", &s).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        s.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            respond(&Method::GET, "/readyz", &s).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&Method::GET, "/nope", &s).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::POST, "/metrics", &s).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(body(respond(&Method::HEAD, "/", &s)).await, "");
    }

    #[tokio::test]
    async fn basic_auth_guards_every_path_but_the_probes() {
        use base64::Engine as _;
        let s = state(true);
        let registry = Registry::new();
        let metrics = ServerMetrics::register(&registry).unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let auth = auth::BasicAuth::new([("prom".to_owned(), hash)].into());
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:pw")
        );
        let status = async |path: &str, authorization: Option<&str>| {
            let response = answer(
                &Method::GET,
                path,
                authorization.map(str::as_bytes),
                &s,
                Some(&auth),
                &metrics,
            )
            .await;
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), challenge)
        };
        let challenge = Some("Basic realm=\"webui-monitor\"".to_owned());
        for path in ["/", "/metrics", "/api/users", "/nope"] {
            assert_eq!(status(path, None).await, (401, challenge.clone()), "{path}");
        }
        assert_eq!(status("/metrics", Some(&good)).await, (200, None));
        assert_eq!(status("/api/users", Some(&good)).await, (200, None));
        assert_eq!(status("/nope", Some(&good)).await, (404, None));
        assert_eq!(status("/healthz", None).await, (200, None));
        assert_eq!(status("/readyz", None).await, (200, None));
        let failures = |reason| metrics.auth_failures.with_label_values(&[reason]).get();
        assert_eq!((failures("missing"), failures("invalid")), (4, 0));
        assert_eq!(
            status("/metrics", Some("Basic cHJvbTpub3Bl")).await,
            (401, challenge)
        );
        assert_eq!((failures("missing"), failures("invalid")), (4, 1));
    }
}
