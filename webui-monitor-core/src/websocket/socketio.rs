//! Socket.IO v5 packets (inside Engine.IO `4` messages):
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]`.

/// Socket.IO packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    /// Event with binary attachments (sent as separate binary messages).
    BinaryEvent,
    BinaryAck,
}

/// A parsed packet; namespace and payload borrow from the message. `Debug` shows the payload's
/// length only (it holds tokens, prompts and answers).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SocketPacket<'a> {
    pub kind: PacketType,
    /// Binary attachments that follow (binary packet types only).
    pub attachments: u32,
    /// `/` unless the packet names another namespace.
    pub namespace: &'a str,
    pub ack_id: Option<u64>,
    /// JSON payload (possibly empty).
    pub payload: &'a str,
}

impl std::fmt::Debug for SocketPacket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketPacket")
            .field("kind", &self.kind)
            .field("attachments", &self.attachments)
            .field("namespace", &self.namespace)
            .field("ack_id", &self.ack_id)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SocketIoError {
    #[error("empty Socket.IO packet")]
    Empty,
    #[error("unknown Socket.IO packet type {0:#04x}")]
    UnknownType(u8),
    #[error("malformed attachment count")]
    Attachments,
    #[error("namespace without a terminating comma")]
    Namespace,
    #[error("ack id out of range")]
    AckId,
}

/// Digits of an ack id beyond which it cannot fit a u64: reject rather than wrap.
const MAX_ACK_DIGITS: usize = 19;

impl<'a> SocketPacket<'a> {
    pub fn parse(text: &'a str) -> Result<Self, SocketIoError> {
        let bytes = text.as_bytes();
        let first = *bytes.first().ok_or(SocketIoError::Empty)?;
        let kind = match first {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            other => return Err(SocketIoError::UnknownType(other)),
        };
        // All delimiters below are ASCII, so every split stays on a char boundary.
        let mut rest = &text[1..];
        let mut attachments = 0;
        if matches!(kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
            let (count, after) = rest.split_once('-').ok_or(SocketIoError::Attachments)?;
            attachments = count.parse().map_err(|_| SocketIoError::Attachments)?;
            rest = after;
        }
        let mut namespace = "/";
        if rest.starts_with('/') {
            let (ns, after) = rest.split_once(',').ok_or(SocketIoError::Namespace)?;
            namespace = ns;
            rest = after;
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut ack_id = None;
        if digits > 0 {
            if digits > MAX_ACK_DIGITS {
                return Err(SocketIoError::AckId);
            }
            ack_id = Some(rest[..digits].parse().map_err(|_| SocketIoError::AckId)?);
            rest = &rest[digits..];
        }
        Ok(Self {
            kind,
            attachments,
            namespace,
            ack_id,
            payload: rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(
        kind: PacketType,
        attachments: u32,
        namespace: &'static str,
        ack_id: Option<u64>,
        payload: &'static str,
    ) -> SocketPacket<'static> {
        SocketPacket {
            kind,
            attachments,
            namespace,
            ack_id,
            payload,
        }
    }

    #[test]
    fn open_webui_packets() {
        assert_eq!(
            SocketPacket::parse("0{\"sid\":\"ra3UWfHOjscDF_mPAAAH\"}"),
            Ok(packet(
                PacketType::Connect,
                0,
                "/",
                None,
                "{\"sid\":\"ra3UWfHOjscDF_mPAAAH\"}"
            ))
        );
        assert_eq!(
            SocketPacket::parse("2[\"user-join\",{}]"),
            Ok(packet(
                PacketType::Event,
                0,
                "/",
                None,
                "[\"user-join\",{}]"
            ))
        );
        assert_eq!(
            SocketPacket::parse("20[\"events:chat\",{}]"),
            Ok(packet(
                PacketType::Event,
                0,
                "/",
                Some(0),
                "[\"events:chat\",{}]"
            ))
        );
        assert_eq!(
            SocketPacket::parse("30[true]"),
            Ok(packet(PacketType::Ack, 0, "/", Some(0), "[true]"))
        );
        assert_eq!(
            SocketPacket::parse("3[true]"),
            Ok(packet(PacketType::Ack, 0, "/", None, "[true]"))
        );
    }

    #[test]
    fn namespaces_and_binary() {
        assert_eq!(
            SocketPacket::parse("51-/admin,456[\"up\",{\"_placeholder\":true,\"num\":0}]"),
            Ok(packet(
                PacketType::BinaryEvent,
                1,
                "/admin",
                Some(456),
                "[\"up\",{\"_placeholder\":true,\"num\":0}]"
            ))
        );
        assert_eq!(
            SocketPacket::parse("1/admin,"),
            Ok(packet(PacketType::Disconnect, 0, "/admin", None, ""))
        );
        assert_eq!(SocketPacket::parse(""), Err(SocketIoError::Empty));
        assert_eq!(
            SocketPacket::parse("9"),
            Err(SocketIoError::UnknownType(b'9'))
        );
        assert_eq!(
            SocketPacket::parse("5x-[]"),
            Err(SocketIoError::Attachments)
        );
        assert_eq!(
            SocketPacket::parse("2/admin"),
            Err(SocketIoError::Namespace)
        );
        assert_eq!(
            SocketPacket::parse("299999999999999999999[]"),
            Err(SocketIoError::AckId)
        );
    }
}
