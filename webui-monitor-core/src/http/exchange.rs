//! The boundary between the stream engine and Open WebUI semantics: one HTTP/1.1 request and its
//! final response.
//!
//! An `Exchange` carries sizes, timings, the few headers the semantics need and the JSON fields
//! extracted from bodies — never a body. Credentials travel as [`Secret`]; everything else in
//! here is safe to log.
use crate::{
    secret::Secret,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
};

/// Request headers the semantics use, as Open WebUI's Starlette reads them. Names are matched
/// case-insensitively; the value of repeated headers is the first one, except `cookie_token`.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    /// `Authorization` value, whole (scheme included).
    pub authorization: Option<Secret>,
    /// Value of the last cookie named `token` over all `Cookie` headers, unquoted as Starlette
    /// does (present even if empty).
    pub cookie_token: Option<Secret>,
    /// Value of the API-key header (`x-api-key` unless configured otherwise).
    pub api_key_header: Option<Secret>,
    pub user_agent: Option<String>,
    pub origin: Option<String>,
    pub sec_fetch_site: Option<String>,
    pub sec_fetch_mode: Option<String>,
    pub sec_fetch_dest: Option<String>,
    pub content_type: Option<String>,
    pub upgrade: Option<String>,
    pub host: Option<String>,
    /// `X-Forwarded-For`, repeated fields joined by `,` (the last `max_value_bytes` when longer:
    /// a proxy appends the address it saw at the end).
    pub forwarded_for: Option<String>,
    /// `X-Real-IP` (the first).
    pub real_ip: Option<String>,
}

/// Response headers the semantics use.
#[derive(Debug, Clone, Default)]
pub struct ResponseHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// `Sec-WebSocket-Extensions` of a 101 response (permessage-deflate parameters).
    pub websocket_extensions: Option<String>,
    pub upgrade: Option<String>,
}

/// Sizes and timings of one HTTP message (request or response).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageStats {
    /// Start line through the blank line (CRLFCRLF), inclusive.
    pub header_bytes: u64,
    /// Body bytes on the wire, chunk framing included.
    pub body_wire_bytes: u64,
    /// De-chunked body (still content-encoded).
    pub body_bytes: u64,
    /// Body after Content-Encoding; `None` when it could not be decoded (unknown coding, decoder
    /// error) or was cut at the decode cap.
    pub body_decoded_bytes: Option<u64>,
    pub chunked: bool,
    /// Non-empty chunks of a chunked body.
    pub chunks: u32,
    pub first_byte: Timestamp,
    pub last_byte: Timestamp,
    /// The message ended as framed (false: cut by close, gap or error).
    pub complete: bool,
}

/// A scalar JSON value extracted by the streaming scanner. Strings are capped in length (the cap
/// is counted); objects and arrays are only noted as present.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonScalar {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// An object or array: present, content skipped.
    Composite,
}

/// Top-level fields of a JSON request body (chat completion requests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestBodyFields {
    /// The body parsed as JSON up to the fields we need (false: not JSON, or malformed).
    pub json: bool,
    pub model: Option<String>,
    pub stream: Option<bool>,
    /// `session_id`: `Some(None)` when present and `null`.
    pub session_id: Option<Option<String>>,
    pub chat_id: Option<Option<String>>,
    /// `id` (the web UI's assistant message id).
    pub id: Option<String>,
    /// A `messages` key is present (OpenAI-style scripted request).
    pub has_messages: bool,
}

/// The events of a streamed response: server-sent events of a `text/event-stream`, or the lines
/// of an NDJSON stream (Ollama's native API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSummary {
    pub events: u32,
    /// The stream said it was complete: an SSE `data: [DONE]` event, or an NDJSON line with
    /// `"done": true`.
    pub done: bool,
    pub first_event: Option<Timestamp>,
    pub last_event: Option<Timestamp>,
}

/// Fields of a JSON, SSE or NDJSON response body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseBodyFields {
    pub json: bool,
    /// Token counts of a JSON completion, or of the last SSE event or NDJSON line that carried
    /// them (an OpenAI `usage` object, or Ollama's `prompt_eval_count` and `eval_count`).
    pub usage: Option<Usage>,
    /// A top-level `task_ids` key (the web UI's asynchronous completion reply).
    pub has_task_ids: bool,
    pub sse: Option<StreamSummary>,
    pub ndjson: Option<StreamSummary>,
    /// Ollama's reply to a request that only loads or unloads a model (`done_reason` `load` or
    /// `unload`): no answer was generated.
    pub model_load: bool,
}

impl ResponseBodyFields {
    /// The events of a streamed response, whichever its format.
    pub fn stream(&self) -> Option<&StreamSummary> {
        self.sse.as_ref().or(self.ndjson.as_ref())
    }
}

/// Something unusual about an exchange; counted in metrics, kept out of labels' value space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// Response never seen (connection closed or expired first).
    MissingResponse,
    /// Bytes missing from a body (reassembly gap).
    BodyGap,
    /// Content-Encoding not decodable or failed mid-stream.
    DecodeError,
    /// Decoded output hit the configured cap.
    DecodeCapped,
    /// Decoding stopped: the decode budget per second (all connections, or this one) ran out.
    DecodeOverBudget,
    /// Not decoded: the pipeline's memory budget could not hold another decompressor.
    DecodeMemoryRefused,
    /// A JSON body was malformed or a field exceeded its cap.
    JsonTruncated,
    /// The connection was joined mid-stream (no SYN seen); this exchange started at a resync point.
    MidStreamPickup,
}

/// One request and its final response (1xx other than 101 are interim and skipped).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub connection: ConnectionKey,
    /// 0-based index of this exchange on its connection.
    pub sequence: u32,
    pub method: String,
    /// Request-target path without the query (queries may carry secrets and are dropped),
    /// percent-decoded as uvicorn decodes it for Starlette's routing.
    pub path: String,
    pub has_query: bool,
    /// `None` when no response was seen.
    pub status: Option<u16>,
    pub request: MessageStats,
    pub response: Option<MessageStats>,
    pub request_headers: RequestHeaders,
    pub response_headers: ResponseHeaders,
    pub request_fields: RequestBodyFields,
    pub response_fields: ResponseBodyFields,
    /// The response was `101 Switching Protocols`: the rest of the connection is not HTTP.
    pub upgraded: bool,
    pub anomalies: Vec<Anomaly>,
}
