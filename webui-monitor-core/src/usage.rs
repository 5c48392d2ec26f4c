//! Token counts of one answer, and the one normaliser every reader (HTTP JSON, SSE, NDJSON, the
//! web UI's socket events) feeds with the raw fields it found. A leaf shared by the HTTP and
//! WebSocket decoders and the attribution that adds them up.
//!
//! # Shapes and precedence
//!
//! Readers copy what they see into a [`RawUsage`] (field by field, a later value of a field
//! replacing an earlier one) and [`RawUsage::normalise`] turns it into a [`Usage`]:
//!
//! | shape | input (total) | cached input | output (total) | reasoning |
//! |---|---|---|---|---|
//! | Anthropic Messages (`cache_read_input_tokens` or `cache_creation_input_tokens` present) | `input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens` | `cache_read_input_tokens` | `output_tokens` | – |
//! | OpenAI Responses, Open WebUI's reply sums (`input_tokens`) | `input_tokens` | `input_tokens_details.cached_tokens` | `output_tokens` | `output_tokens_details.reasoning_tokens` |
//! | OpenAI chat (`prompt_tokens`) | `prompt_tokens` | `prompt_tokens_details.cached_tokens` | `completion_tokens` | `completion_tokens_details.reasoning_tokens` |
//! | Ollama native (top-level, outside `usage`) | `prompt_eval_count` | – | `eval_count` | – |
//!
//! Anthropic's `input_tokens` leaves out what was read from or written to the cache; the other
//! shapes' input counts include their cached part. When a body has both `input_tokens` and
//! `prompt_tokens` it is Open WebUI's own chat usage (`merge_usage()` in
//! `open_webui/utils/response.py`): `input_tokens`/`output_tokens` sum every model call of the
//! reply (a reply with tool calls makes several) while `prompt_tokens`/`completion_tokens` are
//! the last call's. The sums win, as in Open WebUI's own analytics (`_token_columns()` in
//! `models/chat_messages.py` reads `input_tokens` first): every call the reply needed read and
//! wrote its tokens. Each detail falls back the same way (`*_tokens_details` of the winning
//! name first, then the other's).
//!
//! Anthropic's `cache_creation_input_tokens` is also kept as the cache-write part of the input
//! ([`Usage::cache_write_input`]), for pricing; the other shapes do not report it.
//!
//! Cached input and reasoning are parts of the totals, never added to them; a hostile answer
//! reporting a part larger than its total is clamped to the total.

/// Token usage of one answer, normalised. `input` is every input token the model read (cached
/// included); `output` every token it wrote (reasoning included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// The part of `input` read from a prompt cache.
    pub cached_input: u64,
    /// The part of `output` spent reasoning.
    pub reasoning: u64,
    /// The part of `input` written to a prompt cache (Anthropic's
    /// `cache_creation_input_tokens`), which providers bill above plain input.
    pub cache_write_input: u64,
}

impl Usage {
    /// Input and output only (no cached part, no reasoning).
    pub const fn io(input: u64, output: u64) -> Self {
        Self {
            input,
            output,
            cached_input: 0,
            reasoning: 0,
            cache_write_input: 0,
        }
    }
}

/// The raw usage fields a reader found; `None`: not present (or not a count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawUsage {
    /// A usage object was seen (an empty one still reports zero tokens).
    pub present: bool,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`.
    pub prompt_cached_tokens: Option<u64>,
    /// `completion_tokens_details.reasoning_tokens`.
    pub completion_reasoning_tokens: Option<u64>,
    /// `input_tokens_details.cached_tokens`.
    pub input_cached_tokens: Option<u64>,
    /// `output_tokens_details.reasoning_tokens`.
    pub output_reasoning_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    /// Ollama's native top-level counts.
    pub prompt_eval_count: Option<u64>,
    pub eval_count: Option<u64>,
}

/// Which [`RawUsage`] field a key path inside a usage object names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageField {
    PromptTokens,
    CompletionTokens,
    InputTokens,
    OutputTokens,
    PromptCachedTokens,
    CompletionReasoningTokens,
    InputCachedTokens,
    OutputReasoningTokens,
    CacheReadInputTokens,
    CacheCreationInputTokens,
}

impl UsageField {
    /// The field named by `path`, relative to the usage object (`[b"prompt_tokens"]`,
    /// `[b"input_tokens_details", b"cached_tokens"]`, …).
    pub fn of(path: &[&[u8]]) -> Option<Self> {
        Some(match path {
            [b"prompt_tokens"] => Self::PromptTokens,
            [b"completion_tokens"] => Self::CompletionTokens,
            [b"input_tokens"] => Self::InputTokens,
            [b"output_tokens"] => Self::OutputTokens,
            [b"prompt_tokens_details", b"cached_tokens"] => Self::PromptCachedTokens,
            [b"completion_tokens_details", b"reasoning_tokens"] => Self::CompletionReasoningTokens,
            [b"input_tokens_details", b"cached_tokens"] => Self::InputCachedTokens,
            [b"output_tokens_details", b"reasoning_tokens"] => Self::OutputReasoningTokens,
            [b"cache_read_input_tokens"] => Self::CacheReadInputTokens,
            [b"cache_creation_input_tokens"] => Self::CacheCreationInputTokens,
            _ => return None,
        })
    }
}

impl RawUsage {
    /// Records `count` (a non-count value passes `None`) for `field` of a usage object.
    pub fn set(&mut self, field: UsageField, count: Option<u64>) {
        self.present = true;
        let slot = match field {
            UsageField::PromptTokens => &mut self.prompt_tokens,
            UsageField::CompletionTokens => &mut self.completion_tokens,
            UsageField::InputTokens => &mut self.input_tokens,
            UsageField::OutputTokens => &mut self.output_tokens,
            UsageField::PromptCachedTokens => &mut self.prompt_cached_tokens,
            UsageField::CompletionReasoningTokens => &mut self.completion_reasoning_tokens,
            UsageField::InputCachedTokens => &mut self.input_cached_tokens,
            UsageField::OutputReasoningTokens => &mut self.output_reasoning_tokens,
            UsageField::CacheReadInputTokens => &mut self.cache_read_input_tokens,
            UsageField::CacheCreationInputTokens => &mut self.cache_creation_input_tokens,
        };
        if count.is_some() {
            *slot = count;
        }
    }

    /// Lays `later` over `self`: every field `later` has replaces this one's. An Anthropic
    /// stream's `message_delta` usage thus overrides its `message_start` estimate field by
    /// field; an OpenAI stream's last usage chunk wins.
    pub fn merge(&mut self, later: &RawUsage) {
        fn over(a: &mut Option<u64>, b: Option<u64>) {
            if b.is_some() {
                *a = b;
            }
        }
        self.present |= later.present;
        over(&mut self.prompt_tokens, later.prompt_tokens);
        over(&mut self.completion_tokens, later.completion_tokens);
        over(&mut self.input_tokens, later.input_tokens);
        over(&mut self.output_tokens, later.output_tokens);
        over(&mut self.prompt_cached_tokens, later.prompt_cached_tokens);
        over(
            &mut self.completion_reasoning_tokens,
            later.completion_reasoning_tokens,
        );
        over(&mut self.input_cached_tokens, later.input_cached_tokens);
        over(
            &mut self.output_reasoning_tokens,
            later.output_reasoning_tokens,
        );
        over(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        over(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        over(&mut self.prompt_eval_count, later.prompt_eval_count);
        over(&mut self.eval_count, later.eval_count);
    }

    /// The normalised usage (see the module's table), or `None` when no usage object and no
    /// Ollama count was seen.
    pub fn normalise(&self) -> Option<Usage> {
        if self.present {
            Some(self.usage_object())
        } else if self.prompt_eval_count.is_some() || self.eval_count.is_some() {
            // Open WebUI's own endpoints copy Ollama's counts *inside* `usage`
            // (`convert_ollama_usage_to_openai()`); only the `/ollama/api/*` proxy passes the
            // top-level fields through, so a value never counts both.
            Some(Usage::io(
                self.prompt_eval_count.unwrap_or(0),
                self.eval_count.unwrap_or(0),
            ))
        } else {
            None
        }
    }

    fn usage_object(&self) -> Usage {
        let anthropic =
            self.cache_read_input_tokens.is_some() || self.cache_creation_input_tokens.is_some();
        let (input, cached_input, cache_write_input) = if anthropic {
            let read = self.cache_read_input_tokens.unwrap_or(0);
            let write = self.cache_creation_input_tokens.unwrap_or(0);
            let input = self
                .input_tokens
                .or(self.prompt_tokens)
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(write);
            (input, read, write)
        } else if self.input_tokens.is_some() {
            let cached = self.input_cached_tokens.or(self.prompt_cached_tokens);
            (self.input_tokens.unwrap_or(0), cached.unwrap_or(0), 0)
        } else {
            let cached = self.prompt_cached_tokens.or(self.input_cached_tokens);
            (self.prompt_tokens.unwrap_or(0), cached.unwrap_or(0), 0)
        };
        let (output, reasoning) = if self.output_tokens.is_some() {
            let r = self
                .output_reasoning_tokens
                .or(self.completion_reasoning_tokens);
            (self.output_tokens.unwrap_or(0), r.unwrap_or(0))
        } else {
            let r = self
                .completion_reasoning_tokens
                .or(self.output_reasoning_tokens);
            (self.completion_tokens.unwrap_or(0), r.unwrap_or(0))
        };
        Usage {
            input,
            output,
            cached_input: cached_input.min(input),
            reasoning: reasoning.min(output),
            cache_write_input: cache_write_input.min(input - cached_input.min(input)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(fields: &[(UsageField, u64)]) -> RawUsage {
        let mut r = RawUsage::default();
        for &(f, n) in fields {
            r.set(f, Some(n));
        }
        r
    }

    use UsageField::*;

    #[test]
    fn openai_chat() {
        let r = raw(&[
            (PromptTokens, 40),
            (CompletionTokens, 12),
            (PromptCachedTokens, 8),
            (CompletionReasoningTokens, 5),
        ]);
        assert_eq!(
            r.normalise(),
            Some(Usage {
                input: 40,
                output: 12,
                cached_input: 8,
                reasoning: 5,
                cache_write_input: 0,
            })
        );
    }

    #[test]
    fn openwebui_reply_sums_win_over_last_call() {
        let r = raw(&[
            (PromptTokens, 40),
            (CompletionTokens, 12),
            (InputTokens, 90),
            (OutputTokens, 30),
            (PromptCachedTokens, 16),
        ]);
        assert_eq!(
            r.normalise(),
            Some(Usage {
                input: 90,
                output: 30,
                cached_input: 16,
                reasoning: 0,
                cache_write_input: 0,
            })
        );
    }

    #[test]
    fn anthropic_adds_cache_to_input() {
        let r = raw(&[
            (InputTokens, 25),
            (CacheReadInputTokens, 5),
            (CacheCreationInputTokens, 3),
            (OutputTokens, 15),
        ]);
        assert_eq!(
            r.normalise(),
            Some(Usage {
                input: 33,
                output: 15,
                cached_input: 5,
                reasoning: 0,
                cache_write_input: 3,
            })
        );
    }

    #[test]
    fn anthropic_stream_delta_overrides_start() {
        // Converted by Open WebUI: message_start has the count_tokens estimate.
        let mut start = raw(&[(InputTokens, 42), (OutputTokens, 0)]);
        let delta = raw(&[
            (OutputTokens, 12),
            (InputTokens, 32),
            (CacheReadInputTokens, 8),
        ]);
        start.merge(&delta);
        assert_eq!(
            start.normalise(),
            Some(Usage {
                input: 40,
                output: 12,
                cached_input: 8,
                reasoning: 0,
                cache_write_input: 0,
            })
        );
    }

    #[test]
    fn responses() {
        let r = raw(&[
            (InputTokens, 30),
            (InputCachedTokens, 10),
            (OutputTokens, 20),
            (OutputReasoningTokens, 7),
        ]);
        assert_eq!(
            r.normalise(),
            Some(Usage {
                input: 30,
                output: 20,
                cached_input: 10,
                reasoning: 7,
                cache_write_input: 0,
            })
        );
    }

    #[test]
    fn ollama_empty_and_hostile() {
        let mut r = RawUsage {
            prompt_eval_count: Some(4),
            eval_count: Some(9),
            ..RawUsage::default()
        };
        assert_eq!(r.normalise(), Some(Usage::io(4, 9)));
        r.present = true; // a usage object wins over the top-level counts
        assert_eq!(r.normalise(), Some(Usage::default()));
        assert_eq!(RawUsage::default().normalise(), None);
        let parts_too_big = raw(&[
            (PromptTokens, 3),
            (PromptCachedTokens, 9),
            (CompletionReasoningTokens, u64::MAX),
        ]);
        assert_eq!(
            parts_too_big.normalise(),
            Some(Usage {
                input: 3,
                output: 0,
                cached_input: 3,
                reasoning: 0,
                cache_write_input: 0,
            })
        );
        let overflow = raw(&[(InputTokens, u64::MAX), (CacheReadInputTokens, u64::MAX)]);
        assert_eq!(overflow.normalise().unwrap().input, u64::MAX);
    }
}
