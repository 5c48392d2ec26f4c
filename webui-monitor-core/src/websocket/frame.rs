//! RFC 6455 framing: a checked view over frame headers and a streaming decoder that turns a
//! byte stream into headers and (still masked) payload chunks without buffering payloads.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

/// Longest possible header: 2 fixed bytes, 8 bytes of 64-bit length, 4 bytes of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Errors of the framing layer. All but [`FrameError::Truncated`] mean the stream cannot be
/// followed any more: a monitor cannot ask the peer to resend, so it stops decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More bytes are needed to read the header (not a protocol error).
    #[error("frame header needs {needed} bytes")]
    Truncated { needed: usize },
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("reserved bits {0:#05b} set without an extension that defines them")]
    ReservedBits(u8),
    #[error("control frame with a {0}-byte payload (at most 125)")]
    ControlTooLong(u64),
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("64-bit payload length with the most significant bit set")]
    InvalidLength,
    #[error("frame payload of {len} bytes exceeds the {cap}-byte cap")]
    TooLarge { len: u64, cap: u64 },
}

/// Frame opcode (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
    /// 0x3–0x7 and 0xB–0xF: no extension here defines them.
    Reserved(u8),
}

impl Opcode {
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0x0f {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            other => Opcode::Reserved(other),
        }
    }
    pub const fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
            Opcode::Reserved(bits) => bits & 0x0f,
        }
    }
    /// Control frames (opcodes with the high bit set) may interleave with a fragmented message.
    pub const fn is_control(self) -> bool {
        self.bits() & 0x08 != 0
    }
}

/// Read-only view of a frame header in a byte buffer. Accessors other than
/// [`check_len`](Self::check_len) and [`header_len`](Self::header_len) assume a successful
/// `check_len` (use [`new_checked`](Self::new_checked)).
#[derive(Debug, Clone, Copy)]
pub struct FrameHeaderView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FrameHeaderView<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    /// Wraps `buffer` if it holds at least the whole header.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let view = Self::new_unchecked(buffer);
        view.check_len()?;
        Ok(view)
    }
    /// Header length as far as it can be told from the bytes present (2 until the second byte
    /// is there).
    pub fn header_len(&self) -> usize {
        let b = self.buffer.as_ref();
        let Some(&second) = b.get(1) else {
            return 2;
        };
        let ext = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }
    pub fn check_len(&self) -> Result<(), FrameError> {
        let needed = self.header_len();
        if self.buffer.as_ref().len() < needed {
            return Err(FrameError::Truncated { needed });
        }
        Ok(())
    }
    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }
    pub fn fin(&self) -> bool {
        self.byte(0) & 0x80 != 0
    }
    /// RSV1..RSV3 as bits 2..0.
    pub fn rsv(&self) -> u8 {
        (self.byte(0) >> 4) & 0x07
    }
    pub fn opcode(&self) -> Opcode {
        Opcode::from_bits(self.byte(0))
    }
    pub fn masked(&self) -> bool {
        self.byte(1) & 0x80 != 0
    }
    /// The payload length, from the 7-, 16- or 64-bit field.
    pub fn payload_len(&self) -> Result<u64, FrameError> {
        let b = self.buffer.as_ref();
        match self.byte(1) & 0x7f {
            126 => {
                let bytes: [u8; 2] = b
                    .get(2..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(FrameError::Truncated { needed: 4 })?;
                Ok(u64::from(u16::from_be_bytes(bytes)))
            }
            127 => {
                let bytes: [u8; 8] = b
                    .get(2..10)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(FrameError::Truncated { needed: 10 })?;
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(FrameError::InvalidLength);
                }
                Ok(len)
            }
            short => Ok(u64::from(short)),
        }
    }
    pub fn masking_key(&self) -> Option<[u8; 4]> {
        if !self.masked() {
            return None;
        }
        let end = self.header_len();
        self.buffer
            .as_ref()
            .get(end - 4..end)
            .and_then(|s| s.try_into().ok())
    }
}

/// A parsed, protocol-checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as bits 2..0 (RSV1 = 0b100 marks a compressed message with permessage-deflate).
    pub rsv: u8,
    pub opcode: Opcode,
    pub masking_key: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes of the header on the wire.
    pub header_len: usize,
}

impl FrameHeader {
    pub const RSV1: u8 = 0b100;

    /// Parses and checks a header: `allowed_rsv` are the RSV bits a negotiated extension defines
    /// (RSV1 for permessage-deflate), `max_payload` caps the declared length.
    pub fn parse(buf: &[u8], allowed_rsv: u8, max_payload: u64) -> Result<Self, FrameError> {
        let view = FrameHeaderView::new_checked(buf)?;
        let opcode = view.opcode();
        if let Opcode::Reserved(bits) = opcode {
            return Err(FrameError::ReservedOpcode(bits));
        }
        let rsv = view.rsv();
        if rsv & !allowed_rsv != 0 {
            return Err(FrameError::ReservedBits(rsv));
        }
        let payload_len = view.payload_len()?;
        if opcode.is_control() {
            if !view.fin() {
                return Err(FrameError::FragmentedControl);
            }
            if payload_len > MAX_CONTROL_PAYLOAD {
                return Err(FrameError::ControlTooLong(payload_len));
            }
            // RSV1 means "compressed" only on the first frame of a data message.
            if rsv != 0 {
                return Err(FrameError::ReservedBits(rsv));
            }
        }
        if payload_len > max_payload {
            return Err(FrameError::TooLarge {
                len: payload_len,
                cap: max_payload,
            });
        }
        Ok(Self {
            fin: view.fin(),
            rsv,
            opcode,
            masking_key: view.masking_key(),
            payload_len,
            header_len: view.header_len(),
        })
    }

    pub const fn compressed(&self) -> bool {
        self.rsv & Self::RSV1 != 0
    }
}

/// A piece of a frame's payload as it is on the wire (still masked when the frame is).
/// `Debug` shows its length only: payloads carry prompts, answers and tokens.
#[derive(Clone, Copy)]
pub struct PayloadChunk<'a> {
    bytes: &'a [u8],
    masking_key: Option<[u8; 4]>,
    /// Offset of `bytes[0]` within the frame payload (selects the masking key byte).
    offset: u64,
}

impl std::fmt::Debug for PayloadChunk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadChunk")
            .field("len", &self.bytes.len())
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl<'a> PayloadChunk<'a> {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// The chunk split after `mid` bytes (clamped to its length).
    pub fn split_at(&self, mid: usize) -> (Self, Self) {
        let (a, b) = self.bytes.split_at(mid.min(self.bytes.len()));
        (
            Self {
                bytes: a,
                masking_key: self.masking_key,
                offset: self.offset,
            },
            Self {
                bytes: b,
                masking_key: self.masking_key,
                offset: self.offset + a.len() as u64,
            },
        )
    }
    /// Appends the unmasked bytes to `out`.
    pub fn unmask_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.bytes);
        if let Some(key) = self.masking_key {
            apply_mask(&mut out[start..], key, self.offset);
        }
    }
}

/// XORs `data` with the masking key, starting at payload offset `offset` (RFC 6455 §5.3).
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: u64) {
    let phase = (offset % 4) as usize;
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= key[(phase + i) % 4];
    }
}

/// What the streaming decoder yields.
#[derive(Debug, Clone, Copy)]
pub enum FrameItem<'a> {
    /// A complete, checked header: the payload follows.
    Header(FrameHeader),
    /// Part of the current frame's payload.
    Payload(PayloadChunk<'a>),
    /// The current frame's payload is complete.
    End,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Payload {
        header: FrameHeader,
        remaining: u64,
        offset: u64,
    },
    /// A zero-length payload: `End` is due.
    End,
}

/// Streaming frame decoder for one direction: holds at most one partial header (14 bytes).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    header: [u8; MAX_HEADER_LEN],
    header_have: usize,
    state: State,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            header: [0; MAX_HEADER_LEN],
            header_have: 0,
            state: State::Header,
        }
    }
}

impl FrameDecoder {
    /// Returns the next item from `input` (advancing it), or `None` when `input` is used up.
    pub fn next<'a>(
        &mut self,
        input: &mut &'a [u8],
        allowed_rsv: u8,
        max_payload: u64,
    ) -> Result<Option<FrameItem<'a>>, FrameError> {
        match self.state {
            State::End => {
                self.state = State::Header;
                Ok(Some(FrameItem::End))
            }
            State::Payload {
                header,
                remaining,
                offset,
            } => {
                if input.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                let (bytes, rest) = input.split_at(take);
                *input = rest;
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::End
                } else {
                    State::Payload {
                        header,
                        remaining,
                        offset: offset + take as u64,
                    }
                };
                Ok(Some(FrameItem::Payload(PayloadChunk {
                    bytes,
                    masking_key: header.masking_key,
                    offset,
                })))
            }
            State::Header => loop {
                let view = FrameHeaderView::new_unchecked(&self.header[..self.header_have]);
                let needed = view.header_len();
                if self.header_have >= needed {
                    let header =
                        FrameHeader::parse(&self.header[..needed], allowed_rsv, max_payload)?;
                    self.header_have = 0;
                    self.state = if header.payload_len == 0 {
                        State::End
                    } else {
                        State::Payload {
                            header,
                            remaining: header.payload_len,
                            offset: 0,
                        }
                    };
                    return Ok(Some(FrameItem::Header(header)));
                }
                let Some((&byte, rest)) = input.split_first() else {
                    return Ok(None);
                };
                self.header[self.header_have] = byte;
                self.header_have += 1;
                *input = rest;
            },
        }
    }

    /// Skips `len` payload bytes lost to a capture gap; only possible when they all fall inside
    /// the current payload (otherwise the frame boundaries are lost).
    pub fn skip_payload(&mut self, len: u64) -> bool {
        match &mut self.state {
            State::Payload {
                remaining, offset, ..
            } if len <= *remaining => {
                *remaining -= len;
                *offset += len;
                if *remaining == 0 {
                    self.state = State::End;
                }
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(decoder: &mut FrameDecoder, mut input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = decoder
            .next(&mut input, FrameHeader::RSV1, 1 << 20)
            .unwrap()
        {
            out.push(match item {
                FrameItem::Header(h) => format!(
                    "H fin={} rsv={} op={:?} len={} hl={}",
                    h.fin, h.rsv, h.opcode, h.payload_len, h.header_len
                ),
                FrameItem::Payload(p) => {
                    let mut v = Vec::new();
                    p.unmask_into(&mut v);
                    format!("P {:?}", String::from_utf8_lossy(&v))
                }
                FrameItem::End => "E".to_string(),
            });
        }
        out
    }

    #[test]
    fn rfc6455_examples() {
        // §5.7: unmasked "Hello", masked "Hello", fragmented "Hel"+"lo", ping "Hello".
        let mut d = FrameDecoder::default();
        assert_eq!(
            items(&mut d, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
            ["H fin=true rsv=0 op=Text len=5 hl=2", "P \"Hello\"", "E"]
        );
        assert_eq!(
            items(
                &mut d,
                &[
                    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
                ]
            ),
            ["H fin=true rsv=0 op=Text len=5 hl=6", "P \"Hello\"", "E"]
        );
        assert_eq!(
            items(
                &mut d,
                &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
            ),
            [
                "H fin=false rsv=0 op=Text len=3 hl=2",
                "P \"Hel\"",
                "E",
                "H fin=true rsv=0 op=Continuation len=2 hl=2",
                "P \"lo\"",
                "E"
            ]
        );
        assert_eq!(
            items(&mut d, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
            ["H fin=true rsv=0 op=Ping len=5 hl=2", "P \"Hello\"", "E"]
        );
    }

    #[test]
    fn extended_lengths() {
        let mut frame = vec![0x82, 0x7e, 0x01, 0x00];
        frame.extend(std::iter::repeat_n(b'a', 256));
        let view = FrameHeaderView::new_checked(&frame[..]).unwrap();
        assert_eq!(view.payload_len(), Ok(256));
        assert_eq!(view.header_len(), 4);

        let mut frame = vec![0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        frame.extend(std::iter::repeat_n(0u8, 65536));
        let header = FrameHeader::parse(&frame, 0, u64::MAX).unwrap();
        assert_eq!(header.payload_len, 65536);
        assert_eq!(header.header_len, 14);
        assert_eq!(header.masking_key, Some([1, 2, 3, 4]));

        let huge = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::parse(&huge, 0, u64::MAX),
            Err(FrameError::InvalidLength)
        );
        let big = [0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::parse(&big, 0, 1 << 20),
            Err(FrameError::TooLarge {
                len: 1 << 32,
                cap: 1 << 20
            })
        );
        assert_eq!(
            FrameHeader::parse(&big[..5], 0, 1 << 20),
            Err(FrameError::Truncated { needed: 10 })
        );
    }

    #[test]
    fn protocol_violations() {
        assert_eq!(
            FrameHeader::parse(&[0x83, 0x00], 0, 10),
            Err(FrameError::ReservedOpcode(3))
        );
        assert_eq!(
            FrameHeader::parse(&[0xc1, 0x00], 0, 10),
            Err(FrameError::ReservedBits(0b100))
        );
        assert!(FrameHeader::parse(&[0xc1, 0x00], FrameHeader::RSV1, 10).is_ok());
        assert_eq!(
            FrameHeader::parse(&[0xa1, 0x00], FrameHeader::RSV1, 10),
            Err(FrameError::ReservedBits(0b010))
        );
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x00], 0, 10),
            Err(FrameError::FragmentedControl)
        );
        assert_eq!(
            FrameHeader::parse(&[0x88, 0x7e, 0x00, 0x7e], 0, 1000),
            Err(FrameError::ControlTooLong(126))
        );
        assert_eq!(
            FrameHeader::parse(&[0xc8, 0x00], FrameHeader::RSV1, 10),
            Err(FrameError::ReservedBits(0b100))
        );
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let stream = [
            0x01, 0x83, 1, 2, 3, 4, 0x49, 0x67, 0x6f, // "Hel" masked
            0x89, 0x00, // empty ping between fragments
            0x80, 0x82, 9, 9, 9, 9, 0x65, 0x66, // "lo" masked
        ];
        let mut whole = FrameDecoder::default();
        let expected = items(&mut whole, &stream);
        let mut d = FrameDecoder::default();
        let mut got = Vec::new();
        for b in stream.chunks(1) {
            got.extend(items(&mut d, b));
        }
        // Payload pieces arrive one byte at a time; join them to compare.
        let joined: Vec<String> = got.iter().fold(Vec::<String>::new(), |mut acc, s| {
            match (acc.last_mut(), s.strip_prefix("P ")) {
                (Some(last), Some(p)) if last.starts_with("P ") => {
                    last.pop();
                    last.push_str(&p[1..]);
                }
                _ => acc.push(s.clone()),
            }
            acc
        });
        assert_eq!(joined, expected);
        assert_eq!(
            expected,
            [
                "H fin=false rsv=0 op=Text len=3 hl=6",
                "P \"Hel\"",
                "E",
                "H fin=true rsv=0 op=Ping len=0 hl=2",
                "E",
                "H fin=true rsv=0 op=Continuation len=2 hl=6",
                "P \"lo\"",
                "E"
            ]
        );
    }
}
