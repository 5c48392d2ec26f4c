//! The table `top` draws: users sorted by a [`SortKey`], with per-minute rates from two polls,
//! as plain lines of at most the terminal's width. Pure: no terminal, no clock.
use std::{
    cmp::Ordering,
    collections::{BTreeMap, HashMap},
};

use clap::ValueEnum;
use webui_monitor_core::usage_summary::{ScriptedSession, UserSummary, UsersSummary};

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
    scripted_sessions(summary, user_width, &mut lines);
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

/// The audit trail's view, when it has something: each user's latest model call with a session
/// JWT or cookie from a script, newest first.
fn scripted_sessions(summary: &UsersSummary, user_width: usize, lines: &mut Vec<String>) {
    let mut latest: Vec<(&UserSummary, &ScriptedSession)> = summary
        .users
        .iter()
        .filter_map(|u| Some((u, u.scripted_session.as_ref()?)))
        .collect();
    if latest.is_empty() {
        return;
    }
    latest.sort_by(|a, b| b.1.at.total_cmp(&a.1.at).then(a.0.user.cmp(&b.0.user)));
    lines.push(String::new());
    lines.push("SCRIPTED SESSION-JWT USE (latest call per user)".to_owned());
    lines.push(format!(
        "{} {}  {}  {}  {}  {}  {}",
        pad("USER", user_width),
        right("LATEST", 10),
        right("CALLS", 6),
        pad("CLIENT ADDRESS", 39),
        pad("CRED", 6),
        pad("API", 10),
        "MODEL"
    ));
    for (u, s) in latest {
        lines.push(format!(
            "{} {}  {}  {}  {}  {}  {}",
            pad(&clean(&u.user), user_width),
            right(&age(summary.generated_at - s.at), 10),
            right(&compact(u.scripted_session_calls), 6),
            pad(&clean(&s.client_address), 39),
            pad(&clean(&s.auth), 6),
            pad(&clean(&s.api), 10),
            clean(&s.model)
        ));
    }
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
fn mix(parts: &BTreeMap<String, u64>, total: u64) -> String {
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
pub(super) fn clean(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use webui_monitor_core::usage_summary::{MonitorHealth, Tokens};

    use super::*;

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

    /// Users whose session credential was used from a script get a second table: their latest
    /// such call, newest first.
    #[test]
    fn latest_scripted_session_use_per_user() {
        let (mut now, before) = polls();
        now.users[0].scripted_session_calls = 3;
        now.users[0].scripted_session = Some(ScriptedSession {
            at: 940.0,
            auth: "jwt".into(),
            api: "messages".into(),
            model: "mock-gpt".into(),
            client_address: "203.0.113.7".into(),
        });
        now.users[2].scripted_session_calls = 1;
        now.users[2].scripted_session = Some(ScriptedSession {
            at: 998.0,
            auth: "cookie".into(),
            api: "responses".into(),
            model: "mock-resp".into(),
            client_address: "2001:db8::7".into(),
        });
        let sort = Sort {
            key: SortKey::Requests,
            reverse: false,
        };
        let lines = render(&now, Some(&before), sort, 200);
        assert_eq!(
            lines[6..],
            [
                "",
                "SCRIPTED SESSION-JWT USE (latest call per user)",
                "USER      LATEST   CALLS  CLIENT ADDRESS                           CRED    API         MODEL",
                "carol     2s ago       1  2001:db8::7                              cookie  responses   mock-resp",
                "alice     1m ago       3  203.0.113.7                              jwt     messages    mock-gpt",
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
}
