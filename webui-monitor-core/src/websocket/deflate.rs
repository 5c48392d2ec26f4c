//! permessage-deflate (RFC 7692): the parameters a 101 response accepted, and one raw-DEFLATE
//! inflater per direction.
//!
//! Window bits: the decoder always keeps a 32 KiB window (miniz_oxide). A stream compressed with
//! a smaller window (Open WebUI: 12 bits) only references distances within it, and a decoder
//! with a larger window accepts it unchanged; the negotiated value is parsed, range-checked and
//! reported but needs no different decoder.
//!
//! Memory: an inflater is about 43 KiB (32 KiB window + tables), allocated on a direction's
//! first compressed message.
use flate2::{Decompress, FlushDecompress, Status};

use crate::{segment::Direction, websocket::buffer::reserve_within};

/// The four bytes RFC 7692 §7.2.2 strips from the end of every compressed message (the empty
/// stored block of a sync flush); the receiver appends them before inflating the message's end.
pub const MESSAGE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Errors of the permessage-deflate layer: a bad `Sec-WebSocket-Extensions` or a stream that
/// cannot be inflated. Either way the direction cannot be decoded any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeflateError {
    #[error("permessage-deflate accepted more than once")]
    DuplicateExtension,
    #[error("unknown permessage-deflate parameter")]
    UnknownParameter,
    #[error("permessage-deflate parameter given twice")]
    DuplicateParameter,
    #[error("invalid permessage-deflate parameter value")]
    InvalidValue,
    #[error("corrupt DEFLATE data")]
    Corrupt,
    #[error("final DEFLATE block in a direction with context takeover")]
    FinalBlockWithContextTakeover,
    #[error("message inflates beyond the {0}-byte cap")]
    InflatedTooLarge(u64),
}

/// Accepted permessage-deflate parameters (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
}

impl Default for DeflateParams {
    fn default() -> Self {
        Self {
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
        }
    }
}

/// The parameters that apply to what one side sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectionParams {
    pub window_bits: u8,
    /// The sender resets its compressor per message, so the inflater must too.
    pub no_context_takeover: bool,
}

impl DeflateParams {
    /// `Request` is what the client compresses (`client_*`), `Response` the server (`server_*`).
    pub fn direction(&self, direction: Direction) -> DirectionParams {
        match direction {
            Direction::Request => DirectionParams {
                window_bits: self.client_max_window_bits,
                no_context_takeover: self.client_no_context_takeover,
            },
            Direction::Response => DirectionParams {
                window_bits: self.server_max_window_bits,
                no_context_takeover: self.server_no_context_takeover,
            },
        }
    }
}

/// Parses a 101 response's `Sec-WebSocket-Extensions`: `Ok(None)` when permessage-deflate was
/// not accepted. Other extensions are ignored here; frames using their RSV bits are then
/// protocol errors for the framing layer.
pub fn parse_extensions(header: &str) -> Result<Option<DeflateParams>, DeflateError> {
    let mut found = None;
    for extension in header.split(',') {
        let mut parts = extension.split(';');
        let name = parts.next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("permessage-deflate") {
            continue;
        }
        if found.is_some() {
            return Err(DeflateError::DuplicateExtension);
        }
        let mut params = DeflateParams::default();
        let mut seen = 0u8;
        for param in parts {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (param.trim(), None),
            };
            if key.is_empty() {
                continue;
            }
            let (bit, slot) = match key.to_ascii_lowercase().as_str() {
                "server_max_window_bits" => (1, 0),
                "client_max_window_bits" => (2, 1),
                "server_no_context_takeover" => (4, 2),
                "client_no_context_takeover" => (8, 3),
                _ => return Err(DeflateError::UnknownParameter),
            };
            if seen & bit != 0 {
                return Err(DeflateError::DuplicateParameter);
            }
            seen |= bit;
            match slot {
                0 | 1 => {
                    let bits = match value {
                        Some(v) => v.parse::<u8>().map_err(|_| DeflateError::InvalidValue)?,
                        // Only legal in an offer, but harmless: the default window.
                        None => 15,
                    };
                    if !(8..=15).contains(&bits) {
                        return Err(DeflateError::InvalidValue);
                    }
                    if slot == 0 {
                        params.server_max_window_bits = bits;
                    } else {
                        params.client_max_window_bits = bits;
                    }
                }
                _ => {
                    if value.is_some() {
                        return Err(DeflateError::InvalidValue);
                    }
                    if slot == 2 {
                        params.server_no_context_takeover = true;
                    } else {
                        params.client_no_context_takeover = true;
                    }
                }
            }
        }
        found = Some(params);
    }
    Ok(found)
}

/// Bytes of one message: what was inflated and what was kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inflated {
    pub produced: u64,
    /// Produced bytes dropped because the output reached its cap.
    pub dropped: u64,
}

/// Raw-DEFLATE inflater of one direction.
pub struct Inflater {
    inner: Decompress,
    params: DirectionParams,
    /// The current message ended its DEFLATE stream (BFINAL): with context takeover the next
    /// message would need the window a fresh inflater no longer has.
    stream_ended: bool,
    /// Inflated bytes of the current message.
    inflated: u64,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("params", &self.params)
            .field("stream_ended", &self.stream_ended)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    pub fn new(params: DirectionParams) -> Self {
        Self {
            inner: Decompress::new(false),
            params,
            stream_ended: false,
            inflated: 0,
        }
    }

    /// Starts a compressed message: resets the window when the sender does not keep it.
    pub fn begin_message(&mut self) -> Result<(), DeflateError> {
        self.inflated = 0;
        if self.params.no_context_takeover {
            self.inner.reset(false);
            self.stream_ended = false;
        } else if self.stream_ended {
            return Err(DeflateError::FinalBlockWithContextTakeover);
        }
        Ok(())
    }

    /// Inflates part of the current message, appending at most `keep - out.len()` bytes to `out`
    /// and dropping the rest (still inflated: the window must stay in step with the sender).
    /// More than `max_inflated` bytes for one message is an error (decompression bomb).
    pub fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        keep: usize,
        max_inflated: u64,
    ) -> Result<Inflated, DeflateError> {
        let mut result = Inflated::default();
        let mut scratch = [0u8; 8192];
        while !self.stream_ended {
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let status = self
                .inner
                .decompress(input, &mut scratch, FlushDecompress::None)
                .map_err(|_| DeflateError::Corrupt)?;
            let consumed = usize::try_from(self.inner.total_in() - in_before)
                .map_or(input.len(), |c| c.min(input.len()));
            let produced = usize::try_from(self.inner.total_out() - out_before)
                .map_or(scratch.len(), |p| p.min(scratch.len()));
            input = &input[consumed..];
            let room = keep.saturating_sub(out.len()).min(produced);
            reserve_within(out, room, keep);
            out.extend_from_slice(&scratch[..room]);
            result.produced += produced as u64;
            result.dropped += (produced - room) as u64;
            self.inflated += produced as u64;
            if self.inflated > max_inflated {
                return Err(DeflateError::InflatedTooLarge(max_inflated));
            }
            if status == Status::StreamEnd {
                // Bytes after a final block (e.g. the appended tail) carry nothing.
                self.stream_ended = true;
                break;
            }
            let made_progress = consumed > 0 || produced > 0;
            if !made_progress || (input.is_empty() && produced < scratch.len()) {
                break;
            }
        }
        Ok(result)
    }

    /// Ends the current message: inflates the stripped tail, which flushes the rest.
    pub fn end_message(
        &mut self,
        out: &mut Vec<u8>,
        keep: usize,
        max_inflated: u64,
    ) -> Result<Inflated, DeflateError> {
        self.inflate(&MESSAGE_TAIL, out, keep, max_inflated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// Compresses one message the way RFC 7692 senders do: sync flush, tail stripped.
    fn compress_message(c: &mut Compress, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 64);
        c.compress_vec(text, &mut out, FlushCompress::Sync).unwrap();
        while out.len() == out.capacity() {
            out.reserve(64);
            c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
        }
        assert!(out.ends_with(&MESSAGE_TAIL));
        out.truncate(out.len() - 4);
        out
    }

    fn inflate_message(inf: &mut Inflater, data: &[u8], keep: usize) -> (Vec<u8>, Inflated) {
        inf.begin_message().unwrap();
        let mut out = Vec::new();
        let a = inf.inflate(data, &mut out, keep, 1 << 20).unwrap();
        let b = inf.end_message(&mut out, keep, 1 << 20).unwrap();
        (
            out,
            Inflated {
                produced: a.produced + b.produced,
                dropped: a.dropped + b.dropped,
            },
        )
    }

    #[test]
    fn parses_open_webui_response() {
        let p = parse_extensions(
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p,
            DeflateParams {
                server_max_window_bits: 12,
                client_max_window_bits: 12,
                server_no_context_takeover: false,
                client_no_context_takeover: false,
            }
        );
        assert_eq!(
            p.direction(Direction::Response),
            DirectionParams {
                window_bits: 12,
                no_context_takeover: false
            }
        );
    }

    #[test]
    fn parses_variants_and_rejects_bad_ones() {
        let p = parse_extensions(
            "x-foo; a=1, Permessage-Deflate; server_no_context_takeover; client_max_window_bits=\"10\"",
        )
        .unwrap()
        .unwrap();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (15, 10)
        );
        assert_eq!(parse_extensions("x-webkit-deflate-frame"), Ok(None));
        assert_eq!(parse_extensions(""), Ok(None));
        assert_eq!(
            parse_extensions("permessage-deflate; server_max_window_bits=16"),
            Err(DeflateError::InvalidValue)
        );
        assert_eq!(
            parse_extensions("permessage-deflate; server_max_window_bits=7"),
            Err(DeflateError::InvalidValue)
        );
        assert_eq!(
            parse_extensions("permessage-deflate; foo"),
            Err(DeflateError::UnknownParameter)
        );
        assert_eq!(
            parse_extensions(
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            ),
            Err(DeflateError::DuplicateParameter)
        );
        assert_eq!(
            parse_extensions("permessage-deflate, permessage-deflate"),
            Err(DeflateError::DuplicateExtension)
        );
    }

    #[test]
    fn context_takeover_keeps_the_window() {
        let mut c = Compress::new(Compression::default(), false);
        let m1 = compress_message(&mut c, b"42[\"events\",{\"chat_id\":\"abc\"}]");
        let m2 = compress_message(&mut c, b"42[\"events\",{\"chat_id\":\"abc\"}]");
        // The second message is mostly a back-reference into the first one.
        assert!(m2.len() < m1.len());
        let mut inf = Inflater::new(DirectionParams {
            window_bits: 15,
            no_context_takeover: false,
        });
        assert_eq!(
            inflate_message(&mut inf, &m1, 1024).0,
            b"42[\"events\",{\"chat_id\":\"abc\"}]"
        );
        assert_eq!(
            inflate_message(&mut inf, &m2, 1024).0,
            b"42[\"events\",{\"chat_id\":\"abc\"}]"
        );
        // A fresh inflater cannot decode the second message alone.
        let mut fresh = Inflater::new(DirectionParams {
            window_bits: 15,
            no_context_takeover: false,
        });
        fresh.begin_message().unwrap();
        let mut out = Vec::new();
        let r = fresh
            .inflate(&m2, &mut out, 1024, 1 << 20)
            .and_then(|_| fresh.end_message(&mut out, 1024, 1 << 20));
        assert!(r.is_err() || out != b"42[\"events\",{\"chat_id\":\"abc\"}]");
    }

    #[test]
    fn no_context_takeover_resets_per_message() {
        let mut inf = Inflater::new(DirectionParams {
            window_bits: 15,
            no_context_takeover: true,
        });
        for text in [&b"first message"[..], b"first message", b"second"] {
            let mut c = Compress::new(Compression::default(), false);
            let m = compress_message(&mut c, text);
            assert_eq!(inflate_message(&mut inf, &m, 1024).0, text);
        }
    }

    #[test]
    fn output_cap_drops_but_keeps_window() {
        let mut c = Compress::new(Compression::default(), false);
        let text = vec![b'x'; 50_000];
        let m1 = compress_message(&mut c, &text);
        let m2 = compress_message(&mut c, b"after");
        let mut inf = Inflater::new(DirectionParams {
            window_bits: 15,
            no_context_takeover: false,
        });
        let (out, stats) = inflate_message(&mut inf, &m1, 100);
        assert_eq!(out.len(), 100);
        assert_eq!(
            stats,
            Inflated {
                produced: 50_000,
                dropped: 49_900
            }
        );
        assert_eq!(inflate_message(&mut inf, &m2, 100).0, b"after");
    }

    #[test]
    fn bomb_and_garbage_are_errors() {
        let mut c = Compress::new(Compression::best(), false);
        let m = compress_message(&mut c, &vec![0u8; 1 << 20]);
        let mut inf = Inflater::new(DirectionParams {
            window_bits: 15,
            no_context_takeover: false,
        });
        inf.begin_message().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            inf.inflate(&m, &mut out, 16, 4096),
            Err(DeflateError::InflatedTooLarge(4096))
        );
        let mut inf = Inflater::new(DirectionParams {
            window_bits: 15,
            no_context_takeover: false,
        });
        inf.begin_message().unwrap();
        assert_eq!(
            inf.inflate(&[0xff; 32], &mut out, 16, 4096),
            Err(DeflateError::Corrupt)
        );
    }

    #[test]
    fn final_block_with_context_takeover_stops_the_direction() {
        let mut c = Compress::new(Compression::default(), false);
        let mut m = Vec::with_capacity(256);
        c.compress_vec(b"hello", &mut m, FlushCompress::Finish)
            .unwrap();
        let mut inf = Inflater::new(DirectionParams {
            window_bits: 15,
            no_context_takeover: false,
        });
        assert_eq!(inflate_message(&mut inf, &m, 64).0, b"hello");
        assert_eq!(
            inf.begin_message(),
            Err(DeflateError::FinalBlockWithContextTakeover)
        );
    }
}
