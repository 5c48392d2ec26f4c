//! Encoders that synthesise WebSocket traffic for tests (compiled for unit tests, and for other
//! crates' tests with the `testutil` feature: `webui-monitor = { path = "…", features =
//! ["testutil"] }`).
//!
//! ```ignore
//! use webui_monitor::websocket::testutil::{Encoder, openwebui};
//! let mut server = Encoder::server(true); // permessage-deflate, context takeover, unmasked
//! let mut client = Encoder::client(true); // permessage-deflate, context takeover, masked
//! let mut s2c = server.text(&openwebui::connect("sid-1"));
//! s2c.extend(server.text(&openwebui::usage("chat", "msg", 6, 19, true)));
//! let c2s = client.text(&openwebui::user_join("eyJ…"));
//! // 101 response header to send with it: openwebui::EXTENSIONS
//! ```
//!
//! The compressor always uses a 32 KiB window (flate2's Rust backend cannot shrink it): fine for
//! this decoder, which accepts any window, but a strict peer that negotiated fewer window bits
//! could reject its output.
use flate2::{Compress, Compression, FlushCompress};

use crate::{
    segment::Direction,
    websocket::{
        WebSocketCounters, WebSocketLimits,
        deflate::{DeflateError, MESSAGE_TAIL, parse_extensions},
        frame::{FrameHeader, Opcode},
        message::{DecodeError, Decoded, DirectionDecoder},
    },
};

/// Decodes one direction of a connection into its text messages (test side: a synthetic
/// Open WebUI server can read what its client sent). `extensions` is the 101 response's
/// `Sec-WebSocket-Extensions`. Incomplete trailing bytes are left undecoded.
pub fn decode_messages(
    direction: Direction,
    extensions: Option<&str>,
    stream: &[u8],
) -> Result<Vec<String>, DecodeError> {
    let deflate = extensions
        .map(parse_extensions)
        .transpose()
        .map_err(|e: DeflateError| DecodeError::Deflate(e))?
        .flatten();
    let mut decoder = DirectionDecoder::new(
        direction,
        deflate.map(|p| p.direction(direction)),
        &crate::memory::MemoryAccount::default(),
    );
    let limits = WebSocketLimits::default();
    let mut counters = WebSocketCounters::default();
    let mut input = stream;
    let mut messages = Vec::new();
    while let Some(decoded) = decoder.next(&mut input, &limits, &mut counters)? {
        if let Decoded::Message {
            text: true, bytes, ..
        } = decoded
        {
            messages.push(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    Ok(messages)
}

/// Encodes one frame. `masking_key` masks the payload (client → server frames).
pub fn frame(
    fin: bool,
    rsv: u8,
    opcode: Opcode,
    masking_key: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((u8::from(fin) << 7) | ((rsv & 0x07) << 4) | opcode.bits());
    let mask_bit = if masking_key.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match masking_key {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Compresses messages as a permessage-deflate sender does: raw DEFLATE, sync flush, the final
/// `00 00 ff ff` stripped; the window is kept across messages unless `context_takeover` is off.
pub struct MessageCompressor {
    inner: Compress,
    context_takeover: bool,
}

impl MessageCompressor {
    pub fn new(context_takeover: bool) -> Self {
        Self {
            inner: Compress::new(Compression::default(), false),
            context_takeover,
        }
    }

    pub fn compress(&mut self, message: &[u8]) -> Vec<u8> {
        if !self.context_takeover {
            self.inner.reset();
        }
        let mut out = Vec::with_capacity(message.len() / 2 + 64);
        let mut input = message;
        loop {
            let before = self.inner.total_in();
            // Compressing into a Vec cannot fail for a well-formed compressor.
            let _ = self
                .inner
                .compress_vec(input, &mut out, FlushCompress::Sync);
            let consumed = (self.inner.total_in() - before) as usize;
            input = &input[consumed.min(input.len())..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.ends_with(&MESSAGE_TAIL) {
            out.truncate(out.len() - MESSAGE_TAIL.len());
        }
        out
    }
}

/// Encodes messages of one side of a connection.
pub struct Encoder {
    compressor: Option<MessageCompressor>,
    masked: bool,
    next_key: u32,
}

impl Encoder {
    /// Server → client: unmasked; compressed with context takeover when `deflate`.
    pub fn server(deflate: bool) -> Self {
        Self {
            compressor: deflate.then(|| MessageCompressor::new(true)),
            masked: false,
            next_key: 0,
        }
    }

    /// Client → server: masked (a new key per frame); compressed with context takeover when
    /// `deflate`.
    pub fn client(deflate: bool) -> Self {
        Self {
            compressor: deflate.then(|| MessageCompressor::new(true)),
            masked: true,
            next_key: 0x3779_a1c5,
        }
    }

    /// Resets the compressor per message (`*_no_context_takeover`).
    pub fn without_context_takeover(mut self) -> Self {
        if self.compressor.is_some() {
            self.compressor = Some(MessageCompressor::new(false));
        }
        self
    }

    fn key(&mut self) -> Option<[u8; 4]> {
        self.masked.then(|| {
            self.next_key = self
                .next_key
                .wrapping_mul(1_664_525)
                .wrapping_add(1_013_904_223);
            self.next_key.to_be_bytes()
        })
    }

    /// A text message in one frame.
    pub fn text(&mut self, text: &str) -> Vec<u8> {
        self.text_fragmented(text, 1).concat()
    }

    /// A text message split into `pieces` frames (at least one) of about equal size (of the
    /// compressed payload when compressing).
    pub fn text_fragmented(&mut self, text: &str, pieces: usize) -> Vec<Vec<u8>> {
        let (payload, rsv) = match &mut self.compressor {
            Some(c) => (c.compress(text.as_bytes()), FrameHeader::RSV1),
            None => (text.as_bytes().to_vec(), 0),
        };
        let pieces = pieces.max(1);
        let size = payload.len().div_ceil(pieces).max(1);
        let mut chunks: Vec<&[u8]> = payload.chunks(size).collect();
        while chunks.len() < pieces {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let (opcode, rsv) = if i == 0 {
                    (Opcode::Text, rsv)
                } else {
                    (Opcode::Continuation, 0)
                };
                let key = self.key();
                frame(i == last, rsv, opcode, key, chunk)
            })
            .collect()
    }

    /// A close frame with a status code.
    pub fn close(&mut self, code: u16) -> Vec<u8> {
        let key = self.key();
        frame(true, 0, Opcode::Close, key, &code.to_be_bytes())
    }

    pub fn ping(&mut self, payload: &[u8]) -> Vec<u8> {
        let key = self.key();
        frame(true, 0, Opcode::Ping, key, payload)
    }

    pub fn pong(&mut self, payload: &[u8]) -> Vec<u8> {
        let key = self.key();
        frame(true, 0, Opcode::Pong, key, payload)
    }
}

/// Open WebUI-shaped Engine.IO/Socket.IO messages (text of one WebSocket message each).
pub mod openwebui {
    /// RFC 6455 §1.3's sample key and the `Sec-WebSocket-Accept` that answers it.
    pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /// The browser's upgrade request (Chromium offers permessage-deflate).
    pub fn upgrade_request(host: &str) -> String {
        format!(
            "GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        )
    }

    /// Open WebUI's (uvicorn's) 101 response accepting permessage-deflate.
    pub fn switching_protocols() -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\nSec-WebSocket-Extensions: {EXTENSIONS}\r\nserver: uvicorn\r\n\r\n"
        )
    }

    /// `Sec-WebSocket-Extensions` of Open WebUI's 101 response.
    pub const EXTENSIONS: &str =
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12";

    /// Server Engine.IO handshake.
    pub fn engineio_open(sid: &str) -> String {
        format!(
            "0{{\"sid\":\"{sid}\",\"upgrades\":[],\"pingTimeout\":20000,\"pingInterval\":25000,\"maxPayload\":16777216}}"
        )
    }
    /// Server Socket.IO connect with the namespace sid (the chat requests' `session_id`).
    pub fn connect(sid: &str) -> String {
        format!("40{{\"sid\":\"{sid}\"}}")
    }
    /// Client Socket.IO connect.
    pub fn client_connect() -> String {
        "40{}".to_string()
    }
    /// Client `user-join` with the session JWT.
    pub fn user_join(token: &str) -> String {
        format!("42[\"user-join\",{{\"auth\":{{\"token\":\"{token}\"}}}}]")
    }
    fn events(chat_id: &str, message_id: &str, kind: &str, data: &str) -> String {
        format!(
            "42[\"events\",{{\"chat_id\":\"{chat_id}\",\"message_id\":\"{message_id}\",\"data\":{{\"type\":\"{kind}\",\"data\":{data}}}}}]"
        )
    }
    /// A streamed text delta (`response:completion`, Responses-style). `delta` must be JSON-safe.
    pub fn delta(chat_id: &str, message_id: &str, delta: &str) -> String {
        events(
            chat_id,
            message_id,
            "response:completion",
            &format!(
                "{{\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"{delta}\"}}"
            ),
        )
    }
    /// A `chat:completion` with usage; with `done` it is the final event (as Open WebUI sends it,
    /// with the answer text before the usage).
    pub fn usage(
        chat_id: &str,
        message_id: &str,
        prompt: u64,
        completion: u64,
        done: bool,
    ) -> String {
        let usage = format!(
            "\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{}}}",
            prompt + completion
        );
        let data = if done {
            format!(
                "{{\"done\":true,\"output\":[{{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{{\"type\":\"output_text\",\"text\":\"answer\"}}]}}],\"title\":\"Chat\",{usage}}}"
            )
        } else {
            format!("{{{usage}}}")
        };
        events(chat_id, message_id, "chat:completion", &data)
    }
    /// Any other `events` type (e.g. `chat:list`), with an empty object as data.
    pub fn other_event(chat_id: &str, message_id: &str, kind: &str) -> String {
        events(chat_id, message_id, kind, "{}")
    }
}
