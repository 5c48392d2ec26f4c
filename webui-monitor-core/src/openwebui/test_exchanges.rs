//! Hand-built exchanges and socket events for the attribution tests and the metrics sink's.
use std::{net::SocketAddr, sync::Arc};

pub(crate) use super::jwt::tests::{ALICE, NOW, SECRET, session_token};
use super::{
    Attributor, FactSink,
    apikey::{Directory, UserRecord},
};
use crate::{
    http::{
        Exchange,
        exchange::{MessageStats, RequestBodyFields, ResponseBodyFields, StreamSummary},
    },
    secret::Secret,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
    websocket::SocketEvent,
};

pub(crate) const BOB: &str = "11111111-2222-4333-8444-555555555555";
pub(crate) const KEY: &str = "sk-b2f36db1e8f4423697d7fa73f0ac0987";
pub(crate) const SID: &str = "ra3UWfHOjscDF_mPAAAH";
pub(crate) const MSG: &str = "1036e29f-eb1d-4db1-9418-3fc4f3074356";

pub(crate) fn conn(port: u16) -> ConnectionKey {
    ConnectionKey {
        client: SocketAddr::from(([10, 0, 0, 1], port)),
        server: SocketAddr::from(([10, 0, 0, 2], 8080)),
    }
}

pub(crate) fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// A GET at `NOW + dt` seconds, 100-byte request, 1000-byte response.
pub(crate) fn request(path: &str, status: u16, dt: u64) -> Exchange {
    Exchange {
        connection: conn(40000),
        sequence: 0,
        method: "GET".into(),
        path: path.into(),
        has_query: false,
        status: Some(status),
        request: MessageStats {
            header_bytes: 100,
            first_byte: at(NOW + dt),
            last_byte: at(NOW + dt),
            complete: true,
            ..Default::default()
        },
        response: Some(MessageStats {
            header_bytes: 200,
            body_wire_bytes: 800,
            first_byte: at(NOW + dt),
            last_byte: at(NOW + dt),
            complete: true,
            ..Default::default()
        }),
        request_headers: Default::default(),
        response_headers: Default::default(),
        request_fields: Default::default(),
        response_fields: Default::default(),
        upgraded: false,
        anomalies: Vec::new(),
    }
}

pub(crate) fn bearer(mut ex: Exchange, value: &str) -> Exchange {
    ex.request_headers.set(
        crate::http::exchange::RequestField::Authorization,
        format!("Bearer {value}"),
    );
    ex
}

pub(crate) fn cookie(mut ex: Exchange, value: &str) -> Exchange {
    ex.request_headers
        .set(crate::http::exchange::RequestField::CookieToken, value);
    ex
}

/// A chat completion POST; `session_id` makes it a web-UI one.
pub(crate) fn completion(
    model: &str,
    session_id: Option<&str>,
    message_id: Option<&str>,
    dt: u64,
) -> Exchange {
    let mut ex = request("/api/chat/completions", 200, dt);
    ex.method = "POST".into();
    ex.request_fields = RequestBodyFields {
        json: true,
        model: Some(model.into()),
        stream: Some(true),
        session_id: session_id.map(|s| Some(s.into())),
        chat_id: None,
        id: message_id.map(Into::into),
        has_messages: session_id.is_none(),
    };
    ex
}

/// `ex` answered as a 21-event stream whose first event came 70 ms after the request, with
/// usage 4 in, 17 out.
pub(crate) fn streamed(mut ex: Exchange) -> Exchange {
    ex.response_fields = ResponseBodyFields {
        usage: Some(usage(4, 17)),
        sse: Some(StreamSummary {
            events: 21,
            done: true,
            first_event: Some(Timestamp::from_nanos(at(NOW).as_nanos() + 70_000_000)),
            last_event: None,
        }),
        ..Default::default()
    };
    ex
}

pub(crate) fn usage(prompt: u64, completion: u64) -> Usage {
    Usage::io(prompt, completion)
}

pub(crate) fn directory() -> Arc<Directory> {
    let mut d = Directory::default();
    d.insert_key(KEY.as_bytes(), ALICE);
    d.insert_user(
        ALICE,
        UserRecord {
            name: "Alice".into(),
            email: "alice@example.com".into(),
            role: "user".into(),
        },
    );
    Arc::new(d)
}

/// The browser's socket: upgrade, `40{sid}`, `user-join` with `token`.
pub(crate) fn open_socket(a: &mut Attributor, sink: &mut impl FactSink, token: &str) {
    let mut up = request("/ws/socket.io/", 101, 0);
    up.connection = conn(56146);
    up.upgraded = true;
    a.on_exchange(&up, sink);
    let sock = conn(56146);
    let connected = SocketEvent::Connected {
        sid: SID.into(),
        ts: at(NOW),
    };
    a.on_socket(sock, &connected, sink);
    let token = Secret::new(token.as_bytes());
    a.on_socket(sock, &SocketEvent::UserJoin { token, ts: at(NOW) }, sink);
}

pub(crate) fn ws_usage(message_id: &str, u: Usage, done: bool, secs: u64) -> SocketEvent {
    SocketEvent::Usage {
        chat_id: Some("35ae9654-336e-4ee2-9dd7-f234e6760bae".into()),
        message_id: message_id.into(),
        usage: u,
        done,
        ts: at(secs),
    }
}

pub(crate) fn ws_done(message_id: &str, secs: u64) -> SocketEvent {
    SocketEvent::Done {
        chat_id: None,
        message_id: message_id.into(),
        ts: at(secs),
    }
}
