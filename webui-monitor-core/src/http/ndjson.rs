//! Incremental NDJSON (`application/x-ndjson`) parser: one JSON value per line, as Ollama's
//! native API streams its answers, for input split anywhere.
//!
//! Open WebUI's `/ollama/api/chat` and `/ollama/api/generate` proxy Ollama's stream unchanged
//! (`send_post_request()` in backend/open_webui/routers/ollama.py copies its headers and body).
//! Every line is a partial answer; the last one has `"done": true` and the token counts,
//! `prompt_eval_count` and `eval_count`. Lines are streamed into a [`JsonScanner`] instead of
//! being buffered, so a long line costs no memory beyond the scanner's caps.
use crate::{
    http::{exchange::StreamSummary, fields::ResponseVisitor},
    json::{JsonLimits, JsonScanner},
    segment::Timestamp,
    usage::{RawUsage, Usage},
};

/// The parser of one NDJSON stream.
#[derive(Debug)]
pub struct NdjsonParser {
    /// The current line has a byte other than JSON whitespace (blank lines are no values).
    line_has_value: bool,
    scanner: JsonScanner,
    visitor: ResponseVisitor,
    summary: StreamSummary,
    usage: RawUsage,
    truncated: bool,
    model_load: bool,
    /// When the last input arrived: the time of a last line without a line end.
    last_ts: Timestamp,
}

impl NdjsonParser {
    pub fn new(limits: JsonLimits) -> Self {
        Self {
            line_has_value: false,
            scanner: JsonScanner::new(limits),
            visitor: ResponseVisitor::default(),
            summary: StreamSummary::default(),
            usage: RawUsage::default(),
            truncated: false,
            model_load: false,
            last_ts: Timestamp::default(),
        }
    }

    /// Lines, `"done": true` and line times so far.
    pub fn summary(&self) -> &StreamSummary {
        &self.summary
    }

    /// Token counts of the last line that carried them.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.normalise()
    }

    /// Some line was not JSON, or its JSON hit a scanner cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// A line said Ollama loaded or unloaded the model (see `ResponseVisitor::model_load`).
    pub fn model_load(&self) -> bool {
        self.model_load
    }

    /// Parses the next piece of the (decoded) body; `ts` is when it arrived.
    pub fn feed(&mut self, mut input: &[u8], ts: Timestamp) {
        self.last_ts = ts;
        while !input.is_empty() {
            let (part, rest) = match memchr::memchr(b'\n', input) {
                Some(end) => (&input[..end], Some(&input[end + 1..])),
                None => (input, None),
            };
            if !part.is_empty() {
                self.line_has_value =
                    self.line_has_value || part.iter().any(|b| !b" \t\r".contains(b));
                self.scanner.feed(part, &mut self.visitor);
            }
            match rest {
                Some(rest) => {
                    self.end_line(ts);
                    input = rest;
                }
                None => break,
            }
        }
    }

    /// The body ended: a last line without a line end is a value too (only a body that
    /// arrived whole should be finished, or a cut line would count as malformed).
    pub fn finish(&mut self) {
        self.end_line(self.last_ts);
    }

    fn end_line(&mut self, ts: Timestamp) {
        if self.line_has_value {
            self.summary.events = self.summary.events.saturating_add(1);
            self.summary.first_event.get_or_insert(ts);
            self.summary.last_event = Some(ts);
            if self.scanner.finish(&mut self.visitor).is_ok() {
                if self.visitor.token_counts().is_some() {
                    self.usage.merge(&self.visitor.raw);
                }
                self.summary.done |= self.visitor.done;
                self.model_load |= self.visitor.model_load;
            } else {
                self.truncated = true;
            }
            self.truncated |= self.scanner.truncated();
        }
        self.scanner.reset();
        self.visitor.clear();
        self.line_has_value = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ollama `/api/chat` stream, as its documentation shows it (durations shortened).
    const OLLAMA_CHAT: &[u8] = b"{\"model\":\"llama3.2\",\"created_at\":\"2026-11-27T10:00:00.1Z\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n\
{\"model\":\"llama3.2\",\"created_at\":\"2026-11-27T10:00:00.2Z\",\"message\":{\"role\":\"assistant\",\"content\":\" sky\"},\"done\":false}\n\
{\"model\":\"llama3.2\",\"created_at\":\"2026-11-27T10:00:00.3Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":4883583458,\"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,\"eval_count\":282,\"eval_duration\":4535599000}\n";

    fn run(stream: &[u8], split: usize) -> (StreamSummary, Option<Usage>, bool) {
        let mut p = NdjsonParser::new(JsonLimits::default());
        for (i, part) in stream.chunks(split.max(1)).enumerate() {
            p.feed(part, Timestamp(i as u64 + 1));
        }
        p.finish();
        (p.summary().clone(), p.usage(), p.truncated())
    }

    #[test]
    fn ollama_chat_stream_split_anywhere() {
        for split in 1..=OLLAMA_CHAT.len() {
            let (s, u, truncated) = run(OLLAMA_CHAT, split);
            assert_eq!(s.events, 3, "split {split}");
            assert!(s.done, "split {split}");
            assert!(!truncated, "split {split}");
            assert_eq!(u, Some(Usage::io(26, 282)), "split {split}");
        }
    }

    #[test]
    fn line_times_are_of_their_line_ends() {
        let mut p = NdjsonParser::new(JsonLimits::default());
        p.feed(b"{\"done\":", Timestamp(10));
        p.feed(b"false}\n{\"done\"", Timestamp(20));
        p.feed(b":true}", Timestamp(30));
        assert_eq!(p.summary().events, 1);
        p.finish();
        let s = p.summary();
        assert_eq!(s.events, 2);
        assert!(s.done);
        assert_eq!(s.first_event, Some(Timestamp(20)));
        assert_eq!(s.last_event, Some(Timestamp(30)));
    }

    #[test]
    fn blank_lines_crlf_and_a_last_line_without_line_end() {
        let (s, u, truncated) = run(
            b"\n  \r\n{\"done\":false}\r\n\n{\"done\":true,\"prompt_eval_count\":3,\"eval_count\":4}",
            1,
        );
        assert_eq!(s.events, 2);
        assert!(s.done);
        assert!(!truncated);
        assert_eq!(u.map(|u| u.input + u.output), Some(7));
    }

    #[test]
    fn a_broken_line_is_counted_and_the_next_still_read() {
        let (s, u, truncated) = run(
            b"{\"done\":false,\n[1,2\n{\"done\":true,\"eval_count\":5}\n",
            7,
        );
        assert_eq!(s.events, 3);
        assert!(s.done);
        assert!(truncated);
        assert_eq!(u, Some(Usage::io(0, 5)));
    }

    #[test]
    fn a_model_load_reply_is_flagged_not_counted() {
        for reason in ["load", "unload"] {
            let mut p = NdjsonParser::new(JsonLimits::default());
            let line = format!(
                "{{\"model\":\"llama3.2\",\"message\":{{\"content\":\"\"}},\"done_reason\":\"{reason}\",\"done\":true}}\n"
            );
            p.feed(line.as_bytes(), Timestamp(1));
            p.finish();
            assert!(p.model_load(), "{reason}");
            assert_eq!(p.usage(), None);
        }
        let mut p = NdjsonParser::new(JsonLimits::default());
        p.feed(
            b"{\"done_reason\":\"stop\",\"done\":true,\"eval_count\":1}\n",
            Timestamp(1),
        );
        assert!(!p.model_load());
    }

    #[test]
    fn counts_must_be_top_level_numbers() {
        // Nested counts (OpenAI-shaped usage holds copies) and non-numbers are not Ollama's.
        let (_, u, _) = run(
            b"{\"usage\":{\"eval_count\":9},\"message\":{\"prompt_eval_count\":9}}\n",
            1000,
        );
        assert_eq!(u, Some(Usage::default()));
        let (_, u, _) = run(b"{\"stats\":{\"eval_count\":9}}\n", 1000);
        assert_eq!(u, None);
        let (_, u, _) = run(b"{\"eval_count\":\"9\",\"prompt_eval_count\":-1}\n", 1000);
        assert_eq!(u.map(|u| u.input + u.output), Some(0));
    }
}
