use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::{
    metrics::util::render,
    openwebui::{
        Special,
        fact::{Model, Signals},
    },
    segment::ConnectionKey,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn untrusted_peer_is_the_client_and_its_headers_are_ignored() {
    let got = client_address(
        ip("198.51.100.4"),
        Some("203.0.113.7"),
        Some("203.0.113.8"),
        &nets(&["10.213.0.1/32"]),
    );
    assert_eq!(got, (ip("198.51.100.4"), AddressSource::Peer));
    // No trusted proxy configured at all: the same.
    let got = client_address(ip("10.213.0.1"), Some("203.0.113.7"), None, &[]);
    assert_eq!(got, (ip("10.213.0.1"), AddressSource::Peer));
}

#[test]
fn trusted_peer_forwarded_for_is_walked_from_the_right() {
    let trusted = nets(&["10.213.0.1/32", "10.0.0.0/8"]);
    // The client prepended a spoofed entry; nginx appended the address it saw.
    let got = client_address(
        ip("10.213.0.1"),
        Some("6.6.6.6, 203.0.113.7"),
        None,
        &trusted,
    );
    assert_eq!(got, (ip("203.0.113.7"), AddressSource::XForwardedFor));
    // Two proxies: the inner one's address is skipped, spoofed entries left of the client too.
    let got = client_address(
        ip("10.213.0.1"),
        Some("1.1.1.1,6.6.6.6 , 203.0.113.9,10.4.0.2"),
        Some("10.4.0.2"),
        &trusted,
    );
    assert_eq!(got, (ip("203.0.113.9"), AddressSource::XForwardedFor));
    // Every entry trusted: the leftmost.
    let got = client_address(ip("10.213.0.1"), Some("10.1.1.1, 10.2.2.2"), None, &trusted);
    assert_eq!(got, (ip("10.1.1.1"), AddressSource::XForwardedFor));
    // Not an address: the walk stops, the hop that wrote it is the client.
    let got = client_address(
        ip("10.213.0.1"),
        Some("203.0.113.1, unknown, 10.9.9.9"),
        None,
        &trusted,
    );
    assert_eq!(got, (ip("10.9.9.9"), AddressSource::XForwardedFor));
    let got = client_address(ip("10.213.0.1"), Some("_hidden"), None, &trusted);
    assert_eq!(got, (ip("10.213.0.1"), AddressSource::Peer));
    // With ports.
    let got = client_address(ip("10.213.0.1"), Some("203.0.113.7:51000"), None, &trusted);
    assert_eq!(got, (ip("203.0.113.7"), AddressSource::XForwardedFor));
}

#[test]
fn trusted_peer_without_forwarded_for_uses_x_real_ip() {
    let trusted = nets(&["10.213.0.1/32"]);
    let got = client_address(ip("10.213.0.1"), None, Some(" 203.0.113.5 "), &trusted);
    assert_eq!(got, (ip("203.0.113.5"), AddressSource::XRealIp));
    let got = client_address(ip("10.213.0.1"), Some(""), Some("203.0.113.5"), &trusted);
    assert_eq!(got, (ip("203.0.113.5"), AddressSource::XRealIp));
    let got = client_address(ip("10.213.0.1"), None, Some("not-an-ip"), &trusted);
    assert_eq!(got, (ip("10.213.0.1"), AddressSource::Peer));
}

#[test]
fn ipv6_peers_and_entries() {
    let trusted = nets(&["fd00:213::/64", "10.213.0.1/32"]);
    let got = client_address(
        ip("fd00:213::1"),
        Some("2001:db8::66, [2001:db8::7]:443, fd00:213::2"),
        None,
        &trusted,
    );
    assert_eq!(got, (ip("2001:db8::7"), AddressSource::XForwardedFor));
    let got = client_address(ip("fd00:214::1"), Some("2001:db8::7"), None, &trusted);
    assert_eq!(got, (ip("fd00:214::1"), AddressSource::Peer));
    // An IPv4-mapped entry is its IPv4 address (and so are mapped peers, see the sink).
    let got = client_address(ip("10.213.0.1"), Some("::ffff:203.0.113.7"), None, &trusted);
    assert_eq!(got, (ip("203.0.113.7"), AddressSource::XForwardedFor));
}

const ALICE: &str = "0b8c3f9e-7a51-4f60-9d2e-3c1a5b7e9f20";

struct Call<'a> {
    user: UserRef<'a>,
    auth: Auth,
    client: Client,
    peer: &'a str,
    forwarded_for: Option<&'a str>,
    real_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    at: u64,
    model: &'a str,
    api: ApiKind,
    route: &'static str,
    usage: Option<Usage>,
    /// The user the model call names (`None`: the request's).
    call_user: Option<UserRef<'a>>,
}

fn call<'a>() -> Call<'a> {
    Call {
        user: UserRef::Id(ALICE),
        auth: Auth::Jwt,
        client: Client::Api,
        peer: "10.213.0.1:40000",
        forwarded_for: Some("6.6.6.6, 10.213.9.9"),
        real_ip: Some("10.213.9.9"),
        user_agent: Some("Anthropic/Python 0.86.0"),
        at: 1_796_642_355_250_000_000,
        model: "mock-gpt",
        api: ApiKind::Messages,
        route: "/api/v1/messages",
        usage: Some(Usage {
            input: 33,
            output: 12,
            cached_input: 5,
            reasoning: 0,
            cache_write_input: 3,
        }),
        call_user: None,
    }
}

/// Feeds one exchange's first and last facts (and a fact between them, as attribution does).
fn feed(sink: &mut AuditSink, c: &Call<'_>) {
    let peer: SocketAddr = c.peer.parse().unwrap();
    sink.fact(Fact::Request {
        user: c.user,
        auth: c.auth,
        result: AuthResult::Verified,
        client: c.client,
        signals: Signals::default(),
        method: "POST",
        route: c.route,
        api: c.api,
        status: Some(200),
        duration: Some(0.25),
        request_bytes: 900,
        response_bytes: 700,
        connection: ConnectionKey {
            client: peer,
            server: "10.213.0.2:8080".parse().unwrap(),
        },
        user_agent: c.user_agent,
        forwarded_for: c.forwarded_for,
        real_ip: c.real_ip,
        at: Timestamp::from_nanos(c.at),
    });
    let model = Model {
        id: 2,
        name: c.model,
    };
    sink.fact(Fact::UserSeen {
        user: c.user,
        at: Timestamp::from_nanos(c.at),
    });
    sink.fact(Fact::ModelCall {
        user: c.call_user.unwrap_or(c.user),
        model,
        api: c.api,
        status: Some(200),
        duration: Some(0.25),
        usage: c.usage,
    });
}

fn sink_with(config: AuditConfig) -> (AuditSink, Registry) {
    let registry = Registry::new();
    let semantics = SemanticsConfig {
        user_ttl_secs: 600,
        ..SemanticsConfig::default()
    };
    (
        AuditSink::new(&config, &semantics, &registry).unwrap(),
        registry,
    )
}

fn trusting_nginx() -> AuditConfig {
    AuditConfig {
        trusted_proxies: nets(&["10.213.0.1/32"]),
        ..AuditConfig::default()
    }
}

#[test]
fn session_jwt_from_a_script_is_one_event_with_exactly_these_fields() {
    let (mut sink, _registry) = sink_with(trusting_nginx());
    feed(&mut sink, &call());
    let events: Vec<AuditEvent> = sink.drain().collect();
    assert_eq!(events.len(), 1);
    let line = serde_json::to_string(&events[0]).unwrap();
    assert_eq!(
        line,
        concat!(
            r#"{"time":"2026-12-07T11:19:15.25Z","user":"0b8c3f9e-7a51-4f60-9d2e-3c1a5b7e9f20","#,
            r#""auth":"jwt","auth_result":"verified","route":"/api/v1/messages","api":"messages","#,
            r#""model":"mock-gpt","status":200,"#,
            r#""tokens":{"input":33,"output":12,"cached_input":5,"reasoning":0},"#,
            r#""user_agent":"Anthropic/Python 0.86.0","client_address":"10.213.9.9","#,
            r#""client_address_source":"x_forwarded_for","client_address_from_header":true,"#,
            r#""peer":"10.213.0.1"}"#
        )
    );
    assert_eq!(sink.queued(), 0);
}

#[test]
fn cookie_counts_api_key_and_web_ui_do_not() {
    let (mut sink, _registry) = sink_with(trusting_nginx());
    feed(
        &mut sink,
        &Call {
            auth: Auth::Cookie,
            usage: None,
            forwarded_for: None,
            real_ip: None,
            user_agent: None,
            ..call()
        },
    );
    feed(
        &mut sink,
        &Call {
            auth: Auth::ApiKey,
            ..call()
        },
    );
    feed(
        &mut sink,
        &Call {
            client: Client::Webui,
            ..call()
        },
    );
    feed(
        &mut sink,
        &Call {
            auth: Auth::None,
            user: UserRef::Special(Special::Anonymous),
            ..call()
        },
    );
    let events: Vec<AuditEvent> = sink.drain().collect();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.auth, "cookie");
    assert_eq!(e.tokens, None);
    assert_eq!(e.user_agent, None);
    assert_eq!(
        (e.client_address, e.client_address_source, e.peer),
        (ip("10.213.0.1"), AddressSource::Peer, ip("10.213.0.1"))
    );
    assert!(!e.client_address_from_header);
}

#[test]
fn a_request_without_a_model_call_is_no_event() {
    let (mut sink, _registry) = sink_with(trusting_nginx());
    let c = call();
    feed(&mut sink, &c);
    // A session-JWT request to a route that calls no model: Request only. The next exchange's
    // ModelCall (an API key's) must not turn it into an event.
    sink.fact(Fact::Request {
        user: c.user,
        auth: Auth::Jwt,
        result: AuthResult::Verified,
        client: Client::Api,
        signals: Signals::default(),
        method: "GET",
        route: "/api/models",
        api: ApiKind::Other,
        status: Some(200),
        duration: None,
        request_bytes: 1,
        response_bytes: 1,
        connection: ConnectionKey {
            client: "10.213.0.1:40001".parse().unwrap(),
            server: "10.213.0.2:8080".parse().unwrap(),
        },
        user_agent: None,
        forwarded_for: None,
        real_ip: None,
        at: Timestamp::from_secs(1_796_642_356),
    });
    feed(
        &mut sink,
        &Call {
            auth: Auth::ApiKey,
            ..call()
        },
    );
    assert_eq!(sink.drain().count(), 1);
}

#[test]
fn a_model_call_of_another_user_is_not_the_kept_requests() {
    let (mut sink, _registry) = sink_with(trusting_nginx());
    // Alice's request, then a model call naming Bob: not her exchange, so no event at all.
    feed(
        &mut sink,
        &Call {
            call_user: Some(UserRef::Id("bob")),
            ..call()
        },
    );
    // A cut id still matches the call of the id it was cut from.
    let long = "y".repeat(200);
    feed(
        &mut sink,
        &Call {
            user: UserRef::Id(&long),
            ..call()
        },
    );
    let users: Vec<String> = sink.drain().map(|e| e.user).collect();
    assert_eq!(users, ["y".repeat(128)]);
}

#[test]
fn untrusted_peer_ipv6_and_mapped_addresses() {
    let (mut sink, _registry) = sink_with(AuditConfig {
        trusted_proxies: nets(&["fd00:213::1/128", "10.213.0.1/32"]),
        ..AuditConfig::default()
    });
    feed(
        &mut sink,
        &Call {
            peer: "[fd00:213::1]:40000",
            forwarded_for: Some("2001:db8::9"),
            ..call()
        },
    );
    feed(
        &mut sink,
        &Call {
            peer: "[fd00:213::5]:40000",
            forwarded_for: Some("2001:db8::9"),
            ..call()
        },
    );
    feed(
        &mut sink,
        &Call {
            peer: "[::ffff:10.213.0.1]:40000",
            forwarded_for: Some("203.0.113.70"),
            ..call()
        },
    );
    let got: Vec<(IpAddr, IpAddr)> = sink.drain().map(|e| (e.client_address, e.peer)).collect();
    assert_eq!(
        got,
        [
            (ip("2001:db8::9"), ip("fd00:213::1")),
            (ip("fd00:213::5"), ip("fd00:213::5")),
            (ip("203.0.113.70"), ip("10.213.0.1")),
        ]
    );
}

#[test]
fn user_agent_is_cut_and_no_credential_reaches_the_event() {
    let (mut sink, _registry) = sink_with(AuditConfig {
        max_user_agent_len: 10,
        ..trusting_nginx()
    });
    feed(
        &mut sink,
        &Call {
            user_agent: Some("curlé/8.14.1 with a long tail"),
            ..call()
        },
    );
    let e = sink.drain().next().unwrap();
    // `é` spans bytes 4–5 and 10 falls after it; the cut lands on a character boundary.
    assert_eq!(e.user_agent.as_deref(), Some("curlé/8.1"));
    // The serialized event has exactly these keys, none of which can hold a credential or body.
    let value = serde_json::to_value(&e).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        [
            "api",
            "auth",
            "auth_result",
            "client_address",
            "client_address_from_header",
            "client_address_source",
            "model",
            "peer",
            "route",
            "status",
            "time",
            "tokens",
            "user",
            "user_agent"
        ]
    );
}

#[test]
fn full_queue_drops_and_counts() {
    let (mut sink, registry) = sink_with(AuditConfig {
        max_queue: 2,
        ..trusting_nginx()
    });
    for i in 0..5 {
        feed(
            &mut sink,
            &Call {
                at: 1_796_642_355_000_000_000 + i,
                ..call()
            },
        );
    }
    assert_eq!(
        sink.counters,
        AuditCounters {
            events: 5,
            dropped: 3
        }
    );
    assert_eq!(sink.drain().count(), 2);
    let text = render(&registry);
    assert!(text.contains("webui_monitor_audit_limit_hits_total{limit=\"max_queue\"} 3\n"));
    assert!(text.contains("webui_monitor_audit_events_total 5\n"));
    assert!(text.contains(
        "openwebui_scripted_session_calls_total{api=\"messages\",auth=\"jwt\",user=\"0b8c3f9e-7a51-4f60-9d2e-3c1a5b7e9f20\"} 5\n"
    ));
}

/// Without kept events, the same calls give the same counters, drops and exposition, and no
/// event; the count of waiting events starts over at each drain as the queue would.
#[test]
fn events_not_kept_count_and_show_the_same() {
    let run = |keep: bool| {
        let (mut sink, registry) = sink_with(AuditConfig {
            max_queue: 2,
            ..trusting_nginx()
        });
        sink.keep_events(keep);
        let mut drained = Vec::new();
        for i in 0..7 {
            feed(
                &mut sink,
                &Call {
                    at: 1_796_642_355_000_000_000 + i,
                    ..call()
                },
            );
            if i == 3 {
                assert_eq!(sink.queued(), 2);
                drained.push(sink.drain().count());
            }
        }
        assert_eq!(sink.queued(), 2);
        drained.push(sink.drain().count());
        (sink.counters.clone(), drained, render(&registry))
    };
    let (kept, kept_drained, kept_text) = run(true);
    let (counted, counted_drained, counted_text) = run(false);
    let counters = AuditCounters {
        events: 7,
        dropped: 3,
    };
    assert_eq!((kept, kept_drained), (counters.clone(), vec![2, 2]));
    assert_eq!((counted, counted_drained), (counters, vec![0, 0]));
    assert_eq!(counted_text, kept_text);
    assert!(kept_text.contains("webui_monitor_audit_limit_hits_total{limit=\"max_queue\"} 3\n"));
}

#[test]
fn disabled_records_nothing() {
    let (mut sink, registry) = sink_with(AuditConfig {
        enabled: false,
        ..trusting_nginx()
    });
    feed(&mut sink, &call());
    assert_eq!(sink.drain().count(), 0);
    assert!(!render(&registry).contains("openwebui_scripted_session_calls_total{"));
}

/// The lines of the gauge family, sorted.
fn gauge_lines(registry: &Registry) -> Vec<String> {
    let mut lines: Vec<String> = render(registry)
        .lines()
        .filter(|l| l.starts_with("openwebui_scripted_session_last_timestamp_seconds{"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn one_gauge_series_per_user_with_the_latest_labels() {
    let (mut sink, registry) = sink_with(trusting_nginx());
    feed(&mut sink, &call());
    feed(
        &mut sink,
        &Call {
            at: 1_796_642_360_000_000_000,
            api: ApiKind::Responses,
            route: "/openai/responses",
            forwarded_for: Some("10.213.9.10"),
            ..call()
        },
    );
    // An older event (another connection, delivered late) counts but does not replace it.
    feed(
        &mut sink,
        &Call {
            at: 1_796_642_358_000_000_000,
            auth: Auth::Cookie,
            ..call()
        },
    );
    feed(
        &mut sink,
        &Call {
            user: UserRef::Id("bob"),
            at: 1_796_642_361_000_000_000,
            ..call()
        },
    );
    assert_eq!(
        gauge_lines(&registry),
        [
            "openwebui_scripted_session_last_timestamp_seconds{api=\"messages\",auth=\"jwt\",client_address=\"10.213.9.9\",model=\"mock-gpt\",user=\"bob\"} 1796642361",
            "openwebui_scripted_session_last_timestamp_seconds{api=\"responses\",auth=\"jwt\",client_address=\"10.213.9.10\",model=\"mock-gpt\",user=\"0b8c3f9e-7a51-4f60-9d2e-3c1a5b7e9f20\"} 1796642360",
        ]
    );
    let text = render(&registry);
    for line in [
        "openwebui_scripted_session_calls_total{api=\"messages\",auth=\"cookie\",user=\"0b8c3f9e-7a51-4f60-9d2e-3c1a5b7e9f20\"} 1\n",
        "openwebui_scripted_session_calls_total{api=\"messages\",auth=\"jwt\",user=\"0b8c3f9e-7a51-4f60-9d2e-3c1a5b7e9f20\"} 1\n",
        "openwebui_scripted_session_calls_total{api=\"responses\",auth=\"jwt\",user=\"0b8c3f9e-7a51-4f60-9d2e-3c1a5b7e9f20\"} 1\n",
        "openwebui_scripted_session_calls_total{api=\"messages\",auth=\"jwt\",user=\"bob\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    // Bob idle for the TTL (600 s) expires; Alice, active 1 s later, does not yet.
    sink.fact(Fact::Tick {
        now: Timestamp::from_secs(1_796_642_960),
    });
    assert_eq!(gauge_lines(&registry).len(), 1);
    sink.fact(Fact::Tick {
        now: Timestamp::from_secs(1_796_642_961),
    });
    assert_eq!(gauge_lines(&registry), Vec::<String>::new());
    let text = render(&registry);
    assert!(!text.contains("openwebui_scripted_session_calls_total{"));
    assert!(text.contains("webui_monitor_audit_users_evicted_total 2\n"));
}

#[test]
fn users_beyond_the_cap_and_overlong_ids_get_no_series() {
    let (mut sink, registry) = sink_with(AuditConfig {
        max_users: 1,
        ..trusting_nginx()
    });
    feed(&mut sink, &call());
    feed(
        &mut sink,
        &Call {
            user: UserRef::Id("bob"),
            ..call()
        },
    );
    let long = "x".repeat(200);
    feed(
        &mut sink,
        &Call {
            user: UserRef::Id(&long),
            ..call()
        },
    );
    // Every call is still an event (the long id cut to 128 bytes).
    let users: Vec<String> = sink.drain().map(|e| e.user).collect();
    assert_eq!(users, [ALICE.to_owned(), "bob".to_owned(), "x".repeat(128)]);
    assert_eq!(gauge_lines(&registry).len(), 1);
    let text = render(&registry);
    assert!(text.contains("webui_monitor_audit_limit_hits_total{limit=\"max_users\"} 1\n"));
    assert!(text.contains("webui_monitor_audit_limit_hits_total{limit=\"max_user_id_len\"} 1\n"));
}

#[test]
fn rfc3339_in_utc() {
    assert_eq!(
        rfc3339(Timestamp::from_secs(1_796_642_355)),
        "2026-12-07T11:19:15Z"
    );
    assert_eq!(
        rfc3339(Timestamp::from_nanos(1_796_642_355_000_001_000)),
        "2026-12-07T11:19:15.000001Z"
    );
}

#[test]
fn reconfigure_applies_trusted_proxies_and_the_switch() {
    let (mut sink, _registry) = sink_with(AuditConfig::default());
    feed(&mut sink, &call());
    let semantics = SemanticsConfig::default();
    sink.reconfigure(&trusting_nginx(), &semantics);
    feed(&mut sink, &call());
    sink.reconfigure(
        &AuditConfig {
            enabled: false,
            ..trusting_nginx()
        },
        &semantics,
    );
    feed(&mut sink, &call());
    let got: Vec<(IpAddr, AddressSource)> = sink
        .drain()
        .map(|e| (e.client_address, e.client_address_source))
        .collect();
    assert_eq!(
        got,
        [
            (ip("10.213.0.1"), AddressSource::Peer),
            (ip("10.213.9.9"), AddressSource::XForwardedFor),
        ]
    );
}
