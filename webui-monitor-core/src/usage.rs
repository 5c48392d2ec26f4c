//! Token counts of one answer. A leaf shared by the HTTP and WebSocket decoders and the
//! attribution that adds them up.

/// Token usage as OpenAI-compatible backends report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}
