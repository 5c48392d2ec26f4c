//! `webui-monitor top`: a live terminal view of the users the running daemon sees.
//!
//! It polls the daemon's `GET /api/users` ([`webui_monitor_core::usage_summary`]) on the metrics port, derives
//! per-minute rates from the difference of two polls (the daemon's own `generated_at`, so the
//! client's clock and scheduling jitter do not skew them), and draws a table. On a terminal it
//! refreshes until `q`; otherwise (a pipe, a cron job) or with `--once` it prints one plain table.
//! Token counts marked `≥` are lower bounds: some of that user's answers carried no counts
//! (`openwebui_chat_completions_without_usage_total`).
//!
//! The view is the pure [`render`]; fetching is a minimal HTTP/1.1 client over
//! [`std::net::TcpStream`] whose response parsing ([`parse_response`]) reuses the monitor's own
//! HTTP head parser and chunked decoder, so no HTTP client crate is pulled in for one GET.
use std::{
    cmp::Ordering,
    collections::HashMap,
    io::{IsTerminal as _, Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _},
    time::{Duration, Instant},
};

use clap::{Args, ValueEnum};
use serde::Deserialize;
use webui_monitor_core::{
    http::{
        chunked::ChunkedDecoder,
        head::{self, BodyFraming, HeadLimits},
    },
    usage_summary::{UserSummary, UsersSummary},
};

use crate::server;

/// The path [`webui_monitor_core::usage_summary::users_json`] is served at.
pub const USERS_PATH: &str = "/api/users";

/// `webui-monitor top` options.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Base URL of the daemon's metrics endpoint (its `--listen` address).
    #[arg(long, default_value_t = format!("http://{}", server::DEFAULT_LISTEN))]
    pub url: String,
    /// Sort key; `s` cycles it and `r` reverses it while running.
    #[arg(long, value_enum, default_value_t = SortKey::Requests)]
    pub sort: SortKey,
    /// Reverse the sort order (ascending numbers, descending names).
    #[arg(long)]
    pub reverse: bool,
    /// Seconds between polls; rates are measured over this window (0 with --once: no rates).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Print one snapshot as a plain table and exit (the default when stdout is no terminal).
    #[arg(long)]
    pub once: bool,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && (0.0..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err("expected seconds between 0 and 3600".to_owned())
    }
}

/// What the table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Requests per minute, then total requests.
    Requests,
    /// Chat completions.
    Completions,
    /// Input plus output tokens.
    Tokens,
    /// Most recently seen first.
    LastSeen,
    /// User id, alphabetically.
    User,
}

impl SortKey {
    /// The key `s` switches to.
    pub fn next(self) -> Self {
        match self {
            Self::Requests => Self::Completions,
            Self::Completions => Self::Tokens,
            Self::Tokens => Self::LastSeen,
            Self::LastSeen => Self::User,
            Self::User => Self::Requests,
        }
    }

    /// The name shown in the header (as the flag spells it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Completions => "completions",
            Self::Tokens => "tokens",
            Self::LastSeen => "last-seen",
            Self::User => "user",
        }
    }
}

/// A sort key and direction. Not reversed: largest, latest first; names A to Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub reverse: bool,
}

/// Caps of the HTTP fetch. A response beyond them is refused with an error, not cut: a partial
/// JSON document is useless.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FetchLimits {
    /// Largest response (head and body) read, in bytes. Default 16 MiB: a summary of the
    /// default 1000 users is about 0.5 MiB.
    pub max_response_bytes: usize,
    /// Connect, write and read timeout, in milliseconds. Default 5000.
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
    Url { url: String, reason: &'static str },
    #[error(
        "cannot connect to {url}: {error}; is `webui-monitor run` listening there? pass --url \
         with the address of its --listen"
    )]
    Connect { url: String, error: std::io::Error },
    #[error("talking to {url} failed: {error}; is `webui-monitor run` listening there?")]
    Io { url: String, error: std::io::Error },
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
    /// Host as written (brackets removed from IPv6 literals), for resolving.
    pub host: String,
    pub port: u16,
    /// `host:port` as written, for the `Host` header.
    pub authority: String,
    /// Request target: the URL's path with [`USERS_PATH`] appended.
    pub path: String,
    /// `--url` as given, for messages.
    pub url: String,
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/PREFIX]`; the port defaults to 80 as in any URL.
    pub fn parse(url: &str) -> Result<Self, TopError> {
        let bad = |reason| TopError::Url {
            url: redact_userinfo(url),
            reason,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad(
                    "top speaks plain HTTP; the metrics port serves no TLS (use an SSH tunnel)",
                ));
            }
            Some(_) => return Err(bad("only http:// URLs are supported")),
            None => url,
        };
        let (authority, prefix) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
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

    /// The URL actually requested, for messages.
    pub fn target(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }

    /// The GET request sent for a summary.
    pub fn request(&self) -> String {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: webui-monitor-top/{}\r\nConnection: close\r\n\r\n",
            self.path,
            self.authority,
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// Fetches one summary: connect, send [`Endpoint::request`], read until the server closes.
pub fn fetch(endpoint: &Endpoint, limits: &FetchLimits) -> Result<UsersSummary, TopError> {
    let url = || endpoint.url.clone();
    let timeout = Duration::from_millis(limits.timeout_ms.max(1));
    let addrs = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|error| TopError::Connect { url: url(), error })?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(TopError::Connect {
        url: url(),
        error: last,
    })?;
    let io = |error| TopError::Io { url: url(), error };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream
        .write_all(endpoint.request().as_bytes())
        .map_err(io)?;
    let mut response = Vec::new();
    // One byte more than allowed tells "exactly at the cap" from "beyond it".
    let cap = u64::try_from(limits.max_response_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    (&mut stream)
        .take(cap)
        .read_to_end(&mut response)
        .map_err(io)?;
    if response.len() > limits.max_response_bytes {
        return Err(TopError::TooLarge {
            url: url(),
            limit: limits.max_response_bytes,
        });
    }
    let body = parse_response(&response).map_err(|e| match e {
        ResponseError::Status(status) => TopError::Status {
            url: endpoint.target(),
            status,
        },
        other => TopError::Http {
            url: url(),
            reason: other.to_string(),
        },
    })?;
    serde_json::from_slice(&body).map_err(|error| TopError::Json { url: url(), error })
}

/// Why a response (read until the server closed) was not a usable 200.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("no complete header block")]
    NoHead,
    #[error("invalid head: {0}")]
    Head(#[from] head::HeadError),
    #[error("status {0}")]
    Status(u16),
    #[error("body shorter than its Content-Length")]
    Truncated,
    #[error("invalid chunked body: {0}")]
    Chunked(#[from] webui_monitor_core::http::chunked::ChunkedError),
    #[error("chunked body without its last chunk")]
    ChunkedUnfinished,
}

/// The body of a complete `200` response to a GET, whatever its framing (`Content-Length`,
/// chunked, or until close).
pub fn parse_response(response: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ResponseError::NoHead)?
        + 4;
    let (block, rest) = response.split_at(end);
    let limits = HeadLimits {
        max_headers: 100,
        max_path_bytes: 0,
        max_value_bytes: 1024,
        api_key_header: "",
    };
    let head = head::parse_response(block, &limits)?;
    if head.status != 200 {
        return Err(ResponseError::Status(head.status));
    }
    match head.body_framing("GET") {
        BodyFraming::None => Ok(Vec::new()),
        BodyFraming::Length(n) => {
            let n = usize::try_from(n).map_err(|_| ResponseError::Truncated)?;
            rest.get(..n)
                .map(<[u8]>::to_vec)
                .ok_or(ResponseError::Truncated)
        }
        BodyFraming::Chunked => {
            let mut body = Vec::with_capacity(rest.len());
            let mut decoder = ChunkedDecoder::new(4096);
            let fed = decoder.feed(rest, |data| body.extend_from_slice(data));
            if let Some(error) = fed.error {
                Err(error.into())
            } else if fed.done {
                Ok(body)
            } else {
                Err(ResponseError::ChunkedUnfinished)
            }
        }
        BodyFraming::Close => Ok(rest.to_vec()),
    }
}

/// Column widths after USER; the mix columns come last and take what is left.
const NUMBER_COLUMNS: [(&str, usize); 6] = [
    ("REQ/MIN", 8),
    ("REQS", 7),
    ("COMPL", 6),
    ("TOK IN", 7),
    ("TOK OUT", 8),
    ("LAST SEEN", 10),
];
const AUTH_WIDTH: usize = 20;
/// A user id is a UUID (36 characters); longer values are cut with `…`.
const MAX_USER_WIDTH: usize = 36;
const MIN_USER_WIDTH: usize = 8;

/// The view of `summary` as lines of at most `width` characters: a status line, a blank line, the
/// column header and one row per user. `previous` (the poll before) gives the rates.
pub fn render(
    summary: &UsersSummary,
    previous: Option<&UsersSummary>,
    sort: Sort,
    width: usize,
) -> Vec<String> {
    let rates = Rates::between(summary, previous);
    let mut users: Vec<&UserSummary> = summary.users.iter().collect();
    users.sort_by(|a, b| {
        let order = compare(sort.key, a, b, &rates);
        if sort.reverse { order.reverse() } else { order }
    });

    let health = &summary.monitor;
    let known = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut lines = vec![
        format!(
            "{} users  sort: {} {}  capture lost: {}  stream gaps: {}  cap hits: {}",
            summary.users.len(),
            sort.key.name(),
            if sort.reverse { "↑" } else { "↓" },
            known(health.capture_lost),
            known(health.reassembly_gaps),
            known(health.limit_hits),
        ),
        String::new(),
    ];

    let fixed: usize = NUMBER_COLUMNS.iter().map(|(_, w)| w + 1).sum();
    let longest = users
        .iter()
        .map(|u| u.user.chars().count())
        .max()
        .unwrap_or(0);
    let user_width = longest
        .clamp(4, MAX_USER_WIDTH)
        .min(width.saturating_sub(fixed).max(MIN_USER_WIDTH));

    let mut header = pad("USER", user_width);
    for (name, w) in NUMBER_COLUMNS {
        header.push(' ');
        header.push_str(&right(name, w));
    }
    header.push_str(&format!("  {}  CLIENT", pad("AUTH", AUTH_WIDTH)));
    lines.push(header);

    if users.is_empty() {
        lines.push("(no user traffic seen yet)".to_owned());
    }
    for u in users {
        let tokens = u.tokens();
        // Some answers of this user carried no token counts: what is shown is a lower bound.
        let at_least = if u.completions_without_usage > 0 {
            "≥"
        } else {
            ""
        };
        let cells = [
            rates
                .requests_per_minute(u)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}")),
            compact(u.requests),
            compact(u.completions),
            format!("{at_least}{}", compact(tokens.input)),
            format!("{at_least}{}", compact(tokens.output)),
            u.last_seen
                .map_or_else(|| "-".to_owned(), |t| age(summary.generated_at - t)),
        ];
        let mut line = pad(&clean(&u.user), user_width);
        for ((_, w), cell) in NUMBER_COLUMNS.iter().zip(cells) {
            line.push(' ');
            line.push_str(&right(&cell, *w));
        }
        line.push_str(&format!(
            "  {}  {}",
            pad(&mix(&u.requests_by_auth, u.requests), AUTH_WIDTH),
            mix(&u.requests_by_client, u.requests)
        ));
        lines.push(line);
    }
    lines
        .into_iter()
        .map(|l| {
            let l = l.trim_end();
            match l.char_indices().nth(width) {
                Some((cut, _)) => l[..cut].to_owned(),
                None => l.to_owned(),
            }
        })
        .collect()
}

/// Requests per minute per user over the window between two polls.
struct Rates<'a> {
    previous: HashMap<&'a str, u64>,
    /// Seconds between the polls; `None` without a usable previous poll.
    window: Option<f64>,
}

impl<'a> Rates<'a> {
    fn between(summary: &UsersSummary, previous: Option<&'a UsersSummary>) -> Self {
        let window = previous
            .map(|p| summary.generated_at - p.generated_at)
            .filter(|w| w.is_finite() && *w > 0.0);
        Self {
            previous: previous
                .map(|p| {
                    p.users
                        .iter()
                        .map(|u| (u.user.as_str(), u.requests))
                        .collect()
                })
                .unwrap_or_default(),
            window,
        }
    }

    fn requests_per_minute(&self, user: &UserSummary) -> Option<f64> {
        let window = self.window?;
        // A user absent before is new in this window; a smaller count means the daemon
        // restarted (or the user expired and came back), so the whole count is new, as in
        // Prometheus' rate().
        let before = self.previous.get(user.user.as_str()).copied().unwrap_or(0);
        let delta = if user.requests >= before {
            user.requests - before
        } else {
            user.requests
        };
        Some(delta as f64 * 60.0 / window)
    }
}

fn compare(key: SortKey, a: &UserSummary, b: &UserSummary, rates: &Rates<'_>) -> Ordering {
    let by_name = a.user.cmp(&b.user);
    let descending = match key {
        SortKey::Requests => {
            let rate = |u| rates.requests_per_minute(u).unwrap_or(0.0);
            rate(a)
                .total_cmp(&rate(b))
                .then(a.requests.cmp(&b.requests))
        }
        SortKey::Completions => a.completions.cmp(&b.completions),
        SortKey::Tokens => a.tokens().total().cmp(&b.tokens().total()),
        SortKey::LastSeen => a
            .last_seen
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&b.last_seen.unwrap_or(f64::NEG_INFINITY)),
        SortKey::User => return by_name,
    };
    descending.reverse().then(by_name)
}

/// `jwt 83% cookie 17%`: the shares of a request mix, largest first.
fn mix(parts: &std::collections::BTreeMap<String, u64>, total: u64) -> String {
    if total == 0 {
        return "-".to_owned();
    }
    let mut parts: Vec<(&String, &u64)> = parts.iter().filter(|(_, n)| **n > 0).collect();
    parts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    parts
        .iter()
        .map(|(name, n)| {
            let share = (**n as f64 * 100.0 / total as f64).round();
            format!("{} {share}%", clean(name))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts as read at a glance: exact up to 99999, then `123.4k`, `12.3M`, `1.2G`.
fn compact(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")];
    if n < 100_000 {
        return n.to_string();
    }
    for (unit, suffix) in UNITS {
        if n >= unit {
            return format!("{:.1}{suffix}", n as f64 / unit as f64);
        }
    }
    n.to_string()
}

/// `42s ago`, `5m ago`, `3h ago`, `2d ago`; traffic time ahead of the daemon's clock reads `now`.
fn age(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "-".to_owned();
    }
    // The saturating cast maps negatives (clock skew) to 0.
    let s = seconds as u64;
    match s {
        0 => "now".to_owned(),
        1..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Label values can come from a token's claims (without the signing secret, the claimed id is
/// the user): control characters would let a crafted token drive the admin's terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n > width {
        let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

fn right(s: &str, width: usize) -> String {
    format!("{s:>width$}")
}

/// Runs `top` until `q` (terminal) or after one snapshot (`--once`, or stdout is no terminal).
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.url)?;
    let limits = FetchLimits::default();
    let interval = Duration::from_secs_f64(args.interval);
    let sort = Sort {
        key: args.sort,
        reverse: args.reverse,
    };
    let first = fetch(&endpoint, &limits)?;
    if args.once || !std::io::stdout().is_terminal() {
        let (previous, current) = if interval.is_zero() {
            (None, first)
        } else {
            std::thread::sleep(interval);
            (Some(first), fetch(&endpoint, &limits)?)
        };
        let mut out = std::io::stdout().lock();
        for line in render(&current, previous.as_ref(), sort, usize::MAX) {
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    interactive::run(&endpoint, &limits, interval, sort, first)
}

/// The terminal loop: alternate screen, raw mode for single keys, restored on every exit path.
mod interactive {
    use crossterm::{
        cursor,
        event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
        queue,
        style::Print,
        terminal::{self, ClearType},
    };

    use super::*;

    /// Restores the terminal when dropped, including while unwinding.
    struct Guard;

    impl Guard {
        fn enter() -> std::io::Result<Self> {
            terminal::enable_raw_mode()?;
            let guard = Self;
            crossterm::execute!(
                std::io::stdout(),
                terminal::EnterAlternateScreen,
                cursor::Hide
            )?;
            // A panic message printed inside the alternate screen in raw mode is lost or
            // garbled: restore first, then let the previous hook report it.
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
            Ok(guard)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            restore();
        }
    }

    fn restore() {
        // Best effort: nothing more can be done about a terminal that refuses.
        let _ = crossterm::execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }

    pub(super) fn run(
        endpoint: &Endpoint,
        limits: &FetchLimits,
        interval: Duration,
        mut sort: Sort,
        first: UsersSummary,
    ) -> anyhow::Result<()> {
        // At least 100 ms, so a 0 interval does not hammer the daemon.
        let interval = interval.max(Duration::from_millis(100));
        let _guard = Guard::enter()?;
        let mut current = first;
        let mut previous: Option<UsersSummary> = None;
        let mut error: Option<String> = None;
        let mut next_poll = Instant::now() + interval;
        loop {
            draw(
                &current,
                previous.as_ref(),
                sort,
                error.as_deref(),
                endpoint,
            )?;
            let wait = next_poll.saturating_duration_since(Instant::now());
            if event::poll(wait)? {
                match event::read()? {
                    Event::Key(key) if key.kind != KeyEventKind::Release => match key.code {
                        KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                        // Raw mode turns Ctrl-C into a key instead of SIGINT.
                        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                            return Ok(());
                        }
                        KeyCode::Char('s') => sort.key = sort.key.next(),
                        KeyCode::Char('r') => sort.reverse = !sort.reverse,
                        _ => {}
                    },
                    _ => {}
                }
                continue;
            }
            next_poll = Instant::now() + interval;
            match fetch(endpoint, limits) {
                Ok(next) => {
                    previous = Some(std::mem::replace(&mut current, next));
                    error = None;
                }
                // Keep showing the last good view: a restarting daemon is back in a moment.
                Err(e) => error = Some(e.to_string()),
            }
        }
    }

    fn draw(
        summary: &UsersSummary,
        previous: Option<&UsersSummary>,
        sort: Sort,
        error: Option<&str>,
        endpoint: &Endpoint,
    ) -> std::io::Result<()> {
        let (cols, rows) = terminal::size()?;
        let (width, height) = (usize::from(cols), usize::from(rows));
        let mut lines = render(summary, previous, sort, width);
        let footer = match error {
            Some(e) => format!("! {}", clean(e)),
            None => format!("{}  q quit  s sort  r reverse", endpoint.url),
        };
        lines.truncate(height.saturating_sub(1));
        let mut out = std::io::stdout().lock();
        for (row, line) in lines.iter().enumerate() {
            queue!(
                out,
                cursor::MoveTo(0, u16::try_from(row).unwrap_or(u16::MAX)),
                Print(line),
                terminal::Clear(ClearType::UntilNewLine)
            )?;
        }
        queue!(
            out,
            terminal::Clear(ClearType::FromCursorDown),
            cursor::MoveTo(0, rows.saturating_sub(1)),
            Print(footer.chars().take(width).collect::<String>()),
            terminal::Clear(ClearType::UntilNewLine)
        )?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, net::TcpListener};

    use super::*;
    use webui_monitor_core::usage_summary::{MonitorHealth, Tokens};

    fn user(name: &str, requests: u64) -> UserSummary {
        UserSummary {
            user: name.to_owned(),
            requests,
            ..UserSummary::default()
        }
    }

    fn map<const N: usize>(entries: [(&str, u64); N]) -> BTreeMap<String, u64> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    /// Two polls ten seconds apart: alice made 12 requests in between, bob none, carol is new.
    fn polls() -> (UsersSummary, UsersSummary) {
        let alice = UserSummary {
            requests_by_auth: map([("jwt", 93), ("cookie", 19)]),
            requests_by_client: map([("webui", 84), ("api", 28)]),
            completions: 4,
            tokens_by_source: [(
                "http".to_owned(),
                Tokens {
                    input: 1200,
                    output: 123_456,
                },
            )]
            .into(),
            last_seen: Some(995.0),
            ..user("alice", 112)
        };
        let bob = UserSummary {
            requests_by_auth: map([("api_key", 7)]),
            requests_by_client: map([("api", 7)]),
            completions: 7,
            tokens_by_source: [(
                "http".to_owned(),
                Tokens {
                    input: 10,
                    output: 20,
                },
            )]
            .into(),
            last_seen: Some(1000.0 - 7200.0),
            ..user("bob", 7)
        };
        let carol = UserSummary {
            requests_by_auth: map([("cookie", 3)]),
            requests_by_client: map([("webui", 3)]),
            last_seen: Some(1000.0),
            ..user("carol", 3)
        };
        let now = UsersSummary {
            generated_at: 1000.0,
            users: vec![alice, bob, carol],
            monitor: MonitorHealth {
                capture_lost: Some(0),
                reassembly_gaps: Some(2),
                limit_hits: None,
                tracked_users: Some(3),
            },
        };
        let before = UsersSummary {
            generated_at: 990.0,
            users: vec![user("alice", 100), user("bob", 7)],
            monitor: MonitorHealth::default(),
        };
        (now, before)
    }

    const HEADER: &str =
        "USER   REQ/MIN    REQS  COMPL  TOK IN  TOK OUT  LAST SEEN  AUTH                  CLIENT";
    const ALICE: &str = "alice     72.0     112      4    1200   123.5k     5s ago  jwt 83% cookie 17%    webui 75% api 25%";
    const BOB: &str =
        "bob        0.0       7      7      10       20     2h ago  api_key 100%          api 100%";
    const CAROL: &str = "carol     18.0       3      0       0        0        now  cookie 100%           webui 100%";

    #[test]
    fn renders_rates_mixes_and_health() {
        let (now, before) = polls();
        let sort = Sort {
            key: SortKey::Requests,
            reverse: false,
        };
        assert_eq!(
            render(&now, Some(&before), sort, 200),
            vec![
                "3 users  sort: requests ↓  capture lost: 0  stream gaps: 2  cap hits: -",
                "",
                HEADER,
                ALICE,
                CAROL,
                BOB,
            ]
        );
    }

    /// Tokens of a user with answers that carried no counts are a lower bound, marked `≥`.
    #[test]
    fn tokens_of_users_with_uncounted_answers_are_lower_bounds() {
        let (mut now, before) = polls();
        now.users[1].completions_without_usage = 2;
        let sort = Sort {
            key: SortKey::User,
            reverse: false,
        };
        let lines = render(&now, Some(&before), sort, 200);
        assert_eq!(lines[3], ALICE);
        assert_eq!(
            lines[4],
            "bob        0.0       7      7     ≥10      ≥20     2h ago  api_key 100%          api 100%"
        );
    }

    #[test]
    fn sort_keys_and_reverse() {
        let (now, before) = polls();
        let order = |key, reverse| -> Vec<String> {
            render(&now, Some(&before), Sort { key, reverse }, 200)[3..]
                .iter()
                .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(order(SortKey::Requests, false), ["alice", "carol", "bob"]);
        assert_eq!(order(SortKey::Requests, true), ["bob", "carol", "alice"]);
        assert_eq!(
            order(SortKey::Completions, false),
            ["bob", "alice", "carol"]
        );
        assert_eq!(order(SortKey::Tokens, false), ["alice", "bob", "carol"]);
        assert_eq!(order(SortKey::LastSeen, false), ["carol", "alice", "bob"]);
        assert_eq!(order(SortKey::User, false), ["alice", "bob", "carol"]);
        assert_eq!(order(SortKey::User, true), ["carol", "bob", "alice"]);
        let mut key = SortKey::Requests;
        let mut seen = vec![key.name()];
        for _ in 0..4 {
            key = key.next();
            seen.push(key.name());
        }
        assert_eq!(
            seen,
            ["requests", "completions", "tokens", "last-seen", "user"]
        );
        assert_eq!(key.next(), SortKey::Requests);
    }

    #[test]
    fn without_a_previous_poll_rates_are_unknown() {
        let (now, _) = polls();
        let sort = Sort {
            key: SortKey::Requests,
            reverse: false,
        };
        let lines = render(&now, None, sort, 200);
        assert_eq!(
            lines[3],
            "alice        -     112      4    1200   123.5k     5s ago  jwt 83% cookie 17%    webui 75% api 25%"
        );
        // A restarted daemon (counts went down) counts everything as new.
        let restarted = UsersSummary {
            generated_at: 940.0,
            users: vec![user("alice", 500)],
            ..UsersSummary::default()
        };
        assert!(render(&now, Some(&restarted), sort, 200)[3].starts_with("alice    112.0"));
    }

    #[test]
    fn narrow_terminals_cut_lines_and_long_or_hostile_names() {
        let summary = UsersSummary {
            generated_at: 10.0,
            users: vec![
                user("0123456789abcdef0123456789abcdef0123-too-long", 1),
                user("evil\u{1b}]0;x\u{7}", 2),
            ],
            ..UsersSummary::default()
        };
        let sort = Sort {
            key: SortKey::User,
            reverse: false,
        };
        let lines = render(&summary, None, sort, 60);
        assert_eq!(
            lines,
            vec![
                "2 users  sort: user ↓  capture lost: -  stream gaps: -  cap ",
                "",
                "USER      REQ/MIN    REQS  COMPL  TOK IN  TOK OUT  LAST SEEN",
                "0123456…        -       1      0       0        0          -",
                "evil\u{fffd}]0…        -       2      0       0        0          -",
            ]
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 60));
        assert!(lines.iter().all(|l| !l.chars().any(char::is_control)));
    }

    #[test]
    fn empty_summary() {
        let sort = Sort {
            key: SortKey::Requests,
            reverse: true,
        };
        assert_eq!(
            render(&UsersSummary::default(), None, sort, 200),
            vec![
                "0 users  sort: requests ↑  capture lost: -  stream gaps: -  cap hits: -",
                "",
                "USER  REQ/MIN    REQS  COMPL  TOK IN  TOK OUT  LAST SEEN  AUTH                  CLIENT",
                "(no user traffic seen yet)",
            ]
        );
    }

    #[test]
    fn formats() {
        assert_eq!(compact(99_999), "99999");
        assert_eq!(compact(100_000), "100.0k");
        assert_eq!(compact(12_345_678), "12.3M");
        assert_eq!(compact(4_000_000_000), "4.0G");
        assert_eq!(age(-3.0), "now");
        assert_eq!(age(59.9), "59s ago");
        assert_eq!(age(3599.0), "59m ago");
        assert_eq!(age(86_400.0 * 3.0), "3d ago");
        assert_eq!(age(f64::NAN), "-");
        assert_eq!(
            mix(&map([("jwt", 1), ("cookie", 1), ("none", 1)]), 3),
            "cookie 33% jwt 33% none 33%"
        );
        assert_eq!(mix(&BTreeMap::new(), 0), "-");
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
        assert_eq!(
            e.request(),
            format!(
                "GET /api/users HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nUser-Agent: webui-monitor-top/{}\r\nConnection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
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

    #[test]
    fn parses_every_response_framing() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}trailing").unwrap(),
            b"{}"
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1;x=y\r\n}\r\n0\r\n\r\n")
                .unwrap(),
            b"{}"
        );
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n\r\n{}").unwrap(), b"{}");
        assert_eq!(
            parse_response(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            Err(ResponseError::Status(404))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}"),
            Err(ResponseError::Truncated)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n"),
            Err(ResponseError::ChunkedUnfinished)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
            Err(ResponseError::Chunked(
                webui_monitor_core::http::chunked::ChunkedError::SizeLine
            ))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n"),
            Err(ResponseError::NoHead)
        );
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ResponseError::Head(_))
        ));
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
        let request = server.join().unwrap();
        assert_eq!(request, endpoint.request().into_bytes());
    }

    /// The daemon's stack end to end: hyper (as `server.rs` runs it) serving
    /// [`webui_monitor_core::usage_summary::users_json`] of a registry the semantics layer filled.
    #[test]
    fn fetches_users_json_from_a_hyper_server() {
        use http_body_util::Full;
        use hyper::{Response, body::Bytes, server::conn::http1, service::service_fn};
        use hyper_util::rt::TokioIo;

        let registry = prometheus::Registry::new();
        let m = webui_monitor_core::openwebui::OpenWebuiMetrics::register(&registry).unwrap();
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

    #[test]
    fn flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            top: TopArgs,
        }
        let args = Cli::parse_from(["top"]).top;
        assert_eq!(args.url, "http://127.0.0.1:9741");
        assert_eq!(args.sort, SortKey::Requests);
        assert_eq!(args.interval, 1.0);
        assert!(!args.once && !args.reverse);
        let args = Cli::parse_from([
            "top",
            "--sort",
            "last-seen",
            "--interval",
            "0.5",
            "--once",
            "--reverse",
        ])
        .top;
        assert_eq!(
            (args.sort, args.interval, args.once, args.reverse),
            (SortKey::LastSeen, 0.5, true, true)
        );
        assert!(Cli::try_parse_from(["top", "--interval", "-1"]).is_err());
        assert!(Cli::try_parse_from(["top", "--sort", "bytes"]).is_err());
    }
}
