//! What the [`Attributor`] concludes, as [`Fact`]s recorded by a sink that keeps them: every
//! authentication outcome, client kinds, completions and tokens over HTTP, and the WebSocket
//! join in both event orders. How facts become metric series (label caps, expiry, API-key and
//! account-detail series) is the metrics sink's, tested in `metrics::openwebui_sink`.
use super::{
    Attributor, Fact, FactSink, SemanticsConfig,
    fact::{Limit, Signal, Signals, TokenDetail, TokenDirection, TokenSource},
    identity::UserRef,
    jwt::JwtSecret,
    labels::{Auth, AuthResult, Client, StatusClass},
    route::ApiKind,
    test_exchanges::*,
};
use crate::{
    http::{
        Exchange,
        exchange::{Anomaly, ResponseBodyFields, StreamSummary},
    },
    secret::Secret,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
    websocket::SocketEvent,
};

/// A user as the facts name it: the id, or the special value's name.
fn name(user: UserRef<'_>) -> String {
    match user {
        UserRef::Id(id) => id.into(),
        UserRef::Special(s) => s.as_str().into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Req {
    user: String,
    auth: Auth,
    result: AuthResult,
    client: Client,
    signals: Signals,
    route: &'static str,
    status: Option<u16>,
    request_bytes: u64,
    response_bytes: u64,
    at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
struct Comp {
    user: String,
    model: String,
    auth: Auth,
    client: Client,
    stream: bool,
    status: StatusClass,
}

#[derive(Debug, Clone, PartialEq)]
struct Tok {
    user: String,
    model: String,
    direction: TokenDirection,
    source: TokenSource,
    count: u64,
}

/// A [`Fact`], owned.
#[derive(Debug, Clone, PartialEq)]
enum Rec {
    Directory,
    Request(Req),
    ApiKeySeen {
        key: String,
        user: String,
    },
    UserSeen {
        user: String,
        at: Timestamp,
    },
    Completion(Comp),
    Tokens(Tok),
    TokenDetail {
        user: String,
        model: String,
        kind: TokenDetail,
        source: TokenSource,
        count: u64,
    },
    WithoutUsage {
        user: String,
        model: String,
        source: TokenSource,
    },
    FirstToken {
        model: String,
        seconds: f64,
    },
    ModelRetired(String),
    LimitHit(Limit),
    Tick,
}

/// The recording sink.
#[derive(Debug, Default)]
struct Recorder(Vec<Rec>);

impl FactSink for Recorder {
    /// `Usage` and `ModelCall` repeat what the other facts say; `model_call_facts` checks them.
    fn fact(&mut self, fact: Fact<'_>) {
        self.0.push(match fact {
            Fact::Usage { .. } | Fact::ModelCall { .. } => return,
            Fact::Directory(_) => Rec::Directory,
            Fact::Request {
                user,
                auth,
                result,
                client,
                signals,
                route,
                status,
                request_bytes,
                response_bytes,
                at,
                ..
            } => Rec::Request(Req {
                user: name(user),
                auth,
                result,
                client,
                signals,
                route,
                status,
                request_bytes,
                response_bytes,
                at,
            }),
            Fact::ApiKeySeen { fingerprint, user } => Rec::ApiKeySeen {
                key: fingerprint.as_str().into(),
                user: name(user),
            },
            Fact::UserSeen { user, at } => Rec::UserSeen {
                user: name(user),
                at,
            },
            Fact::Completion {
                user,
                model,
                api: _,
                auth,
                client,
                stream,
                status,
            } => Rec::Completion(Comp {
                user: name(user),
                model: model.name.into(),
                auth,
                client,
                stream,
                status,
            }),
            Fact::Tokens {
                user,
                model,
                direction,
                source,
                count,
            } => Rec::Tokens(Tok {
                user: name(user),
                model: model.name.into(),
                direction,
                source,
                count,
            }),
            Fact::TokenDetail {
                user,
                model,
                kind,
                source,
                count,
            } => Rec::TokenDetail {
                user: name(user),
                model: model.name.into(),
                kind,
                source,
                count,
            },
            Fact::CompletionWithoutUsage {
                user,
                model,
                source,
            } => Rec::WithoutUsage {
                user: name(user),
                model: model.name.into(),
                source,
            },
            Fact::FirstToken { model, seconds } => Rec::FirstToken {
                model: model.name.into(),
                seconds,
            },
            Fact::ModelRetired { model } => Rec::ModelRetired(model.name.into()),
            Fact::LimitHit(limit) => Rec::LimitHit(limit),
            Fact::Tick { .. } => Rec::Tick,
        });
    }
}

struct Fixture {
    a: Attributor,
    rec: Recorder,
}

impl Fixture {
    fn new(config: SemanticsConfig, secret: bool) -> Self {
        let secret = secret.then(|| JwtSecret::new(SECRET));
        let a = Attributor::new(config, secret.as_ref());
        Self {
            a,
            rec: Recorder::default(),
        }
    }
    fn with_secret() -> Self {
        Self::new(SemanticsConfig::default(), true)
    }
    fn exchange(&mut self, ex: &Exchange) {
        self.a.on_exchange(ex, &mut self.rec);
    }
    fn socket(&mut self, connection: ConnectionKey, event: &SocketEvent) {
        self.a.on_socket(connection, event, &mut self.rec);
    }
    fn finish(&mut self, now: Timestamp) {
        self.a.finish(now, &mut self.rec);
    }
    fn open_socket(&mut self, token: &str) {
        open_socket(&mut self.a, &mut self.rec, token);
    }
    fn requests(&self) -> impl Iterator<Item = &Req> {
        self.rec.0.iter().filter_map(|r| match r {
            Rec::Request(r) => Some(r),
            _ => None,
        })
    }
    /// (user, auth, result) of each request, in order.
    fn who(&self) -> Vec<(String, Auth, AuthResult)> {
        self.requests()
            .map(|r| (r.user.clone(), r.auth, r.result))
            .collect()
    }
    fn completions(&self) -> Vec<&Comp> {
        self.rec
            .0
            .iter()
            .filter_map(|r| match r {
                Rec::Completion(c) => Some(c),
                _ => None,
            })
            .collect()
    }
    /// Sum of the token facts `keep` selects.
    fn tokens(&self, keep: impl Fn(&Tok) -> bool) -> u64 {
        self.rec
            .0
            .iter()
            .filter_map(|r| match r {
                Rec::Tokens(t) if keep(t) => Some(t.count),
                _ => None,
            })
            .sum()
    }
    /// (user, model, source) of each answer without usage, in order.
    fn without_usage(&self) -> Vec<(&str, &str, TokenSource)> {
        self.rec
            .0
            .iter()
            .filter_map(|r| match r {
                Rec::WithoutUsage {
                    user,
                    model,
                    source,
                } => Some((user.as_str(), model.as_str(), *source)),
                _ => None,
            })
            .collect()
    }
    fn first_tokens(&self) -> Vec<(&str, f64)> {
        self.rec
            .0
            .iter()
            .filter_map(|r| match r {
                Rec::FirstToken { model, seconds } => Some((model.as_str(), *seconds)),
                _ => None,
            })
            .collect()
    }
}

fn who(user: &str, auth: Auth, result: AuthResult) -> (String, Auth, AuthResult) {
    (user.into(), auth, result)
}

#[test]
fn verified_bearer_and_cookie_only() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.exchange(&cookie(
        bearer(request("/api/v1/chats/", 200, 0), &token),
        &token,
    ));
    f.exchange(&cookie(request("/_app/x.js", 200, 1), &token));
    assert_eq!(
        f.who(),
        [
            who(ALICE, Auth::Jwt, AuthResult::Verified),
            who(ALICE, Auth::Cookie, AuthResult::Verified),
        ]
    );
    let bytes = |r: fn(&Req) -> u64| f.requests().map(r).sum::<u64>();
    assert_eq!(bytes(|r| r.request_bytes), 200);
    assert_eq!(bytes(|r| r.response_bytes), 2000);
    assert_eq!(f.requests().map(|r| r.at).max(), Some(at(NOW + 1)));
    let last = f.requests().last().unwrap();
    assert_eq!((last.route, last.status), ("/_app/*", Some(200)));
}

#[test]
fn forged_expired_and_malformed_tokens_are_invalid_never_the_claimed_id() {
    let mut f = Fixture::with_secret();
    let forged = session_token(ALICE, NOW - 60, b"attacker-guess");
    let expired = session_token(ALICE, NOW - 2_419_200 - 1, SECRET);
    let future = session_token(ALICE, NOW + 3600, SECRET);
    f.exchange(&bearer(request("/api/v1/chats/", 200, 0), &forged));
    f.exchange(&bearer(request("/api/v1/chats/", 401, 0), &expired));
    f.exchange(&bearer(request("/api/version", 200, 0), "undefined"));
    f.exchange(&cookie(request("/api/config", 200, 0), &future));
    assert_eq!(
        f.who(),
        [
            who("invalid", Auth::Jwt, AuthResult::BadSignature),
            who("invalid", Auth::Jwt, AuthResult::Expired),
            who("invalid", Auth::Jwt, AuthResult::Malformed),
            who("invalid", Auth::Cookie, AuthResult::NotYetValid),
        ]
    );
}

#[test]
fn without_secret_claimed_id_is_unverified_unless_rejected() {
    let mut f = Fixture::new(SemanticsConfig::default(), false);
    let any_key = session_token(ALICE, NOW, b"unknown-secret");
    f.exchange(&bearer(request("/api/models", 200, 0), &any_key));
    f.exchange(&bearer(request("/api/models", 401, 1), &any_key));
    f.exchange(&bearer(request("/api/version", 200, 2), "undefined"));
    f.exchange(&request("/api/config", 200, 3));
    assert_eq!(
        f.who(),
        [
            who(ALICE, Auth::Jwt, AuthResult::Unverified),
            who("invalid", Auth::Jwt, AuthResult::Rejected),
            who("invalid", Auth::Jwt, AuthResult::Malformed),
            who("anonymous", Auth::None, AuthResult::Anonymous),
        ]
    );
}

#[test]
fn api_keys_known_unknown_and_without_database() {
    let mut f = Fixture::with_secret();
    f.exchange(&bearer(request("/api/models", 200, 0), KEY));
    f.a.set_directory(Some(directory()), &mut f.rec);
    f.exchange(&bearer(request("/api/models", 200, 1), KEY));
    let mut header = request("/api/models", 401, 2);
    header.request_headers.set(
        crate::http::exchange::RequestField::ApiKeyHeader,
        b"sk-00000000000000000000000000000000",
    );
    f.exchange(&header);
    assert_eq!(
        f.who(),
        [
            who("unresolved_api_key", Auth::ApiKey, AuthResult::Unverified),
            who(ALICE, Auth::ApiKey, AuthResult::Verified),
            who("unknown_api_key", Auth::ApiKey, AuthResult::UnknownApiKey),
        ]
    );
    // Fingerprints only; the owner follows the database once loaded.
    let keys: Vec<_> = f
        .rec
        .0
        .iter()
        .filter_map(|r| match r {
            Rec::ApiKeySeen { key, user } => Some((key.as_str(), user.as_str())),
            _ => None,
        })
        .collect();
    // The key refused with 401 is not exported: junk keys cannot fill the slots.
    assert_eq!(
        keys,
        [
            ("46e99b8fcc3f", "unresolved_api_key"),
            ("46e99b8fcc3f", ALICE),
        ]
    );
}

/// The facts of one script's streamed completion, in the documented order.
#[test]
fn facts_of_one_completion_come_in_order() {
    let mut f = Fixture::with_secret();
    f.a.set_directory(Some(directory()), &mut f.rec);
    let ex = streamed(bearer(completion("mock-gpt", None, None, 0), KEY));
    f.exchange(&ex);
    let alice = || ALICE.to_string();
    let tokens = |direction, count| {
        Rec::Tokens(Tok {
            user: alice(),
            model: "mock-gpt".into(),
            direction,
            source: TokenSource::Http,
            count,
        })
    };
    assert_eq!(
        f.rec.0[3..],
        [
            Rec::ApiKeySeen {
                key: "46e99b8fcc3f".into(),
                user: alice()
            },
            Rec::UserSeen {
                user: alice(),
                at: at(NOW)
            },
            Rec::Completion(Comp {
                user: alice(),
                model: "mock-gpt".into(),
                auth: Auth::ApiKey,
                client: Client::Api,
                stream: true,
                status: StatusClass::Success,
            }),
            tokens(TokenDirection::Input, 4),
            tokens(TokenDirection::Output, 17),
            Rec::FirstToken {
                model: "mock-gpt".into(),
                seconds: 0.07
            },
        ]
    );
    // The first event of a run sweeps first.
    assert!(matches!(
        f.rec.0[..3],
        [Rec::Directory, Rec::Tick, Rec::Request(_)]
    ));
}

#[test]
fn model_label_is_bounded_and_tokens_need_2xx() {
    let config = SemanticsConfig {
        max_models: 1,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let token = session_token(ALICE, NOW - 60, SECRET);
    let ok = streamed(bearer(completion("mock-gpt", None, None, 0), &token));
    f.exchange(&ok);
    let mut other = bearer(completion("gpt-x", None, None, 1), &token);
    other.status = Some(500);
    other.response_fields.usage = Some(usage(1, 1));
    f.exchange(&other);
    let completions: Vec<_> = f
        .completions()
        .iter()
        .map(|c| (c.model.as_str(), c.client, c.stream, c.status))
        .collect();
    assert_eq!(
        completions,
        [
            ("mock-gpt", Client::Api, true, StatusClass::Success),
            ("other", Client::Api, true, StatusClass::ServerError),
        ]
    );
    // A failed call cannot bring a new model name in (it would not even fit here).
    assert!(f.rec.0.contains(&Rec::LimitHit(Limit::UntrustedModel)));
    f.exchange(&bearer(completion("gpt-y", None, None, 2), &token));
    assert_eq!(f.completions()[2].model, "other");
    assert!(f.rec.0.contains(&Rec::LimitHit(Limit::MaxModels)));
    assert_eq!(f.tokens(|t| t.direction == TokenDirection::Input), 4);
    assert_eq!(
        f.tokens(|t| t.direction == TokenDirection::Output && t.source == TokenSource::Http),
        17
    );
    assert_eq!(f.first_tokens(), [("mock-gpt", 0.07)]);
}

/// A script calling Ollama's native API through Open WebUI's proxy with a copied session JWT:
/// its tokens come from the NDJSON stream's last line, and a request without `stream` streams.
#[test]
fn ollama_native_completions_count_tokens_and_stream_by_default() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    let mut streamed = bearer(completion("llama3.2", None, None, 0), &token);
    streamed.path = "/ollama/api/chat".into();
    streamed.request_fields.stream = None;
    streamed.response_fields = ResponseBodyFields {
        usage: Some(usage(26, 282)),
        ndjson: Some(StreamSummary {
            events: 3,
            done: true,
            first_event: Some(Timestamp::from_nanos(at(NOW).as_nanos() + 250_000_000)),
            last_event: None,
        }),
        ..Default::default()
    };
    f.exchange(&streamed);
    let mut whole = bearer(completion("llama3.2", None, None, 1), &token);
    whole.path = "/ollama/api/generate".into();
    whole.request_fields.stream = Some(false);
    whole.response_fields = ResponseBodyFields {
        json: true,
        usage: Some(usage(10, 5)),
        ..Default::default()
    };
    f.exchange(&whole);
    let completion = |stream| Comp {
        user: ALICE.into(),
        model: "llama3.2".into(),
        auth: Auth::Jwt,
        client: Client::Api,
        stream,
        status: StatusClass::Success,
    };
    assert_eq!(f.completions(), [&completion(true), &completion(false)]);
    let tokens = |direction| {
        f.tokens(|t| {
            t.user == ALICE
                && t.model == "llama3.2"
                && t.direction == direction
                && t.source == TokenSource::Http
        })
    };
    assert_eq!(
        (
            tokens(TokenDirection::Input),
            tokens(TokenDirection::Output)
        ),
        (36, 287)
    );
    assert_eq!(f.first_tokens(), [("llama3.2", 0.25)]);
}

fn ws_tokens(user: &str, model: &str, direction: TokenDirection) -> impl Fn(&Tok) -> bool {
    move |t| {
        t.user == user
            && t.model == model
            && t.direction == direction
            && t.source == TokenSource::Websocket
    }
}

#[test]
fn websocket_answer_joins_its_request_and_counts_once() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.open_socket(&token);
    let post = bearer(completion("mock-gpt", Some(SID), Some(MSG), 2), &token);
    f.exchange(&post);
    // Deferred: the task was accepted, the answer is not done yet.
    assert!(f.completions().is_empty());
    let sock = conn(56146);
    let delta = SocketEvent::FirstDelta {
        chat_id: None,
        message_id: MSG.into(),
        ts: Timestamp::from_nanos(at(NOW + 2).as_nanos() + 500_000_000),
    };
    f.socket(sock, &delta);
    f.socket(sock, &ws_usage(MSG, usage(6, 19), false, NOW + 3));
    f.socket(sock, &ws_usage(MSG, usage(6, 19), true, NOW + 3));
    assert_eq!(
        f.tokens(ws_tokens(ALICE, "mock-gpt", TokenDirection::Input)),
        6
    );
    assert_eq!(
        f.tokens(ws_tokens(ALICE, "mock-gpt", TokenDirection::Output)),
        19
    );
    assert_eq!(
        f.completions(),
        [&Comp {
            user: ALICE.into(),
            model: "mock-gpt".into(),
            auth: Auth::Jwt,
            client: Client::Webui,
            stream: true,
            status: StatusClass::Success,
        }]
    );
    assert_eq!(f.first_tokens(), [("mock-gpt", 0.5)]);
    assert_eq!(f.a.counters.duplicate_usage, 1);
}

#[test]
fn websocket_usage_before_its_request_waits_for_the_model() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.open_socket(&token);
    let sock = conn(56146);
    f.socket(sock, &ws_usage(MSG, usage(31, 19), true, NOW + 1));
    assert_eq!(f.tokens(|_| true), 0);
    f.exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    assert_eq!(f.tokens(|t| t.model == "mock-gpt" && t.user == ALICE), 50);
    let done: Vec<_> = f.completions().iter().map(|c| c.status).collect();
    assert_eq!(done, [StatusClass::Success]);
}

#[test]
fn unjoined_answer_is_credited_with_unknown_model_at_expiry() {
    let mut f = Fixture::with_secret();
    f.open_socket(&session_token(ALICE, NOW - 60, SECRET));
    f.socket(conn(56146), &ws_usage(MSG, usage(1, 2), true, NOW + 1));
    f.finish(at(NOW + 2));
    assert_eq!(f.tokens(|t| t.model == "unknown" && t.user == ALICE), 3);
    assert_eq!(f.a.counters.unjoined_answers, 1);
}

#[test]
fn webui_completion_without_done_settles_incomplete_when_socket_closes() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.open_socket(&token);
    f.exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    f.socket(conn(56146), &SocketEvent::Closed { ts: at(NOW + 5) });
    let settled: Vec<_> = f
        .completions()
        .iter()
        .map(|c| (c.client, c.status))
        .collect();
    assert_eq!(settled, [(Client::Webui, StatusClass::Incomplete)]);
}

#[test]
fn webui_completion_without_decoded_socket_counts_at_once() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    let counted: Vec<_> = f
        .completions()
        .iter()
        .map(|c| (c.client, c.status))
        .collect();
    assert_eq!(counted, [(Client::Webui, StatusClass::Success)]);
}

/// Open WebUI ignores a `user-join` whose token names no user: a forged join neither gives a
/// socket an identity nor takes its user's answers away.
#[test]
fn forged_user_join_changes_no_socket_user() {
    let mut f = Fixture::with_secret();
    let forged = session_token(ALICE, NOW - 60, b"nope");
    f.open_socket(&forged);
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    f.socket(conn(56146), &ws_usage(MSG, usage(6, 19), true, NOW + 3));
    // The upgrade carried no credential and the join was ignored: still anonymous.
    assert_eq!(
        f.tokens(|t| t.user == "anonymous" && t.source == TokenSource::Websocket),
        25
    );

    let mut f = Fixture::with_secret();
    f.open_socket(&token);
    let expired = session_token(ALICE, NOW - 60, SECRET).replace('.', ".x");
    let join = SocketEvent::UserJoin {
        token: Secret::new(expired.as_bytes()),
        ts: at(NOW + 1),
    };
    f.socket(conn(56146), &join);
    f.socket(conn(56146), &join);
    f.exchange(&bearer(
        completion("mock-gpt", Some(SID), Some(MSG), 2),
        &token,
    ));
    f.socket(conn(56146), &ws_usage(MSG, usage(6, 19), true, NOW + 3));
    assert_eq!(
        f.tokens(|t| t.user == ALICE && t.source == TokenSource::Websocket),
        25
    );
    assert_eq!(f.tokens(|t| t.user == "invalid"), 0);
    assert_eq!(f.a.counters.ignored_user_joins, 2);
}

/// 300 model names from requests Open WebUI refused (anonymous 401s, a forged token, a 404
/// for a model it does not have) leave the model table to the models it served.
#[test]
fn refused_requests_cannot_poison_the_model_table() {
    let config = SemanticsConfig {
        max_models: 3,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let token = session_token(ALICE, NOW - 60, SECRET);
    let forged = session_token(ALICE, NOW - 60, b"nope");
    for i in 0..300 {
        let mut junk = completion(&format!("junk-{i}"), None, None, 0);
        junk.status = Some([401, 404, 200][i % 3]);
        if i % 3 == 1 {
            junk = bearer(junk, &token);
        } else if i % 3 == 2 {
            junk = bearer(junk, &forged);
        }
        f.exchange(&junk);
    }
    assert_eq!(f.a.counters.untrusted_models, 300);
    for (dt, model) in [(1, "mock-gpt"), (2, "mock-claude"), (3, "mock-gpt")] {
        f.exchange(&streamed(bearer(completion(model, None, None, dt), &token)));
    }
    let models: Vec<_> = f.completions().iter().map(|c| c.model.clone()).collect();
    assert_eq!(models.iter().filter(|m| *m == "other").count(), 300);
    assert_eq!(models[300..], ["mock-gpt", "mock-claude", "mock-gpt"]);
    assert!(!f.rec.0.contains(&Rec::LimitHit(Limit::MaxModels)));
}

#[test]
fn client_kind_for_other_requests_follows_sec_fetch() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    let mut browser = cookie(request("/api/config", 200, 0), &token);
    browser
        .request_headers
        .set(crate::http::exchange::RequestField::SecFetchMode, "cors");
    browser.request_headers.set(
        crate::http::exchange::RequestField::UserAgent,
        "Mozilla/5.0",
    );
    f.exchange(&browser);
    f.exchange(&bearer(request("/api/config", 200, 0), &token));
    let clients: Vec<_> = f
        .requests()
        .map(|r| (r.user.as_str(), r.client, r.signals))
        .collect();
    let browser_signals = Signals::default()
        .with(Signal::SecFetch, true)
        .with(Signal::BrowserUserAgent, true);
    assert_eq!(
        clients,
        [
            (ALICE, Client::Webui, browser_signals),
            (ALICE, Client::Api, Signals::default()),
        ]
    );
}

#[test]
fn websocket_upgrade_with_origin_is_webui() {
    let mut f = Fixture::with_secret();
    let mut up = request("/ws/socket.io/", 101, 0);
    up.upgraded = true;
    up.request_headers
        .set(crate::http::exchange::RequestField::Upgrade, "websocket");
    up.request_headers.set(
        crate::http::exchange::RequestField::Origin,
        "http://127.0.0.1:8080",
    );
    f.exchange(&up);
    let r: Vec<_> = f
        .requests()
        .map(|r| (r.user.as_str(), r.client, r.auth, r.route, r.status))
        .collect();
    assert_eq!(
        r,
        [(
            "anonymous",
            Client::Webui,
            Auth::None,
            "/ws/socket.io/",
            Some(101)
        )]
    );
}

/// Answers without token counts are concluded where their tokens would have been: per user,
/// model and source, once each, whichever order request and answer arrive in.
#[test]
fn completions_without_token_counts_are_counted_per_user_model_and_source() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    // HTTP: a 2xx answer that arrived whole without usage counts. One with usage, a failed
    // one, a stream the client broke off, a body the monitor cut, an answer that was neither
    // JSON nor a stream, and Ollama's model-load reply do not.
    let whole = |dt| {
        let mut ex = bearer(completion("mock-gpt", None, None, dt), &token);
        ex.response_fields.sse = Some(StreamSummary {
            events: 9,
            done: true,
            ..Default::default()
        });
        ex
    };
    f.exchange(&whole(0));
    let mut counted = whole(1);
    counted.response_fields.usage = Some(usage(1, 2));
    f.exchange(&counted);
    let mut failed = whole(2);
    failed.status = Some(500);
    f.exchange(&failed);
    let mut broken_off = whole(2);
    if let Some(r) = broken_off.response.as_mut() {
        r.complete = false;
    }
    f.exchange(&broken_off);
    let mut capped = whole(2);
    capped.anomalies.push(Anomaly::DecodeCapped);
    f.exchange(&capped);
    let mut opaque = whole(2);
    opaque.response_fields.sse = None;
    f.exchange(&opaque);
    let mut load = bearer(completion("mock-gpt", None, None, 2), &token);
    load.path = "/ollama/api/chat".into();
    load.response_fields.json = true;
    load.response_fields.model_load = true;
    f.exchange(&load);

    // The web UI: its HTTP reply only accepts the task (never counted here); the answer's
    // `done` on the socket without any usage is.
    f.open_socket(&token);
    let sock = conn(56146);
    let task = |model, message_id, dt| {
        let mut ex = bearer(completion(model, Some(SID), Some(message_id), dt), &token);
        ex.response_fields.has_task_ids = true;
        ex
    };
    f.exchange(&task("mock-gpt", "m1", 3));
    f.socket(sock, &ws_done("m1", NOW + 4));
    f.socket(sock, &ws_done("m1", NOW + 4));
    // Done before its request: counted once the request names the model.
    f.socket(sock, &ws_done("m2", NOW + 5));
    let websocket = |f: &Fixture| {
        f.without_usage()
            .iter()
            .filter(|w| w.2 == TokenSource::Websocket)
            .count()
    };
    assert_eq!(websocket(&f), 1);
    f.exchange(&task("gpt-x", "m2", 6));
    // Done with usage: its tokens are known.
    f.exchange(&task("mock-gpt", "m3", 7));
    f.socket(sock, &ws_usage("m3", usage(3, 4), true, NOW + 8));
    f.socket(sock, &ws_done("m3", NOW + 8));
    // Done without usage and never joined to a request: model unknown at expiry.
    f.socket(sock, &ws_done("m4", NOW + 9));
    f.finish(at(NOW + 10));

    assert_eq!(
        f.without_usage(),
        [
            (ALICE, "mock-gpt", TokenSource::Http),
            (ALICE, "mock-gpt", TokenSource::Websocket),
            (ALICE, "gpt-x", TokenSource::Websocket),
            (ALICE, "unknown", TokenSource::Websocket),
        ]
    );
    assert_eq!(
        f.tokens(|t| t.model == "mock-gpt" && t.source == TokenSource::Websocket),
        7
    );
}

/// A script embedding documents through Open WebUI spends input tokens without any chat
/// completion: they count under the embedding model, with no output fact; a failed call and
/// one without counts add nothing.
#[test]
fn embedding_tokens_count_as_input_of_their_model() {
    let mut f = Fixture::with_secret();
    let token = session_token(ALICE, NOW - 60, SECRET);
    let embed = |path: &str, model: &str, status, usage| {
        let mut ex = bearer(request(path, status, 0), &token);
        ex.method = "POST".into();
        ex.request_fields.model = Some(model.into());
        ex.response_fields.json = true;
        ex.response_fields.usage = usage;
        ex
    };
    let openai_usage = Usage::io(42, 0);
    f.exchange(&embed(
        "/api/embeddings",
        "text-embedding-3-small",
        200,
        Some(openai_usage),
    ));
    f.exchange(&embed(
        "/ollama/api/embed",
        "nomic-embed-text",
        200,
        Some(usage(12, 0)),
    ));
    f.exchange(&embed(
        "/api/embeddings",
        "text-embedding-3-small",
        500,
        Some(openai_usage),
    ));
    f.exchange(&embed(
        "/ollama/api/embeddings",
        "nomic-embed-text",
        200,
        None,
    ));
    let input = |model: &str| {
        f.tokens(|t| {
            t.user == ALICE
                && t.model == model
                && t.direction == TokenDirection::Input
                && t.source == TokenSource::Http
        })
    };
    assert_eq!(input("text-embedding-3-small"), 42);
    assert_eq!(input("nomic-embed-text"), 12);
    assert_eq!(f.tokens(|t| t.direction == TokenDirection::Output), 0);
    assert!(!f.rec.0.iter().any(|r| matches!(
        r,
        Rec::Tokens(Tok {
            direction: TokenDirection::Output,
            ..
        })
    )));
    assert!(f.completions().is_empty());
    assert!(f.without_usage().is_empty());
}

/// What a model call's closing facts carry: the answer's whole usage after its tokens, then
/// one `ModelCall` per exchange to a model route — failed calls and embeddings included — as
/// the exchange's last fact; a web-UI answer that goes to its socket has no HTTP duration.
#[test]
fn usage_and_model_call_close_each_model_exchange() {
    type Seen = (
        &'static str,
        String,
        ApiKind,
        Option<u16>,
        Option<f64>,
        Option<Usage>,
    );
    let mut a = Attributor::new(SemanticsConfig::default(), Some(&JwtSecret::new(SECRET)));
    let token = session_token(ALICE, NOW - 60, SECRET);
    let mut seen: Vec<Seen> = Vec::new();
    let mut sink = |fact: Fact<'_>| match fact {
        Fact::Request { .. } => {
            seen.push(("request", String::new(), ApiKind::Other, None, None, None))
        }
        Fact::Usage {
            model, api, usage, ..
        } => seen.push(("usage", model.name.into(), api, None, None, Some(usage))),
        Fact::ModelCall {
            model,
            api,
            status,
            duration,
            usage,
            ..
        } => seen.push(("call", model.name.into(), api, status, duration, usage)),
        _ => {}
    };
    let mut answered = streamed(bearer(completion("mock-gpt", None, None, 0), &token));
    answered.response.as_mut().unwrap().last_byte = at(NOW + 2);
    a.on_exchange(&answered, &mut sink);
    let mut failed = bearer(completion("mock-gpt", None, None, 3), &token);
    failed.status = Some(502);
    a.on_exchange(&failed, &mut sink);
    let mut embed = bearer(request("/api/embeddings", 200, 4), &token);
    embed.method = "POST".into();
    embed.request_fields.model = Some("mock-embed".into());
    embed.response_fields.usage = Some(Usage::io(9, 0));
    a.on_exchange(&embed, &mut sink);
    let webui = cookie(completion("mock-gpt", Some(SID), Some(MSG), 5), &token);
    a.on_exchange(&webui, &mut sink);
    let chat = ApiKind::ChatCompletion;
    let emb = ApiKind::Embeddings;
    let none = ApiKind::Other;
    assert_eq!(
        seen,
        [
            ("request", String::new(), none, None, None, None),
            (
                "usage",
                "mock-gpt".into(),
                chat,
                None,
                None,
                Some(usage(4, 17))
            ),
            (
                "call",
                "mock-gpt".into(),
                chat,
                Some(200),
                Some(2.0),
                Some(usage(4, 17))
            ),
            ("request", String::new(), none, None, None, None),
            ("call", "mock-gpt".into(), chat, Some(502), Some(0.0), None),
            ("request", String::new(), none, None, None, None),
            (
                "usage",
                "mock-embed".into(),
                emb,
                None,
                None,
                Some(usage(9, 0))
            ),
            (
                "call",
                "mock-embed".into(),
                emb,
                Some(200),
                Some(0.0),
                Some(usage(9, 0))
            ),
            ("request", String::new(), none, None, None, None),
            ("call", "mock-gpt".into(), chat, Some(200), None, None),
        ]
    );
}

/// Models unused for the user TTL leave the table, each announced before the sweep's tick,
/// and their slots take new names: with room for two models, a third gets its own label once
/// an old one has retired instead of falling into `other` for good.
#[test]
fn idle_models_retire_and_free_their_slot() {
    let config = SemanticsConfig {
        max_models: 2,
        user_ttl_secs: 100,
        pending_ttl_secs: 50,
        ..Default::default()
    };
    let mut f = Fixture::new(config, true);
    let token = session_token(ALICE, NOW - 60, SECRET);
    f.exchange(&bearer(completion("old-model", None, None, 0), &token));
    f.exchange(&bearer(completion("kept-model", None, None, 90), &token));
    f.exchange(&bearer(completion("third-model", None, None, 95), &token));
    // 110 s on: old-model has been idle for 110 s, kept-model for 20 s.
    f.exchange(&bearer(completion("kept-model", None, None, 110), &token));
    f.exchange(&bearer(completion("third-model", None, None, 111), &token));
    let models: Vec<&str> = f.completions().iter().map(|c| c.model.as_str()).collect();
    assert_eq!(
        models,
        [
            "old-model",
            "kept-model",
            "other",
            "kept-model",
            "third-model"
        ]
    );
    let retired: Vec<&Rec> = f
        .rec
        .0
        .iter()
        .filter(|r| matches!(r, Rec::ModelRetired(_) | Rec::Tick))
        .collect();
    assert!(
        retired
            .windows(2)
            .any(|w| w[0] == &Rec::ModelRetired("old-model".into()) && w[1] == &Rec::Tick),
        "{retired:?}"
    );
    assert_eq!(
        retired
            .iter()
            .filter(|r| matches!(r, Rec::ModelRetired(_)))
            .count(),
        1
    );
    assert_eq!(f.a.model_count(), 2);
}
