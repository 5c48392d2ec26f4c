//! Incremental `text/event-stream` parser (WHATWG HTML §9.2.6) that counts events and takes the
//! usage its events carry, for input split anywhere.
//!
//! Usage fields of later events replace those of earlier ones field by field ([`RawUsage::merge`]):
//! an OpenAI stream's last usage chunk wins, an Anthropic stream's `message_delta` overrides its
//! `message_start`, a Responses stream's `response.completed` carries the whole usage.
//!
//! Open WebUI writes each event as two HTTP chunks (`data: …\n`, then `\n`), so events cross
//! chunk and packet boundaries; nothing here depends on where the input is cut. Data lines are
//! streamed into a [`JsonScanner`] instead of being buffered.
use crate::{
    http::{exchange::StreamSummary, fields::ResponseVisitor},
    json::{JsonLimits, JsonScanner},
    segment::Timestamp,
    usage::{RawUsage, Usage},
};

/// Field names longer than this are not `data` and are ignored.
const MAX_FIELD: usize = 8;
const DONE: &[u8] = b"[DONE]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Reading the field name; `len` bytes so far.
    Field,
    /// Just after `data:`: one optional space is skipped.
    DataSpace,
    Data,
    /// The value of a field we ignore (or a comment).
    Ignored,
}

/// The parser of one event stream.
#[derive(Debug)]
pub struct SseParser {
    line: Line,
    field: [u8; MAX_FIELD],
    field_len: usize,
    /// Bytes of the current line (to recognise the blank line that dispatches an event).
    line_bytes: usize,
    /// A CR ended the last line; a following LF belongs to it.
    after_cr: bool,
    /// The event being read has a data field.
    has_data: bool,
    /// First bytes of the event's data and its length, to recognise `[DONE]`.
    prefix: [u8; DONE.len()],
    data_len: u64,
    scanner: JsonScanner,
    visitor: ResponseVisitor,
    summary: StreamSummary,
    usage: RawUsage,
    truncated: bool,
}

impl SseParser {
    pub fn new(limits: JsonLimits) -> Self {
        Self {
            line: Line::Field,
            field: [0; MAX_FIELD],
            field_len: 0,
            line_bytes: 0,
            after_cr: false,
            has_data: false,
            prefix: [0; DONE.len()],
            data_len: 0,
            scanner: JsonScanner::new(limits),
            visitor: ResponseVisitor::default(),
            summary: StreamSummary::default(),
            usage: RawUsage::default(),
            truncated: false,
        }
    }

    /// Events, `[DONE]` and event times so far.
    pub fn summary(&self) -> &StreamSummary {
        &self.summary
    }

    /// The usage the events carried, normalised (`None`: no event had a non-null usage).
    pub fn usage(&self) -> Option<Usage> {
        self.usage.normalise()
    }

    /// Some event's JSON hit a scanner cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn data(&mut self, bytes: &[u8]) {
        let have = self.data_len.min(DONE.len() as u64) as usize;
        let take = (DONE.len() - have).min(bytes.len());
        self.prefix[have..have + take].copy_from_slice(&bytes[..take]);
        self.data_len += bytes.len() as u64;
        self.scanner.feed(bytes, &mut self.visitor);
    }

    fn end_line(&mut self, ts: Timestamp) {
        if self.line == Line::Field && self.line_bytes > 0 {
            // A line without a colon is a field with an empty value (`data` alone counts).
            self.end_field();
        }
        if self.line_bytes == 0 {
            self.dispatch(ts);
        }
        self.line = Line::Field;
        self.field_len = 0;
        self.line_bytes = 0;
    }

    fn end_field(&mut self) -> Line {
        if &self.field[..self.field_len] == b"data" {
            if self.has_data {
                // Data lines of one event are joined with LF.
                self.data(b"\n");
            }
            self.has_data = true;
            Line::DataSpace
        } else {
            Line::Ignored
        }
    }

    fn dispatch(&mut self, ts: Timestamp) {
        if !self.has_data {
            return;
        }
        self.summary.events = self.summary.events.saturating_add(1);
        self.summary.first_event.get_or_insert(ts);
        self.summary.last_event = Some(ts);
        if self.data_len == DONE.len() as u64 && self.prefix == *DONE {
            self.summary.done = true;
        } else if self.scanner.finish(&mut self.visitor).is_ok() && self.visitor.raw.present {
            self.usage.merge(&self.visitor.raw);
        }
        self.truncated |= self.scanner.truncated();
        self.scanner.reset();
        self.visitor.clear();
        self.has_data = false;
        self.data_len = 0;
    }

    /// Parses the next piece of the (decoded) body; `ts` is when it arrived.
    pub fn feed(&mut self, mut input: &[u8], ts: Timestamp) {
        while !input.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            let eol = memchr::memchr2(b'\n', b'\r', input);
            let (part, rest) = match eol {
                Some(p) => (&input[..p], Some(&input[p..])),
                None => (input, None),
            };
            self.line_part(part);
            match rest {
                Some(rest) => {
                    self.after_cr = rest[0] == b'\r';
                    self.end_line(ts);
                    input = &rest[1..];
                }
                None => break,
            }
        }
    }

    /// A piece of the current line, without line ends.
    fn line_part(&mut self, mut part: &[u8]) {
        self.line_bytes += part.len();
        while !part.is_empty() {
            match self.line {
                Line::Field => match part.iter().position(|&b| b == b':') {
                    Some(colon) => {
                        self.push_field(&part[..colon]);
                        self.line = if colon == 0 && self.field_len == 0 {
                            Line::Ignored // comment
                        } else {
                            self.end_field()
                        };
                        part = &part[colon + 1..];
                    }
                    None => {
                        self.push_field(part);
                        return;
                    }
                },
                Line::DataSpace => {
                    if part[0] == b' ' {
                        part = &part[1..];
                    }
                    self.line = Line::Data;
                }
                Line::Data => {
                    self.data(part);
                    return;
                }
                Line::Ignored => return,
            }
        }
    }

    fn push_field(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.field_len < MAX_FIELD {
                self.field[self.field_len] = b;
            }
            self.field_len = self.field_len.saturating_add(1);
        }
        if self.field_len > MAX_FIELD {
            self.field_len = MAX_FIELD; // never equals "data" with trailing junk
            self.field[MAX_FIELD - 1] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &[u8], split: usize) -> (StreamSummary, Option<Usage>) {
        let mut p = SseParser::new(JsonLimits::default());
        for (i, part) in stream.chunks(split.max(1)).enumerate() {
            p.feed(part, Timestamp(i as u64));
        }
        (p.summary().clone(), p.usage())
    }

    #[test]
    fn openwebui_two_chunk_events() {
        let stream = b"data: {\"choices\":[],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":17,\"total_tokens\":21}}\n\ndata: {\"usage\":null}\n\n: comment\n\ndata: [DONE]\n\n";
        for split in 1..stream.len() {
            let (s, u) = run(stream, split);
            assert_eq!(s.events, 4, "split {split}");
            assert!(s.done);
            assert_eq!(u, Some(Usage::io(4, 17)));
        }
    }

    /// Open WebUI 0.12.4 converting to Anthropic Messages (fixtures/openwebui-sdk): the
    /// `message_start` estimate is overridden by `message_delta`'s usage, field by field.
    #[test]
    fn anthropic_message_delta_overrides_message_start() {
        let stream = b"event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"m\", \"content\": [], \"usage\": {\"input_tokens\": 42, \"output_tokens\": 0}}}\n\nevent: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"delta\": {\"text\": \"x\"}}\n\nevent: message_delta\ndata: {\"type\": \"message_delta\", \"usage\": {\"output_tokens\": 12, \"input_tokens\": 32, \"cache_read_input_tokens\": 8}}\n\n";
        for split in [1, 7, 1000] {
            let (s, u) = run(stream, split);
            assert_eq!(s.events, 3);
            assert_eq!(
                u,
                Some(Usage {
                    input: 40,
                    output: 12,
                    cached_input: 8,
                    reasoning: 0,
                    cache_write_input: 0,
                }),
                "split {split}"
            );
        }
    }

    /// The Responses stream: `response.created` has a null usage, `response.completed` the
    /// whole one, 4 keys deep for the details.
    #[test]
    fn responses_completed_usage() {
        let stream = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":10},\"output_tokens\":20,\"output_tokens_details\":{\"reasoning_tokens\":7},\"total_tokens\":50}}}\n\n";
        let (s, u) = run(stream, 5);
        assert_eq!(s.events, 2);
        assert_eq!(
            u,
            Some(Usage {
                input: 30,
                output: 20,
                cached_input: 10,
                reasoning: 7,
                cache_write_input: 0,
            })
        );
        let (_, u) = run(&stream[..stream.len() / 3], 5);
        assert_eq!(u, None, "a null usage is no usage");
    }

    #[test]
    fn line_ends_multiline_and_colonless() {
        let (s, u) = run(b"event: x\r\ndata: {\"usage\":\r\ndata: {\"prompt_tokens\":1}}\r\n\r\ndata\r\rid: 3\n\n", 1000);
        assert_eq!(s.events, 2);
        assert!(!s.done);
        assert_eq!(u.map(|u| u.input), Some(1));
        // Comments and id-only blocks are not events; `[DONE]` must be the whole data.
        let (s, _) = run(b": hi\n\nid: 1\n\ndata: [DONE] \n\n", 1);
        assert_eq!(s.events, 1);
        assert!(!s.done);
    }

    #[test]
    fn event_times_are_of_the_dispatching_blank_line() {
        let mut p = SseParser::new(JsonLimits::default());
        p.feed(b"data: 1\n", Timestamp(10));
        p.feed(b"\n", Timestamp(20));
        p.feed(b"data: 2\n", Timestamp(30));
        p.feed(b"\n", Timestamp(40));
        assert_eq!(p.summary().first_event, Some(Timestamp(20)));
        assert_eq!(p.summary().last_event, Some(Timestamp(40)));
    }
}
