//! One upgraded connection: RFC 6455 frames → permessage-deflate → Engine.IO/Socket.IO →
//! [`SocketEvent`]s.
//!
//! Sans-IO: the pipeline hands over the bytes of each direction after the 101 response (and
//! gaps, and the end of the connection); events come out. A direction that cannot be followed
//! (protocol error, inflate error, a gap inside compressed data, a bad extension header) makes
//! the whole connection undecodable: it reports [`SocketEvent::Undecodable`] once, then only
//! [`SocketEvent::Closed`] — guessing where a compressed stream resumes could invent tokens.
use crate::{
    segment::{ConnectionKey, Direction, Timestamp},
    websocket::{
        SocketEvent,
        deflate::parse_extensions,
        engineio::EnginePacket,
        frame::FrameError,
        limits::{WebSocketCounters, WebSocketShared},
        message::{DecodeError, Decoded, DirectionDecoder, DirectionStats},
        openwebui_events::OpenWebUiEvents,
        socketio::{PacketType, SocketPacket},
    },
};

/// Engine.IO / Socket.IO packets of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    pub eio_open: u64,
    pub eio_close: u64,
    pub eio_ping: u64,
    pub eio_pong: u64,
    pub eio_other: u64,
    pub sio_connect: u64,
    pub sio_disconnect: u64,
    pub sio_event: u64,
    pub sio_ack: u64,
    pub sio_connect_error: u64,
    /// Binary events/acks and binary messages (their attachments).
    pub sio_binary: u64,
}

/// Per-connection statistics (for tests and debugging; never contains message text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    pub directions: [DirectionStats; 2],
    pub packets: [PacketStats; 2],
    pub close_codes: [Option<u16>; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Decoding,
    /// Given up; `Undecodable` not reported yet.
    FailedUnreported,
    Failed,
}

/// Decoder of one upgraded connection.
#[derive(Debug)]
pub struct WebSocketConnection {
    key: ConnectionKey,
    directions: [DirectionDecoder; 2],
    events: OpenWebUiEvents,
    packets: [PacketStats; 2],
    close_codes: [Option<u16>; 2],
    /// Binary attachments announced by binary Socket.IO packets, per direction.
    pending_attachments: [u32; 2],
    health: Health,
    closed_reported: bool,
}

impl WebSocketConnection {
    /// `extensions`: the 101 response's `Sec-WebSocket-Extensions`.
    pub fn new(key: ConnectionKey, extensions: Option<&str>, shared: &mut WebSocketShared) -> Self {
        shared.counters.connections += 1;
        let mut health = Health::Decoding;
        let deflate = match extensions.map(parse_extensions).transpose() {
            Ok(params) => params.flatten(),
            Err(_) => {
                shared.counters.extension_errors += 1;
                shared.counters.undecodable_connections += 1;
                health = Health::FailedUnreported;
                None
            }
        };
        let memory = &shared.memory;
        let decoder =
            |d: Direction| DirectionDecoder::new(d, deflate.map(|p| p.direction(d)), memory);
        Self {
            key,
            directions: [decoder(Direction::Request), decoder(Direction::Response)],
            events: OpenWebUiEvents::default(),
            packets: [PacketStats::default(); 2],
            close_codes: [None; 2],
            pending_attachments: [0; 2],
            health,
            closed_reported: false,
        }
    }

    /// A connection seen without its 101 response (joined mid-stream, or its HTTP side was
    /// lost): where frames start and what the compression window holds are unknown, so it is
    /// counted as undecodable and reports [`SocketEvent::Undecodable`] on its first call.
    pub fn joined_mid_stream(key: ConnectionKey, shared: &mut WebSocketShared) -> Self {
        let mut conn = Self::new(key, None, shared);
        shared.counters.undecodable_connections += 1;
        conn.health = Health::FailedUnreported;
        conn
    }

    pub fn key(&self) -> ConnectionKey {
        self.key
    }

    /// False once the connection has been given up.
    pub fn is_decodable(&self) -> bool {
        self.health == Health::Decoding
    }

    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            directions: [*self.directions[0].stats(), *self.directions[1].stats()],
            packets: self.packets,
            close_codes: self.close_codes,
        }
    }

    /// Bytes of `direction`, in stream order, after the 101 response.
    pub fn on_data(
        &mut self,
        direction: Direction,
        data: &[u8],
        ts: Timestamp,
        shared: &mut WebSocketShared,
        out: &mut Vec<SocketEvent>,
    ) {
        let d = direction.index();
        self.directions[d].count_wire_bytes(data.len(), &mut shared.counters);
        if !self.report_failure(ts, out) {
            return;
        }
        let mut input = data;
        loop {
            let decoded =
                match self.directions[d].next(&mut input, &shared.limits, &mut shared.counters) {
                    Ok(Some(decoded)) => decoded,
                    Ok(None) => return,
                    Err(error) => {
                        count_decode_error(&error, &mut shared.counters);
                        self.fail(shared, ts, out);
                        return;
                    }
                };
            match decoded {
                Decoded::Message {
                    text,
                    bytes,
                    intact,
                } => {
                    let ctx = PacketContext {
                        direction,
                        ts,
                        shared: &mut *shared,
                        events: &mut self.events,
                        packets: &mut self.packets[d],
                        pending_attachments: &mut self.pending_attachments[d],
                    };
                    ctx.on_message(text, bytes, intact, out);
                }
                Decoded::Close { code } => {
                    self.close_codes[d] = self.close_codes[d].or(code);
                    self.report_closed(ts, out);
                }
                Decoded::Ping | Decoded::Pong => {}
            }
        }
    }

    /// `len` bytes of `direction` were lost by the capture.
    pub fn on_gap(
        &mut self,
        direction: Direction,
        len: u64,
        ts: Timestamp,
        shared: &mut WebSocketShared,
        out: &mut Vec<SocketEvent>,
    ) {
        if len == 0 {
            return;
        }
        shared.counters.gaps += 1;
        if !self.report_failure(ts, out) {
            return;
        }
        if self.directions[direction.index()].skip_gap(len) {
            shared.counters.gaps_skipped += 1;
        } else {
            self.fail(shared, ts, out);
        }
    }

    /// The TCP connection ended (FIN/RST or expiry).
    pub fn on_close(
        &mut self,
        ts: Timestamp,
        _shared: &mut WebSocketShared,
        out: &mut Vec<SocketEvent>,
    ) {
        self.report_failure(ts, out);
        self.report_closed(ts, out);
    }

    /// [`SocketEvent::Closed`] once per connection: at the first close frame or the TCP end.
    fn report_closed(&mut self, ts: Timestamp, out: &mut Vec<SocketEvent>) {
        if !self.closed_reported {
            self.closed_reported = true;
            out.push(SocketEvent::Closed { ts });
        }
    }

    /// Reports a pending failure; true while the connection is still decodable.
    fn report_failure(&mut self, ts: Timestamp, out: &mut Vec<SocketEvent>) -> bool {
        match self.health {
            Health::Decoding => true,
            Health::FailedUnreported => {
                self.health = Health::Failed;
                out.push(SocketEvent::Undecodable { ts });
                false
            }
            Health::Failed => false,
        }
    }

    fn fail(&mut self, shared: &mut WebSocketShared, ts: Timestamp, out: &mut Vec<SocketEvent>) {
        if self.health == Health::Decoding {
            shared.counters.undecodable_connections += 1;
            self.health = Health::FailedUnreported;
        }
        self.report_failure(ts, out);
    }
}

fn count_decode_error(error: &DecodeError, counters: &mut WebSocketCounters) {
    match error {
        // Counted where they happen (cap counters and inflate errors).
        DecodeError::Deflate(_) | DecodeError::Frame(FrameError::TooLarge { .. }) => {}
        DecodeError::Frame(_)
        | DecodeError::UnexpectedContinuation
        | DecodeError::UnexpectedDataFrame => counters.protocol_errors += 1,
    }
}

/// What handling one message needs, split from the connection so that the message (borrowed
/// from its direction's decoder) can be read while the rest is updated.
struct PacketContext<'a> {
    direction: Direction,
    ts: Timestamp,
    shared: &'a mut WebSocketShared,
    events: &'a mut OpenWebUiEvents,
    packets: &'a mut PacketStats,
    pending_attachments: &'a mut u32,
}

impl PacketContext<'_> {
    fn on_message(self, text: bool, bytes: &[u8], intact: bool, out: &mut Vec<SocketEvent>) {
        let counters = &mut self.shared.counters;
        if !text {
            // Engine.IO v4 binary message: a Socket.IO attachment (or noise).
            *self.pending_attachments = self.pending_attachments.saturating_sub(1);
            self.packets.sio_binary += 1;
            counters.binary_messages_skipped += 1;
            return;
        }
        if !intact {
            return;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            counters.packet_errors += 1;
            return;
        };
        let packet = match EnginePacket::parse(text) {
            Ok(EnginePacket::Message(packet)) => packet,
            Ok(other) => {
                let p = &mut *self.packets;
                match other {
                    EnginePacket::Open(_) => p.eio_open += 1,
                    EnginePacket::Close => p.eio_close += 1,
                    EnginePacket::Ping(_) => p.eio_ping += 1,
                    EnginePacket::Pong(_) => p.eio_pong += 1,
                    _ => p.eio_other += 1,
                }
                return;
            }
            Err(_) => {
                counters.packet_errors += 1;
                return;
            }
        };
        let Ok(packet) = SocketPacket::parse(packet) else {
            counters.packet_errors += 1;
            return;
        };
        let p = &mut *self.packets;
        match packet.kind {
            PacketType::Connect => p.sio_connect += 1,
            PacketType::Disconnect => p.sio_disconnect += 1,
            PacketType::Event => p.sio_event += 1,
            PacketType::Ack => p.sio_ack += 1,
            PacketType::ConnectError => p.sio_connect_error += 1,
            PacketType::BinaryEvent | PacketType::BinaryAck => {
                p.sio_binary += 1;
                counters.binary_messages_skipped += 1;
                *self.pending_attachments =
                    self.pending_attachments.saturating_add(packet.attachments);
                return;
            }
        }
        self.events.on_packet(
            self.direction,
            &packet,
            self.ts,
            &self.shared.limits,
            &mut self.shared.counters,
            out,
        );
    }
}
