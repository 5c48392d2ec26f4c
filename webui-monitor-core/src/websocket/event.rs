//! What the WebSocket decoder reports about an upgraded Open WebUI connection: Socket.IO facts
//! the semantics need, never message text.
use crate::{secret::Secret, segment::Timestamp, usage::Usage};

/// One fact about an upgraded connection, in traffic order; `ts` is the capture time of the
/// segment that completed it.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketEvent {
    /// Socket.IO `40{"sid":…}` from the server: the namespace session id, which the web UI sends
    /// as `session_id` in its completion requests.
    Connected { sid: String, ts: Timestamp },
    /// `42["user-join",{"auth":{"token":…}}]` from the client: the socket's identity. Also
    /// reported for a client Socket.IO connect that carries a token (`40{"token":…}`, the
    /// socket.io `auth` option, which Open WebUI's `connect` handler accepts too).
    UserJoin { token: Secret, ts: Timestamp },
    /// First `chat:completion` event of an answer that carries content (streamed delta).
    FirstDelta {
        chat_id: Option<String>,
        message_id: String,
        ts: Timestamp,
    },
    /// A `chat:completion` event carrying `usage` (Open WebUI sends the same usage twice per
    /// answer; the consumer counts each `message_id` once).
    Usage {
        chat_id: Option<String>,
        message_id: String,
        usage: Usage,
        done: bool,
        ts: Timestamp,
    },
    /// A `chat:completion` event with `done: true` (with or without usage).
    Done {
        chat_id: Option<String>,
        message_id: String,
        ts: Timestamp,
    },
    /// The connection cannot be decoded (joined mid-stream with compression, gap in a compressed
    /// stream, inflate error): nothing more will be reported for it but [`SocketEvent::Closed`].
    Undecodable { ts: Timestamp },
    /// Close frame seen or the TCP connection ended.
    Closed { ts: Timestamp },
}
