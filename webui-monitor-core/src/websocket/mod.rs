//! WebSocket connections upgraded from HTTP (Open WebUI's socket.io channel).
//!
//! Layers, bottom up: `frame` (RFC 6455) → `message` (fragmentation, `deflate`) →
//! `engineio` → `socketio` → `openwebui_events` → [`SocketEvent`]s, driven by
//! [`WebSocketConnection`].
mod buffer;
pub(crate) mod connection;
pub(crate) mod deflate;
pub(crate) mod engineio;
pub(crate) mod event;
pub(crate) mod frame;
pub(crate) mod limits;
pub(crate) mod message;
pub(crate) mod openwebui_events;
pub(crate) mod socketio;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use connection::{ConnectionStats, PacketStats, WebSocketConnection};
pub use event::SocketEvent;
pub use limits::{WebSocketCounters, WebSocketLimits, WebSocketShared};
