//! The WebSocket decoder's caps ([`WebSocketLimits`]) and what they cut
//! ([`WebSocketCounters`]), shared by every connection through [`WebSocketShared`].
use crate::memory::MemoryAccount;

/// Caps of the WebSocket decoder. Each cap has a counter in [`WebSocketCounters`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketLimits {
    /// Largest frame payload (declared length) accepted; a larger one is taken as a
    /// desynchronised or hostile stream and the connection becomes undecodable
    /// (`frames_too_large`). Payloads are streamed, not buffered. Default 64 MiB.
    pub max_frame_bytes: u64,
    /// Decoded bytes of one message kept for parsing; the rest is still inflated (the window
    /// must stay in step) but dropped, and the message is not parsed (`messages_truncated`).
    /// Open WebUI's final `chat:completion` event carries the whole answer before its `usage`,
    /// so this bounds the longest answer whose usage is seen. Default 4 MiB.
    pub max_message_bytes: usize,
    /// Inflated bytes of one message beyond which the connection is given up as a decompression
    /// bomb (`inflated_too_large`). Default 32 MiB: eight times `max_message_bytes`, far above
    /// any event Open WebUI sends, and a bound on the CPU one message can cost.
    pub max_inflated_bytes: u64,
    /// Longest `user-join` token reported (`tokens_too_long`). Default 16 KiB.
    pub max_token_bytes: usize,
    /// Longest sid / chat id / message id reported (`ids_too_long`). Default 256.
    pub max_id_bytes: usize,
    /// Answers per connection remembered to report only their first delta; the oldest is
    /// forgotten beyond it (`tracked_messages_evicted`). Default 64.
    pub max_tracked_messages: usize,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 << 20,
            max_message_bytes: 4 << 20,
            max_inflated_bytes: 32 << 20,
            max_token_bytes: 16 << 10,
            max_id_bytes: 256,
            max_tracked_messages: 64,
        }
    }
}

/// Totals over all WebSocket connections (exported as `webui_monitor_websocket_*`). Arrays are
/// indexed by [`Direction::index`](crate::segment::Direction::index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSocketCounters {
    pub connections: u64,
    /// Connections given up (each counted once, with the reason counted below).
    pub undecodable_connections: u64,
    pub frames: [u64; 2],
    pub compressed_frames: [u64; 2],
    /// Complete data messages.
    pub messages: [u64; 2],
    pub wire_bytes: [u64; 2],
    /// Reasons a connection became undecodable.
    pub inflate_errors: u64,
    pub protocol_errors: u64,
    pub extension_errors: u64,
    /// Capture gaps; the ones inside an uncompressed payload are skipped, the rest end decoding.
    pub gaps: u64,
    pub gaps_skipped: u64,
    /// Caps hit (see [`WebSocketLimits`]).
    pub frames_too_large: u64,
    pub messages_truncated: u64,
    pub inflated_too_large: u64,
    pub tokens_too_long: u64,
    pub ids_too_long: u64,
    pub tracked_messages_evicted: u64,
    /// Text messages that are not UTF-8, Engine.IO or Socket.IO packets.
    pub packet_errors: u64,
    /// Socket.IO payloads of interest that are not the expected JSON.
    pub json_errors: u64,
    /// Socket.IO binary events and their attachments (not decoded).
    pub binary_messages_skipped: u64,
}

/// State shared by all connections: configuration and counters.
#[derive(Debug, Default)]
pub struct WebSocketShared {
    pub limits: WebSocketLimits,
    pub counters: WebSocketCounters,
    /// The pipeline's memory budget, which message buffers grow from.
    pub memory: MemoryAccount,
}

impl WebSocketShared {
    pub fn new(limits: WebSocketLimits) -> Self {
        Self {
            limits,
            counters: WebSocketCounters::default(),
            memory: MemoryAccount::default(),
        }
    }
}
