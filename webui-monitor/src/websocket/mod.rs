//! WebSocket connections upgraded from HTTP (Open WebUI's socket.io channel).
pub mod connection;
pub mod event;

pub use connection::{WebSocketConnection, WebSocketLimits, WebSocketShared};
pub use event::SocketEvent;
