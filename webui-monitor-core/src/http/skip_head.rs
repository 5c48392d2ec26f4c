//! The rest of a request head over `max_header_bytes`, read for its framing fields only.
//!
//! The server may well accept such a head (uvicorn's httptools parser has no size limit), so
//! its request takes its answer and its body must be skipped, not taken for messages: that
//! needs the head's end and its `Content-Length` or `Transfer-Encoding`, nothing else.
use crate::http::head::{self, BodyFraming, FramingHeaders};

/// Bytes kept of each header line of a request head over `max_header_bytes` while the rest of
/// it is skipped: enough for any `Content-Length` or `Transfer-Encoding` a client sends. A
/// longer framing line makes the body's length unknown.
const SKIP_LINE_BYTES: usize = 1024;

/// What is read of a request head over the cap.
#[derive(Debug, Default)]
pub(super) struct SkipHead {
    framing: FramingHeaders,
    /// A framing field could not be read.
    unknown: bool,
    /// The first [`SKIP_LINE_BYTES`] of the current line.
    line: Vec<u8>,
    /// Length of the current line so far.
    line_len: usize,
}

impl SkipHead {
    /// The lines of a head collected so far (start line first); the last `partial` bytes are
    /// the start of a line whose end has not come.
    pub(super) fn from_collected(block: &[u8], partial: usize) -> Self {
        let mut skip = Self::default();
        let (complete, rest) = block.split_at(block.len() - partial);
        let complete = complete.strip_suffix(b"\n").unwrap_or(complete);
        for line in complete.split(|&b| b == b'\n').skip(1) {
            skip.end_line_with(line);
        }
        skip.line_len = rest.len();
        skip.line
            .extend_from_slice(&rest[..rest.len().min(SKIP_LINE_BYTES)]);
        skip
    }

    fn end_line_with(&mut self, line: &[u8]) {
        if head::framing_line(&mut self.framing, line).is_err() {
            self.unknown = true;
        }
    }

    /// Reads `input` up to the blank line; returns the bytes used and, at the end of the head,
    /// the body's framing if known.
    pub(super) fn feed(&mut self, input: &[u8]) -> (usize, Option<Option<BodyFraming>>) {
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            let nl = memchr::memchr(b'\n', rest);
            let piece = &rest[..nl.unwrap_or(rest.len())];
            let room = SKIP_LINE_BYTES.saturating_sub(self.line.len());
            self.line.extend_from_slice(&piece[..piece.len().min(room)]);
            self.line_len += piece.len();
            let Some(nl) = nl else {
                return (input.len(), None);
            };
            i += nl + 1;
            let line_len = std::mem::take(&mut self.line_len);
            if line_len == 0 || self.line == b"\r" {
                let framing = (!self.unknown).then(|| self.framing.request_body_framing());
                return (i, Some(framing));
            }
            let line = std::mem::take(&mut self.line);
            if line_len > line.len() {
                // Cut: a framing field whose value was not kept cannot be read.
                let name = line.split(|&b| b == b':').next().unwrap_or_default();
                if line.contains(&b':') && head::is_framing_name(name) {
                    self.unknown = true;
                }
            } else {
                self.end_line_with(&line);
            }
            self.line = line;
            self.line.clear();
        }
        (input.len(), None)
    }
}
