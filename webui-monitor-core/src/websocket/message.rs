//! One direction of a WebSocket connection: frames → (fragmented, compressed) messages.
//!
//! Payloads stream through without being buffered as frames: compressed bytes go straight to
//! the inflater, and only the decoded message (up to `max_message_bytes`) is kept until the next
//! message starts.
use crate::{
    memory::{Holder, MemoryAccount, Reservation},
    segment::Direction,
    websocket::{
        buffer::reserve_within,
        deflate::{DeflateError, DirectionParams, Inflated, Inflater},
        frame::{
            FrameDecoder, FrameError, FrameHeader, FrameItem, MAX_CONTROL_PAYLOAD, Opcode,
            PayloadChunk,
        },
        limits::{WebSocketCounters, WebSocketLimits},
    },
};

/// Capacity a message buffer keeps between messages; a larger one (after a big message) is
/// shrunk back so that idle connections stay small.
const RETAINED_BUFFER: usize = 64 * 1024;

/// Unmasked compressed bytes are handed to the inflater in pieces of at most this size.
const UNMASK_PIECE: usize = 16 * 1024;

/// Inflated bytes per compressed byte a message's buffer is granted room for ahead of each
/// piece (JSON deflates 5–20×); output beyond what the budget granted is cut, counted.
const INFLATE_HEADROOM: usize = 32;

/// Why a direction cannot be decoded any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    #[error("permessage-deflate: {0}")]
    Deflate(#[from] DeflateError),
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("new data frame inside a fragmented message")]
    UnexpectedDataFrame,
}

/// Frame and message counts of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Bytes handed to the decoder (including what arrived after it gave up).
    pub wire_bytes: u64,
    /// Frames whose header was read, by opcode.
    pub continuation_frames: u64,
    pub text_frames: u64,
    pub binary_frames: u64,
    pub close_frames: u64,
    pub ping_frames: u64,
    pub pong_frames: u64,
    /// Frames with RSV1 (first frames of compressed messages).
    pub compressed_frames: u64,
    /// Complete data messages.
    pub messages: u64,
    /// Messages cut at `max_message_bytes` or damaged by a skipped gap.
    pub incomplete_messages: u64,
}

impl DirectionStats {
    pub fn frames(&self) -> u64 {
        self.continuation_frames
            + self.text_frames
            + self.binary_frames
            + self.close_frames
            + self.ping_frames
            + self.pong_frames
    }
}

/// What a direction yields. `Debug` shows message lengths, never their bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete data message. `intact` is false when it was cut at the cap or a gap took part
    /// of it: then `bytes` is not the whole message and must not be parsed.
    Message {
        text: bool,
        bytes: &'a [u8],
        intact: bool,
    },
    /// A close frame and its status code, if any.
    Close {
        code: Option<u16>,
    },
    Ping,
    Pong,
}

impl std::fmt::Debug for Decoded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decoded::Message {
                text,
                bytes,
                intact,
            } => f
                .debug_struct("Message")
                .field("text", text)
                .field("len", &bytes.len())
                .field("intact", intact)
                .finish(),
            Decoded::Close { code } => f.debug_struct("Close").field("code", code).finish(),
            Decoded::Ping => f.write_str("Ping"),
            Decoded::Pong => f.write_str("Pong"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completed {
    Message { text: bool, intact: bool },
    Close { code: Option<u16> },
    Ping,
    Pong,
}

#[derive(Debug, Clone, Copy)]
struct PartialMessage {
    text: bool,
    compressed: bool,
    /// False once bytes are missing (cap or gap).
    intact: bool,
    /// Cut at `max_message_bytes`.
    truncated: bool,
}

/// Decoder of one direction. `Debug` leaves out the buffers (message text).
pub struct DirectionDecoder {
    direction: Direction,
    frames: FrameDecoder,
    /// permessage-deflate parameters of this direction, if negotiated.
    deflate: Option<DirectionParams>,
    inflater: Option<Box<Inflater>>,
    /// Header of the frame whose payload is being read.
    current: Option<FrameHeader>,
    message: Option<PartialMessage>,
    buf: Vec<u8>,
    /// The share of the pipeline's memory budget `buf` holds (see [`crate::memory`]).
    grant: Reservation,
    control: Vec<u8>,
    scratch: Vec<u8>,
    stats: DirectionStats,
}

impl std::fmt::Debug for DirectionDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectionDecoder")
            .field("direction", &self.direction)
            .field("deflate", &self.deflate)
            .field("current", &self.current)
            .field("message", &self.message)
            .field("buffered", &self.buf.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DirectionDecoder {
    /// `memory`: the budget the message buffer's growth is granted from.
    pub fn new(
        direction: Direction,
        deflate: Option<DirectionParams>,
        memory: &MemoryAccount,
    ) -> Self {
        Self {
            direction,
            frames: FrameDecoder::default(),
            deflate,
            inflater: None,
            current: None,
            message: None,
            buf: Vec::new(),
            grant: memory
                .reserve(Holder::WebSocketMessage, 0)
                .expect("an empty grant always fits"),
            control: Vec::new(),
            scratch: Vec::new(),
            stats: DirectionStats::default(),
        }
    }

    pub fn stats(&self) -> &DirectionStats {
        &self.stats
    }

    /// Notes bytes that arrived for this direction (decoded or not).
    pub fn count_wire_bytes(&mut self, len: usize, counters: &mut WebSocketCounters) {
        self.stats.wire_bytes += len as u64;
        counters.wire_bytes[self.direction.index()] += len as u64;
    }

    /// Decodes from `input` (advancing it) up to the next complete message or control frame.
    pub fn next<'s>(
        &'s mut self,
        input: &mut &[u8],
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
    ) -> Result<Option<Decoded<'s>>, DecodeError> {
        let allowed_rsv = if self.deflate.is_some() {
            FrameHeader::RSV1
        } else {
            0
        };
        loop {
            let item = match self.frames.next(input, allowed_rsv, limits.max_frame_bytes) {
                Ok(Some(item)) => item,
                Ok(None) => return Ok(None),
                Err(e) => {
                    if matches!(e, FrameError::TooLarge { .. }) {
                        counters.frames_too_large += 1;
                    }
                    return Err(e.into());
                }
            };
            let completed = match item {
                FrameItem::Header(header) => {
                    self.on_header(header, counters)?;
                    None
                }
                FrameItem::Payload(chunk) => {
                    self.on_payload(chunk, limits, counters)?;
                    None
                }
                FrameItem::End => self.on_end(limits, counters)?,
            };
            // Built only on the way out, so the loop above never holds a borrow of `self`.
            if let Some(completed) = completed {
                return Ok(Some(match completed {
                    Completed::Message { text, intact } => Decoded::Message {
                        text,
                        bytes: &self.buf,
                        intact,
                    },
                    Completed::Close { code } => Decoded::Close { code },
                    Completed::Ping => Decoded::Ping,
                    Completed::Pong => Decoded::Pong,
                }));
            }
        }
    }

    /// Accounts for `len` bytes lost to a capture gap. True when decoding can go on: the bytes
    /// all fall inside the payload of an uncompressed data frame (that message is lost).
    pub fn skip_gap(&mut self, len: u64) -> bool {
        let uncompressed_data = matches!(self.current, Some(h) if !h.opcode.is_control())
            && matches!(self.message, Some(m) if !m.compressed);
        if !uncompressed_data || !self.frames.skip_payload(len) {
            return false;
        }
        if let Some(m) = &mut self.message {
            m.intact = false;
        }
        true
    }

    fn on_header(
        &mut self,
        header: FrameHeader,
        counters: &mut WebSocketCounters,
    ) -> Result<(), DecodeError> {
        let dir = self.direction.index();
        counters.frames[dir] += 1;
        let s = &mut self.stats;
        match header.opcode {
            Opcode::Continuation => s.continuation_frames += 1,
            Opcode::Text => s.text_frames += 1,
            Opcode::Binary => s.binary_frames += 1,
            Opcode::Close => s.close_frames += 1,
            Opcode::Ping => s.ping_frames += 1,
            Opcode::Pong => s.pong_frames += 1,
            // Rejected by the frame parser already.
            Opcode::Reserved(bits) => return Err(FrameError::ReservedOpcode(bits).into()),
        }
        if header.compressed() {
            s.compressed_frames += 1;
            counters.compressed_frames[dir] += 1;
        }
        self.current = Some(header);
        match header.opcode {
            Opcode::Text | Opcode::Binary => {
                if self.message.is_some() {
                    return Err(DecodeError::UnexpectedDataFrame);
                }
                self.buf.clear();
                if self.buf.capacity() > RETAINED_BUFFER {
                    self.buf.shrink_to(RETAINED_BUFFER);
                }
                self.grant.shrink_to(0);
                let compressed = header.compressed();
                if compressed {
                    let params = self
                        .deflate
                        .ok_or(FrameError::ReservedBits(FrameHeader::RSV1))?;
                    self.inflater
                        .get_or_insert_with(|| Box::new(Inflater::new(params)))
                        .begin_message()?;
                }
                self.message = Some(PartialMessage {
                    text: header.opcode == Opcode::Text,
                    compressed,
                    intact: true,
                    truncated: false,
                });
            }
            Opcode::Continuation => {
                if self.message.is_none() {
                    return Err(DecodeError::UnexpectedContinuation);
                }
                // RFC 7692 §6.1: RSV1 marks the first frame of a message only.
                if header.compressed() {
                    return Err(FrameError::ReservedBits(header.rsv).into());
                }
            }
            _ => self.control.clear(),
        }
        Ok(())
    }

    fn on_payload(
        &mut self,
        chunk: PayloadChunk<'_>,
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
    ) -> Result<(), DecodeError> {
        let Some(header) = self.current else {
            return Ok(());
        };
        if header.opcode.is_control() {
            // At most 125 bytes: checked by the frame parser.
            reserve_within(&mut self.control, chunk.len(), MAX_CONTROL_PAYLOAD as usize);
            chunk.unmask_into(&mut self.control);
            return Ok(());
        }
        let Some(message) = &mut self.message else {
            return Ok(());
        };
        let keep = limits.max_message_bytes;
        if message.compressed {
            let Some(inflater) = self.inflater.as_mut() else {
                return Ok(());
            };
            let mut rest = chunk;
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(UNMASK_PIECE);
                rest = tail;
                self.scratch.clear();
                reserve_within(&mut self.scratch, piece.len(), UNMASK_PIECE);
                piece.unmask_into(&mut self.scratch);
                // What one piece may inflate to is unknown: room for a generous ratio.
                let want = self.buf.len() + INFLATE_HEADROOM * piece.len() + RETAINED_BUFFER;
                let keep_now = grant_room(&mut self.grant, keep.min(want));
                let inflated = inflater
                    .inflate(
                        &self.scratch,
                        &mut self.buf,
                        keep_now,
                        limits.max_inflated_bytes,
                    )
                    .inspect_err(|e| count_deflate_error(e, counters))?;
                note_dropped(message, inflated);
            }
        } else {
            let keep = grant_room(&mut self.grant, keep.min(self.buf.len() + chunk.len()));
            let room = keep.saturating_sub(self.buf.len());
            let (kept, dropped) = chunk.split_at(room);
            reserve_within(&mut self.buf, kept.len(), keep);
            kept.unmask_into(&mut self.buf);
            if !dropped.is_empty() {
                message.intact = false;
                message.truncated = true;
            }
        }
        Ok(())
    }

    fn on_end(
        &mut self,
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
    ) -> Result<Option<Completed>, DecodeError> {
        let Some(header) = self.current.take() else {
            return Ok(None);
        };
        match header.opcode {
            Opcode::Close => {
                let code = self
                    .control
                    .get(..2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]));
                return Ok(Some(Completed::Close { code }));
            }
            Opcode::Ping => return Ok(Some(Completed::Ping)),
            Opcode::Pong => return Ok(Some(Completed::Pong)),
            _ => {}
        }
        if !header.fin {
            return Ok(None);
        }
        let Some(mut message) = self.message.take() else {
            return Ok(None);
        };
        if message.compressed
            && let Some(inflater) = self.inflater.as_mut()
        {
            let want = self.buf.len() + RETAINED_BUFFER;
            let keep_now = grant_room(&mut self.grant, limits.max_message_bytes.min(want));
            let inflated = inflater
                .end_message(&mut self.buf, keep_now, limits.max_inflated_bytes)
                .inspect_err(|e| count_deflate_error(e, counters))?;
            note_dropped(&mut message, inflated);
        }
        self.stats.messages += 1;
        counters.messages[self.direction.index()] += 1;
        if !message.intact {
            self.stats.incomplete_messages += 1;
        }
        if message.truncated {
            counters.messages_truncated += 1;
        }
        Ok(Some(Completed::Message {
            text: message.text,
            intact: message.intact,
        }))
    }
}

/// Grows `grant` towards `len` bytes as far as the memory budget allows; returns the bytes
/// the message buffer may hold (a shortfall is counted by the budget).
fn grant_room(grant: &mut Reservation, len: usize) -> usize {
    usize::try_from(grant.grow_up_to(len as u64)).unwrap_or(usize::MAX)
}

fn note_dropped(message: &mut PartialMessage, inflated: Inflated) {
    if inflated.dropped > 0 {
        message.intact = false;
        message.truncated = true;
    }
}

fn count_deflate_error(error: &DeflateError, counters: &mut WebSocketCounters) {
    match error {
        DeflateError::InflatedTooLarge(_) => counters.inflated_too_large += 1,
        _ => counters.inflate_errors += 1,
    }
}
