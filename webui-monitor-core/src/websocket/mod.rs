//! WebSocket connections upgraded from HTTP (Open WebUI's socket.io channel).
//!
//! Layers, bottom up: [`frame`] (RFC 6455) → [`message`] (fragmentation, [`deflate`]) →
//! [`engineio`] → [`socketio`] → [`openwebui_events`] → [`SocketEvent`]s, driven by
//! [`WebSocketConnection`].
pub mod connection;
pub mod deflate;
pub mod engineio;
pub mod event;
pub mod frame;
pub mod message;
pub mod openwebui_events;
pub mod socketio;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use connection::{
    ConnectionStats, PacketStats, WebSocketConnection, WebSocketCounters, WebSocketLimits,
    WebSocketShared,
};
pub use event::SocketEvent;
