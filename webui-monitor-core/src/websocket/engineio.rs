//! Engine.IO v4 packets carried in WebSocket text messages: one packet per message, the first
//! character is the packet type.
//!
//! Binary WebSocket messages are Engine.IO binary message packets (Socket.IO attachments): they
//! have no type prefix and are not parsed here.

/// An Engine.IO packet; payloads borrow from the message. `Debug` shows payload lengths only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0{…}`: handshake from the server (JSON with the Engine.IO `sid`, ping settings).
    Open(&'a str),
    /// `1`
    Close,
    /// `2[probe]`
    Ping(&'a str),
    /// `3[probe]`
    Pong(&'a str),
    /// `4…`: a Socket.IO packet.
    Message(&'a str),
    /// `5`
    Upgrade,
    /// `6`
    Noop,
}

impl std::fmt::Debug for EnginePacket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, len) = match self {
            EnginePacket::Open(p) => ("Open", p.len()),
            EnginePacket::Close => ("Close", 0),
            EnginePacket::Ping(p) => ("Ping", p.len()),
            EnginePacket::Pong(p) => ("Pong", p.len()),
            EnginePacket::Message(p) => ("Message", p.len()),
            EnginePacket::Upgrade => ("Upgrade", 0),
            EnginePacket::Noop => ("Noop", 0),
        };
        write!(f, "{name}(<{len} bytes>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineIoError {
    #[error("empty Engine.IO packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:#04x}")]
    UnknownType(u8),
}

impl<'a> EnginePacket<'a> {
    pub fn parse(text: &'a str) -> Result<Self, EngineIoError> {
        let first = *text.as_bytes().first().ok_or(EngineIoError::Empty)?;
        // The first byte is ASCII here, so slicing after it stays on a char boundary.
        let rest = text.get(1..).unwrap_or("");
        Ok(match first {
            b'0' => EnginePacket::Open(rest),
            b'1' => EnginePacket::Close,
            b'2' => EnginePacket::Ping(rest),
            b'3' => EnginePacket::Pong(rest),
            b'4' => EnginePacket::Message(rest),
            b'5' => EnginePacket::Upgrade,
            b'6' => EnginePacket::Noop,
            other => return Err(EngineIoError::UnknownType(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets() {
        assert_eq!(
            EnginePacket::parse("0{\"sid\":\"x\"}"),
            Ok(EnginePacket::Open("{\"sid\":\"x\"}"))
        );
        assert_eq!(EnginePacket::parse("2"), Ok(EnginePacket::Ping("")));
        assert_eq!(
            EnginePacket::parse("3probe"),
            Ok(EnginePacket::Pong("probe"))
        );
        assert_eq!(
            EnginePacket::parse("40{}"),
            Ok(EnginePacket::Message("0{}"))
        );
        assert_eq!(EnginePacket::parse("6"), Ok(EnginePacket::Noop));
        assert_eq!(EnginePacket::parse(""), Err(EngineIoError::Empty));
        assert_eq!(
            EnginePacket::parse("é"),
            Err(EngineIoError::UnknownType(0xc3))
        );
    }
}
