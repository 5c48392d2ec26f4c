//! One direction's HTTP/1.x message framing: bytes in, [`Frame`]s out.
//!
//! A [`Framer`] finds where messages start and end — header blocks, bodies delimited by
//! `Content-Length`, chunked coding or the close — and nothing else: it does not parse header
//! fields beyond the start line's plausibility, does not know which request a response answers,
//! and does not decode content. Its caller reads each [`Frame::Head`] and says what follows it
//! ([`Framer::start_body`], [`Framer::next_message`], [`Framer::hold`], [`Framer::resync`] or
//! [`Framer::stop`]).
//!
//! Only a header block (capped), the tail of one line while resynchronising, and held bytes
//! (capped) are buffered; body bytes are handed out as they come.
//!
//! The file is about 750 lines (tests aside): the framer is one state machine; its states and
//! their transitions stay in one place so that each can be read against the others.
use crate::{
    http::{
        chunked::ChunkedDecoder,
        head::{self, BodyFraming, HeadError},
        limits::HttpShared,
        skip_head::SkipHead,
    },
    reassembly::ChunksSkipped,
    segment::{Direction, Timestamp},
};

/// What one call of [`Framer::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame<'a> {
    /// A complete header block, start line through the blank line. `resynced`: it was found by
    /// resynchronisation (or the direction was joined mid-stream). The caller must say what
    /// follows before calling [`Framer::next`] again.
    Head {
        block: &'a [u8],
        first_ts: Timestamp,
        resynced: bool,
    },
    /// A header block was rejected; the framer already resynchronises.
    Rejected(HeadError),
    /// A request head over `max_header_bytes` was read to its end without being kept.
    /// `framing`: how its body is delimited, if that could be read. The caller must say what
    /// follows, as after a [`Frame::Head`].
    Oversized { framing: Option<BodyFraming> },
    /// Body bytes were read: `wire` bytes of input, `data` bytes after de-chunking (handed to
    /// the body sink), `chunks` non-empty chunks so far.
    Body {
        wire: u64,
        data: u64,
        chunks: u32,
        end: BodyEnd,
    },
    /// Bytes were held ([`Framer::hold`]); `full`: the hold reached `max_held_bytes`.
    Held { full: bool },
}

/// Whether a body ended with the bytes of a [`Frame::Body`] or a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyEnd {
    /// More body follows.
    More,
    /// The body ended as framed; `gap`: bytes were lost inside it.
    Complete { gap: bool },
    /// The body broke its framing (chunked coding); the framer resynchronises.
    Broken,
}

/// What a gap did to the framing ([`Framer::on_gap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gap {
    /// Skipped inside a body whose length is known (or runs to the close): the framing survives,
    /// the content does not.
    InBody(BodyEnd),
    /// Held bytes were lost (handled here).
    InHold,
    /// The body being read was cut; the framer resynchronises.
    BodyCut,
    /// Between or inside header blocks: a message was probably swallowed. The framer
    /// resynchronises.
    InHead,
    /// While resynchronising or ignoring: nothing more is lost.
    Elsewhere,
}

/// The chunked decoder is boxed so that a length-delimited body, the common case, costs no
/// allocation while the framer stays small on idle connections.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Box<ChunkedDecoder>),
    Close,
}

#[derive(Debug)]
struct Body {
    framing: Framing,
    /// Bytes were lost inside the body.
    gap: bool,
}

#[derive(Debug)]
enum State {
    /// Looking for a plausible start line; `buf` holds the tail of the current line.
    Resync,
    /// Collecting a header block in `buf`; `start_checked`: its start line was checked.
    Head {
        start_checked: bool,
    },
    /// A complete header block is in `buf`, reported as [`Frame::Head`]; the caller decides.
    Complete,
    Body(Body),
    /// Reading the rest of a request head over the cap, for its framing fields only.
    SkipHead(Box<SkipHead>),
    /// Holding bytes in `buf`; `gap`: some were lost (resynchronise when released).
    Hold {
        gap: bool,
    },
    /// Nothing more is HTTP in this direction.
    Ignore,
}

/// The framing state machine of one direction.
pub(super) struct Framer {
    direction: Direction,
    state: State,
    /// Header block, partial resync line, or held bytes.
    buf: Vec<u8>,
    /// Bytes of the current header line before its LF.
    line_len: usize,
    /// When the first byte in `buf` arrived.
    first_ts: Timestamp,
    /// When the last held byte arrived.
    held_ts: Timestamp,
    /// The message being collected starts at a resynchronisation point.
    resynced: bool,
}

/// `buf` as a length only: it holds raw header blocks (Authorization, Cookie) or held bodies.
impl std::fmt::Debug for Framer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framer")
            .field("direction", &self.direction)
            .field("state", &self.state)
            .field("buf_bytes", &self.buf.len())
            .field("line_len", &self.line_len)
            .field("first_ts", &self.first_ts)
            .field("resynced", &self.resynced)
            .finish()
    }
}

/// A header block lying whole in the input: from `start`, up to the last `rest` bytes.
struct WholeHead {
    start: usize,
    rest: usize,
}

/// Outcome of collecting header bytes.
enum HeadStep {
    /// All input consumed, block not complete.
    More,
    /// Block complete after consuming this many input bytes.
    Complete(usize),
    /// Block rejected after consuming this many bytes.
    Error(HeadError, usize),
    /// A request head with a plausible start line went over the cap after consuming this many
    /// bytes; the rest of it is skipped.
    Oversized(usize),
}

impl Framer {
    /// `mid_stream`: the connection was joined without seeing its SYN, so the first message
    /// starts at the first plausible start line.
    pub(super) fn new(direction: Direction, mid_stream: bool) -> Self {
        Self {
            direction,
            state: if mid_stream {
                State::Resync
            } else {
                State::Head {
                    start_checked: false,
                }
            },
            buf: Vec::new(),
            line_len: 0,
            first_ts: Timestamp::default(),
            held_ts: Timestamp::default(),
            resynced: mid_stream,
        }
    }

    /// Between messages: no byte of the next one has been seen.
    pub(super) fn between_messages(&self) -> bool {
        matches!(self.state, State::Head { .. }) && self.buf.is_empty()
    }

    pub(super) fn is_resyncing(&self) -> bool {
        matches!(self.state, State::Resync)
    }

    pub(super) fn is_holding(&self) -> bool {
        matches!(self.state, State::Hold { .. })
    }

    /// Whether a close-delimited body is being read.
    pub(super) fn in_close_delimited_body(&self) -> bool {
        matches!(&self.state, State::Body(b) if matches!(b.framing, Framing::Close))
    }

    fn reset_buf(&mut self) {
        // Released, not cleared: most connections wait far longer between messages than they
        // take to carry one, and an idle keep-alive connection should cost no head capacity
        // (one allocation per head instead).
        self.buf = Vec::new();
        self.line_len = 0;
    }

    /// The next message starts with the next byte.
    pub(super) fn next_message(&mut self) {
        self.reset_buf();
        self.state = State::Head {
            start_checked: false,
        };
    }

    /// Look for the next plausible start line.
    pub(super) fn resync(&mut self) {
        self.reset_buf();
        self.state = State::Resync;
        self.resynced = true;
    }

    /// The reported head is followed by a body framed as `framing` (not [`BodyFraming::None`]).
    pub(super) fn start_body(&mut self, framing: BodyFraming, shared: &HttpShared) {
        self.reset_buf();
        let framing = match framing {
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => Framing::Chunked(Box::new(ChunkedDecoder::new(
                shared.limits.max_chunk_meta_bytes,
            ))),
            BodyFraming::Close | BodyFraming::None => Framing::Close,
        };
        self.state = State::Body(Body {
            framing,
            gap: false,
        });
    }

    /// Hold the following bytes until [`Self::release`].
    pub(super) fn hold(&mut self) {
        self.reset_buf();
        self.state = State::Hold { gap: false };
    }

    /// Ends holding: the held bytes and when the last of them arrived. The framer continues
    /// between messages, or resynchronises if held bytes were lost.
    pub(super) fn release(&mut self) -> (Vec<u8>, Timestamp) {
        let gap = matches!(self.state, State::Hold { gap: true });
        let held = std::mem::take(&mut self.buf);
        if gap {
            self.resync();
        } else {
            self.next_message();
        }
        (held, self.held_ts)
    }

    /// Nothing more in this direction is HTTP; returns what was held.
    pub(super) fn stop(&mut self) -> Vec<u8> {
        let held = match self.state {
            State::Hold { .. } => std::mem::take(&mut self.buf),
            _ => Vec::new(),
        };
        self.buf = Vec::new();
        self.state = State::Ignore;
        held
    }

    /// Held bytes are waiting.
    pub(super) fn holds_bytes(&self) -> bool {
        self.is_holding() && !self.buf.is_empty()
    }

    /// The body being read ends here (FIN or close); `Some(complete)` if there was one:
    /// complete when it runs to the close. The framer is then between messages.
    pub(super) fn end_body(&mut self) -> Option<BodyEnd> {
        let State::Body(body) = &self.state else {
            return None;
        };
        let end = if matches!(body.framing, Framing::Close) {
            BodyEnd::Complete { gap: body.gap }
        } else {
            BodyEnd::Broken
        };
        self.next_message();
        Some(end)
    }

    /// Consumes a prefix of `input`; `None` when all of it was used without anything to report.
    /// Body data goes to `sink` (de-chunked, still content-encoded). A [`Frame::Head`] borrows
    /// `input` when the block lies whole in it, else the framer's buffer.
    pub(super) fn next<'a, 'i: 'a>(
        &'a mut self,
        input: &mut &'i [u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Option<Frame<'a>> {
        while !input.is_empty() {
            match &mut self.state {
                State::Ignore => {
                    shared.counters.ignored_bytes += input.len() as u64;
                    *input = &[];
                    return None;
                }
                State::Complete => {
                    debug_assert!(false, "the caller did not say what follows a head");
                    self.resync();
                }
                State::Hold { .. } => {
                    let room = shared.limits.max_held_bytes.saturating_sub(self.buf.len());
                    let n = room.min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    shared.counters.held_bytes_dropped += (input.len() - n) as u64;
                    self.held_ts = ts;
                    *input = &[];
                    let full = self.buf.len() >= shared.limits.max_held_bytes;
                    return Some(Frame::Held { full });
                }
                State::Resync => match self.find_start(input, ts, shared) {
                    Some(used) => *input = &input[used..],
                    None => {
                        *input = &[];
                        return None;
                    }
                },
                State::Head { .. } => {
                    if let Some(block) = self.whole_head(input, shared) {
                        let used = input.len() - block.rest;
                        let block_bytes = &input[block.start..used];
                        *input = &input[used..];
                        self.first_ts = ts;
                        self.state = State::Complete;
                        return Some(Frame::Head {
                            block: block_bytes,
                            first_ts: ts,
                            resynced: std::mem::take(&mut self.resynced),
                        });
                    }
                    match self.collect_head(input, ts, shared) {
                        HeadStep::More => {
                            *input = &[];
                            return None;
                        }
                        HeadStep::Error(e, used) => {
                            *input = &input[used..];
                            self.recover(e);
                            return Some(Frame::Rejected(e));
                        }
                        HeadStep::Oversized(used) => {
                            *input = &input[used..];
                            let skip = SkipHead::from_collected(&self.buf, self.line_len);
                            self.reset_buf();
                            self.state = State::SkipHead(Box::new(skip));
                        }
                        HeadStep::Complete(used) => {
                            *input = &input[used..];
                            self.state = State::Complete;
                            return Some(Frame::Head {
                                block: &self.buf,
                                first_ts: self.first_ts,
                                resynced: std::mem::take(&mut self.resynced),
                            });
                        }
                    }
                }
                State::SkipHead(skip) => match skip.feed(input) {
                    (used, None) => *input = &input[used..],
                    (used, Some(framing)) => {
                        *input = &input[used..];
                        self.state = State::Complete;
                        return Some(Frame::Oversized { framing });
                    }
                },
                State::Body(body) => {
                    let (used, frame) = read_body(body, input, sink);
                    *input = &input[used..];
                    match frame {
                        Frame::Body {
                            end: BodyEnd::Broken,
                            ..
                        } => {
                            shared.counters.chunked_errors += 1;
                            shared.counters.malformed_messages += 1;
                            self.resync();
                        }
                        Frame::Body {
                            end: BodyEnd::Complete { .. },
                            ..
                        } => self.next_message(),
                        _ => {}
                    }
                    return Some(frame);
                }
            }
        }
        None
    }

    /// Body bytes whose end is known from here, when nothing was lost in the body: the rest
    /// of a length-delimited body, or of the chunk being read in a chunked one. What may be
    /// skipped (see [`Framer::on_skipped`]).
    pub(super) fn body_remaining(&self) -> Option<u64> {
        let State::Body(body) = &self.state else {
            return None;
        };
        let rem = match &body.framing {
            _ if body.gap => None,
            Framing::Length(rem) => Some(*rem),
            Framing::Chunked(c) => c.data_remaining(),
            Framing::Close => None,
        };
        rem.filter(|&r| r > 0)
    }

    /// Where the chunked body being read stands, for a chunked skip: `Some(n)` with `n` > 0
    /// bytes of a chunk's data left (a skip of them takes the CRLF after them too, and ends
    /// at the next size line), `Some(0)` at the start of a chunk-size line; `None` outside a
    /// chunked body, elsewhere in one, or after a gap in it.
    pub(super) fn chunk_position(&self) -> Option<u64> {
        let State::Body(body) = &self.state else {
            return None;
        };
        match &body.framing {
            Framing::Chunked(c) if !body.gap => c
                .data_remaining()
                .filter(|&r| r > 0)
                .or_else(|| c.at_size_line().then_some(0)),
            _ => None,
        }
    }

    /// Whole chunks after a chunked skip went by unseen (see
    /// `StreamHandler::chunks_skipped`): counted as read. Returns the [`Frame::Body`] reading
    /// them would have returned, `None` outside a chunked body at a chunk-size line.
    pub(super) fn on_chunks_skipped(&mut self, skipped: ChunksSkipped) -> Option<Frame<'static>> {
        let State::Body(body) = &mut self.state else {
            return None;
        };
        let Framing::Chunked(c) = &mut body.framing else {
            return None;
        };
        if !c.skip_chunks(skipped.chunks) {
            return None;
        }
        Some(Frame::Body {
            wire: skipped.wire,
            data: skipped.data,
            chunks: c.chunks,
            end: BodyEnd::More,
        })
    }

    /// `len` bytes of the body being read (≤ [`Framer::body_remaining`]) were skipped on
    /// purpose: counted as read (de-chunked bytes: they are chunk data), not seen. Returns the [`Frame::Body`] reading them would
    /// have returned, `None` outside a length-delimited body.
    pub(super) fn on_skipped(&mut self, len: u64) -> Option<Frame<'static>> {
        let State::Body(body) = &mut self.state else {
            return None;
        };
        let (wire, data, chunks, end) = match &mut body.framing {
            Framing::Length(rem) => {
                let len = len.min(*rem);
                *rem -= len;
                let end = if *rem == 0 {
                    BodyEnd::Complete { gap: body.gap }
                } else {
                    BodyEnd::More
                };
                (len, len, 0, end)
            }
            // Chunk data never ends a chunked body: the last chunk follows. A chunked skip
            // takes the CRLF after the data too (see `Framer::chunk_position`).
            Framing::Chunked(c) => {
                let rem = c.data_remaining()?;
                let data = len.min(rem);
                c.skip_data(data);
                let wire = if len >= rem + 2 && c.skip_data_end() {
                    data + 2
                } else {
                    data
                };
                (wire, data, c.chunks, BodyEnd::More)
            }
            Framing::Close => return None,
        };
        if end != BodyEnd::More {
            self.next_message();
        }
        Some(Frame::Body {
            wire,
            data,
            chunks,
            end,
        })
    }

    /// `len` bytes are missing from this direction.
    pub(super) fn on_gap(&mut self, len: u64, shared: &mut HttpShared) -> Gap {
        let skippable = match &mut self.state {
            State::Body(body) => match &mut body.framing {
                Framing::Length(rem) if *rem >= len => {
                    *rem -= len;
                    true
                }
                Framing::Chunked(c) if c.data_remaining().is_some_and(|r| r >= len) => {
                    c.skip_data(len);
                    true
                }
                Framing::Close => true,
                _ => false,
            },
            State::Hold { gap } => {
                shared.counters.stream_gaps += 1;
                match self.direction {
                    // Resynchronise once the upgrade verdict releases the hold.
                    Direction::Request => {
                        *gap = true;
                        self.buf.clear();
                    }
                    Direction::Response => self.resync(),
                }
                return Gap::InHold;
            }
            _ => false,
        };
        if skippable {
            shared.counters.body_gaps += 1;
            let mut end = BodyEnd::More;
            if let State::Body(body) = &mut self.state {
                body.gap = true;
                if matches!(body.framing, Framing::Length(0)) {
                    end = BodyEnd::Complete { gap: true };
                }
            }
            if end != BodyEnd::More {
                self.next_message();
            }
            return Gap::InBody(end);
        }
        shared.counters.stream_gaps += 1;
        let gap = match self.state {
            State::Body(_) => Gap::BodyCut,
            State::Head { .. } | State::Complete | State::SkipHead(_) => Gap::InHead,
            State::Ignore => return Gap::Elsewhere,
            _ => Gap::Elsewhere,
        };
        self.resync();
        gap
    }

    /// After a rejected header block in `buf`.
    fn recover(&mut self, error: HeadError) {
        if error == HeadError::StartLine {
            self.resync_in_start_line();
        } else {
            self.resync();
        }
    }

    /// The start line in `buf` was rejected: a message may still start inside it (after the
    /// tail of a lost body), else resynchronise after it.
    fn resync_in_start_line(&mut self) {
        let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        match find_start_line(self.direction, line) {
            Some(at) if at > 0 => {
                self.buf.drain(..at);
                self.line_len = 0;
                self.state = State::Head {
                    start_checked: true,
                };
                self.resynced = true;
            }
            _ => self.resync(),
        }
    }

    /// A header block that starts with the next message byte and lies whole in `input`, within
    /// `max_header_bytes` and with a plausible start line: the common case, read where it lies.
    /// `None` sends everything else — a block spanning deliveries, over the cap, with a bad
    /// start line, or one whose start is already collected — through [`Framer::collect_head`],
    /// whose verdict on these bytes would be the same as this one's.
    fn whole_head(&self, input: &[u8], shared: &HttpShared) -> Option<WholeHead> {
        if !self.buf.is_empty() {
            return None;
        }
        // Empty lines before a message are ignored (RFC 9112 §2.2).
        let start = input.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
        let max = shared.limits.max_header_bytes;
        let window = &input[start..input.len().min(start.saturating_add(max))];
        let first_nl = memchr::memchr(b'\n', window)?;
        if !plausible_start_line(self.direction, &window[..first_nl]) {
            return None;
        }
        // The block ends at the first line after the start line that is empty or a lone CR.
        let mut nl = first_nl;
        loop {
            match window.get(nl + 1..) {
                Some([b'\n', ..]) => nl += 1,
                Some([b'\r', b'\n', ..]) => nl += 2,
                Some(rest) if !rest.is_empty() => {
                    nl += 1 + memchr::memchr(b'\n', rest)?;
                    continue;
                }
                _ => return None,
            }
            return Some(WholeHead {
                start,
                rest: input.len() - (start + nl + 1),
            });
        }
    }

    /// Collects header bytes into `buf` until the blank line.
    fn collect_head(&mut self, input: &[u8], ts: Timestamp, shared: &HttpShared) -> HeadStep {
        let State::Head { start_checked } = &mut self.state else {
            return HeadStep::More;
        };
        let mut i = 0;
        if self.buf.is_empty() {
            // Empty lines before a message are ignored (RFC 9112 §2.2).
            while i < input.len() && matches!(input[i], b'\r' | b'\n') {
                i += 1;
            }
            if i == input.len() {
                return HeadStep::More;
            }
            self.first_ts = ts;
            self.line_len = 0;
            *start_checked = false;
        }
        let max = shared.limits.max_header_bytes;
        while i < input.len() {
            let rest = &input[i..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                self.buf.extend_from_slice(rest);
                self.line_len += rest.len();
                if self.buf.len() > max {
                    let checked = *start_checked;
                    return self.over_cap(checked, input.len());
                }
                return HeadStep::More;
            };
            self.buf.extend_from_slice(&rest[..=nl]);
            i += nl + 1;
            let line_len = self.line_len + nl;
            self.line_len = 0;
            if self.buf.len() > max {
                let checked = *start_checked;
                return self.over_cap(checked, i);
            }
            let n = self.buf.len();
            let line = &self.buf[n - 1 - line_len..n - 1];
            if !*start_checked {
                *start_checked = true;
                if !plausible_start_line(self.direction, line) {
                    return HeadStep::Error(HeadError::StartLine, i);
                }
            } else if line.is_empty() || line == b"\r" {
                return HeadStep::Complete(i);
            }
        }
        HeadStep::More
    }

    /// The head in `buf` went over `max_header_bytes` after `used` input bytes. A request whose
    /// start line was read is skipped to its end (the server may well accept it, and its body
    /// must not be taken for messages); anything else is rejected.
    fn over_cap(&self, start_checked: bool, used: usize) -> HeadStep {
        if self.direction == Direction::Request && start_checked {
            HeadStep::Oversized(used)
        } else {
            HeadStep::Error(HeadError::TooLarge, used)
        }
    }

    /// Scans for the start of a message. A start line may follow the tail of a lost body on the
    /// same line, so a candidate is searched anywhere in each line, not only at line starts.
    /// Only the last `max_line` bytes of the current line are kept. Returns the input offset
    /// where parsing continues in [`State::Head`] (the start line is then already in `buf`), or
    /// `None` if all input was used.
    fn find_start(
        &mut self,
        input: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
    ) -> Option<usize> {
        // A start line longer than this is not plausible anyway.
        let max_line = shared.limits.max_header_bytes.min(8 * 1024);
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                let keep = rest.len().min(max_line);
                shared.counters.resync_skipped_bytes += (rest.len() - keep) as u64;
                self.buf.extend_from_slice(&rest[rest.len() - keep..]);
                if self.buf.len() > max_line {
                    let drop = self.buf.len() - max_line;
                    self.buf.drain(..drop);
                    shared.counters.resync_skipped_bytes += drop as u64;
                }
                return None;
            };
            self.buf.extend_from_slice(&rest[..nl]);
            if let Some(at) = find_start_line(self.direction, &self.buf) {
                shared.counters.resync_skipped_bytes += at as u64;
                self.buf.drain(..at);
                self.buf.push(b'\n');
                self.state = State::Head {
                    start_checked: true,
                };
                self.line_len = 0;
                self.first_ts = ts;
                self.resynced = true;
                return Some(i + nl + 1);
            }
            shared.counters.resync_skipped_bytes += self.buf.len() as u64 + 1;
            self.buf.clear();
            i += nl + 1;
        }
        None
    }
}

fn plausible_start_line(direction: Direction, line: &[u8]) -> bool {
    match direction {
        Direction::Request => head::plausible_request_line(line),
        Direction::Response => head::plausible_status_line(line),
    }
}

fn find_start_line(direction: Direction, line: &[u8]) -> Option<usize> {
    match direction {
        Direction::Request => head::find_request_line(line),
        Direction::Response => head::find_status_line(line),
    }
}

/// Reads body bytes from `input`; returns how many were used and what they were.
fn read_body(
    body: &mut Body,
    input: &[u8],
    sink: &mut dyn FnMut(&[u8]),
) -> (usize, Frame<'static>) {
    let mut data = 0u64;
    let (used, done, error) = match &mut body.framing {
        Framing::Length(rem) => {
            let n = input.len().min(usize::try_from(*rem).unwrap_or(usize::MAX));
            sink(&input[..n]);
            data = n as u64;
            *rem -= n as u64;
            (n, *rem == 0, false)
        }
        Framing::Close => {
            sink(input);
            data = input.len() as u64;
            (input.len(), false, false)
        }
        Framing::Chunked(c) => {
            let fed = c.feed(input, |d| {
                sink(d);
                data += d.len() as u64;
            });
            (fed.consumed, fed.done, fed.error.is_some())
        }
    };
    let chunks = match &body.framing {
        Framing::Chunked(c) => c.chunks,
        _ => 0,
    };
    let end = if error {
        BodyEnd::Broken
    } else if done {
        BodyEnd::Complete { gap: body.gap }
    } else {
        BodyEnd::More
    };
    let frame = Frame::Body {
        wire: used as u64,
        data,
        chunks,
        end,
    };
    (used, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: Direction = Direction::Request;

    fn ts(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    /// Every frame `input` yields, heads answered with `body` (the framing of their body).
    fn frames(framer: &mut Framer, input: &[u8], body: BodyFraming) -> Vec<String> {
        let mut shared = HttpShared::default();
        let mut input = input;
        let mut out = Vec::new();
        let mut data = Vec::new();
        while !input.is_empty() {
            let Some(frame) = framer.next(&mut input, ts(1), &mut shared, &mut |d| {
                data.extend_from_slice(d)
            }) else {
                break;
            };
            let is_head = matches!(frame, Frame::Head { .. });
            out.push(match frame {
                Frame::Head {
                    block, resynced, ..
                } => {
                    format!("head {} resynced={resynced}", block.len())
                }
                other => format!("{other:?}"),
            });
            if is_head {
                match body {
                    BodyFraming::None => framer.next_message(),
                    f => framer.start_body(f, &shared),
                }
            }
        }
        if !data.is_empty() {
            out.push(format!("data {:?}", String::from_utf8_lossy(&data)));
        }
        out
    }

    #[test]
    fn a_head_and_its_length_delimited_body() {
        let mut f = Framer::new(REQ, false);
        assert_eq!(
            frames(
                &mut f,
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                BodyFraming::Length(3)
            ),
            [
                "head 38 resynced=false",
                "Body { wire: 3, data: 3, chunks: 0, end: Complete { gap: false } }",
                "data \"abc\"",
            ]
        );
        assert!(f.between_messages());
    }

    #[test]
    fn a_broken_chunked_body_resynchronises() {
        let mut f = Framer::new(Direction::Response, false);
        assert_eq!(
            frames(
                &mut f,
                b"HTTP/1.1 200 OK\r\n\r\nzz\r\n",
                BodyFraming::Chunked
            ),
            [
                "head 19 resynced=false",
                "Body { wire: 0, data: 0, chunks: 0, end: Broken }",
            ]
        );
        assert!(f.is_resyncing());
    }

    #[test]
    fn a_mid_stream_direction_starts_at_a_start_line() {
        let mut f = Framer::new(REQ, true);
        assert_eq!(
            frames(&mut f, b"ail\"}GET / HTTP/1.1\r\n\r\n", BodyFraming::None),
            ["head 18 resynced=true"]
        );
    }

    #[test]
    fn a_bad_start_line_is_rejected() {
        let mut f = Framer::new(REQ, false);
        assert_eq!(
            frames(&mut f, b"\x16\x03\x01junk\r\n", BodyFraming::None),
            ["Rejected(StartLine)"]
        );
        assert!(f.is_resyncing());
    }

    #[test]
    fn a_gap_in_a_known_length_body_is_skipped() {
        let mut f = Framer::new(REQ, false);
        let mut shared = HttpShared::default();
        f.start_body(BodyFraming::Length(4), &shared);
        assert_eq!(f.on_gap(3, &mut shared), Gap::InBody(BodyEnd::More));
        assert_eq!(
            f.on_gap(1, &mut shared),
            Gap::InBody(BodyEnd::Complete { gap: true })
        );
        assert!(f.between_messages());
        assert_eq!(f.on_gap(1, &mut shared), Gap::InHead);
        assert!(f.is_resyncing());
        assert_eq!(
            (shared.counters.body_gaps, shared.counters.stream_gaps),
            (2, 1)
        );
    }

    #[test]
    fn held_bytes_are_released_in_order() {
        let mut f = Framer::new(REQ, false);
        f.hold();
        assert_eq!(
            frames(&mut f, b"GET /a", BodyFraming::None),
            ["Held { full: false }"]
        );
        let (held, _) = f.release();
        assert_eq!(held, b"GET /a");
        assert!(f.between_messages());
    }

    /// Feeds `input` in pieces of `piece` bytes to a request framer whose heads may be 40
    /// bytes; the frames it yields.
    fn small_cap_frames(input: &[u8], piece: usize) -> Vec<String> {
        let mut f = Framer::new(REQ, false);
        let mut shared = HttpShared::default();
        shared.limits.max_header_bytes = 40;
        let mut out = Vec::new();
        for mut input in input.chunks(piece) {
            while let Some(frame) = f.next(&mut input, ts(1), &mut shared, &mut |_| {}) {
                let framing = match frame {
                    Frame::Oversized { framing } => framing,
                    _ => None,
                };
                out.push(format!("{frame:?}"));
                match framing {
                    Some(BodyFraming::None) => f.next_message(),
                    Some(framing) => f.start_body(framing, &shared),
                    None => {}
                }
            }
        }
        out
    }

    #[test]
    fn an_oversized_request_head_is_skipped_to_its_end_with_its_framing() {
        let head = format!(
            "POST /u HTTP/1.1\r\nX-Pad: {}\r\nContent-Length: 20\r\n\r\n",
            "p".repeat(100)
        );
        let input = [head.as_bytes(), b"GET /p HTTP/1.1\r\n\r\n.."].concat();
        assert_eq!(
            small_cap_frames(&input, input.len()),
            [
                "Oversized { framing: Some(Length(20)) }",
                "Body { wire: 20, data: 20, chunks: 0, end: Complete { gap: false } }",
            ]
        );
    }

    #[test]
    fn an_oversized_head_with_a_cut_framing_line_has_no_known_framing() {
        let head = format!(
            "POST /u HTTP/1.1\r\nContent-Length: {}5\r\n\r\n",
            " ".repeat(2000)
        );
        assert_eq!(
            small_cap_frames(head.as_bytes(), 64),
            ["Oversized { framing: None }"]
        );
    }
}
