//! One upgraded connection: RFC 6455 frames → permessage-deflate → Engine.IO/Socket.IO →
//! [`SocketEvent`]s.
//!
//! CONTRACT STUB (lead): the `websocket` helper replaces the bodies; the signatures are what the
//! pipeline calls.
use crate::{
    segment::{ConnectionKey, Direction, Timestamp},
    websocket::SocketEvent,
};

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketLimits {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSocketCounters {}

#[derive(Debug, Default)]
pub struct WebSocketShared {
    pub limits: WebSocketLimits,
    pub counters: WebSocketCounters,
}

#[derive(Debug)]
pub struct WebSocketConnection {
    key: ConnectionKey,
}

impl WebSocketConnection {
    /// `extensions`: the 101 response's `Sec-WebSocket-Extensions`.
    pub fn new(
        key: ConnectionKey,
        _extensions: Option<&str>,
        _shared: &mut WebSocketShared,
    ) -> Self {
        Self { key }
    }
    pub fn key(&self) -> ConnectionKey {
        self.key
    }
    pub fn on_data(
        &mut self,
        _direction: Direction,
        _data: &[u8],
        _ts: Timestamp,
        _shared: &mut WebSocketShared,
        _out: &mut Vec<SocketEvent>,
    ) {
    }
    pub fn on_gap(
        &mut self,
        _direction: Direction,
        _len: u64,
        _ts: Timestamp,
        _shared: &mut WebSocketShared,
        _out: &mut Vec<SocketEvent>,
    ) {
    }
    pub fn on_close(
        &mut self,
        _ts: Timestamp,
        _shared: &mut WebSocketShared,
        _out: &mut Vec<SocketEvent>,
    ) {
    }
}
