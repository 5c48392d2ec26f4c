//! The boundary between the stream engine and Open WebUI semantics: one HTTP/1.1 request and its
//! final response.
//!
//! An `Exchange` carries sizes, timings, the few headers the semantics need and the JSON fields
//! extracted from bodies — never a body. Credentials come out as [`SecretRef`], redacted in
//! `Debug`; everything else in here is safe to log.
use std::{borrow::Cow, fmt};

use crate::{
    secret::SecretRef,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
};

/// A request header field the semantics read, as Open WebUI's Starlette reads it: names are
/// matched case-insensitively, and the value of repeated fields is the first one unless said
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestField {
    /// `Authorization` value, whole (scheme included). A credential.
    Authorization,
    /// Value of the last cookie named `token` over all `Cookie` headers, unquoted as Starlette
    /// does (present even if empty). A credential.
    CookieToken,
    /// Value of the API-key header (`x-api-key` unless configured otherwise). A credential.
    ApiKeyHeader,
    UserAgent,
    Origin,
    SecFetchSite,
    SecFetchMode,
    SecFetchDest,
    ContentType,
    ContentEncoding,
    Upgrade,
    Host,
    /// `X-Forwarded-For`, repeated fields joined by `,` (the last `max_value_bytes` when longer:
    /// a proxy appends the address it saw at the end).
    ForwardedFor,
    /// `X-Real-IP` (the first).
    RealIp,
}

impl RequestField {
    pub const ALL: [Self; 14] = [
        Self::Authorization,
        Self::CookieToken,
        Self::ApiKeyHeader,
        Self::UserAgent,
        Self::Origin,
        Self::SecFetchSite,
        Self::SecFetchMode,
        Self::SecFetchDest,
        Self::ContentType,
        Self::ContentEncoding,
        Self::Upgrade,
        Self::Host,
        Self::ForwardedFor,
        Self::RealIp,
    ];
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// Its values are credentials: raw bytes, never printed. The others are text.
    pub fn is_credential(self) -> bool {
        matches!(
            self,
            Self::Authorization | Self::CookieToken | Self::ApiKeyHeader
        )
    }

    fn name(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::CookieToken => "cookie_token",
            Self::ApiKeyHeader => "api_key_header",
            Self::UserAgent => "user_agent",
            Self::Origin => "origin",
            Self::SecFetchSite => "sec_fetch_site",
            Self::SecFetchMode => "sec_fetch_mode",
            Self::SecFetchDest => "sec_fetch_dest",
            Self::ContentType => "content_type",
            Self::ContentEncoding => "content_encoding",
            Self::Upgrade => "upgrade",
            Self::Host => "host",
            Self::ForwardedFor => "forwarded_for",
            Self::RealIp => "real_ip",
        }
    }
}

/// Request headers the semantics use ([`RequestField`]), their values in one buffer: a head
/// costs one allocation, none when it has none of them. Credentials come out as [`SecretRef`],
/// and `Debug` prints them redacted.
#[derive(Clone, Default)]
pub struct RequestHeaders(Packed<{ RequestField::COUNT }>);

impl RequestHeaders {
    /// Packs the value of each field (index: the field's position in [`RequestField::ALL`]);
    /// text fields must be UTF-8 (a value that is not reads as empty).
    pub(crate) fn pack(values: [Option<&[u8]>; RequestField::COUNT]) -> Self {
        Self(Packed::pack(values))
    }

    pub fn authorization(&self) -> Option<SecretRef<'_>> {
        self.credential(RequestField::Authorization)
    }
    pub fn cookie_token(&self) -> Option<SecretRef<'_>> {
        self.credential(RequestField::CookieToken)
    }
    pub fn api_key_header(&self) -> Option<SecretRef<'_>> {
        self.credential(RequestField::ApiKeyHeader)
    }
    pub fn user_agent(&self) -> Option<&str> {
        self.text(RequestField::UserAgent)
    }
    pub fn origin(&self) -> Option<&str> {
        self.text(RequestField::Origin)
    }
    pub fn sec_fetch_site(&self) -> Option<&str> {
        self.text(RequestField::SecFetchSite)
    }
    pub fn sec_fetch_mode(&self) -> Option<&str> {
        self.text(RequestField::SecFetchMode)
    }
    pub fn sec_fetch_dest(&self) -> Option<&str> {
        self.text(RequestField::SecFetchDest)
    }
    pub fn content_type(&self) -> Option<&str> {
        self.text(RequestField::ContentType)
    }
    pub fn content_encoding(&self) -> Option<&str> {
        self.text(RequestField::ContentEncoding)
    }
    pub fn upgrade(&self) -> Option<&str> {
        self.text(RequestField::Upgrade)
    }
    pub fn host(&self) -> Option<&str> {
        self.text(RequestField::Host)
    }
    pub fn forwarded_for(&self) -> Option<&str> {
        self.text(RequestField::ForwardedFor)
    }
    pub fn real_ip(&self) -> Option<&str> {
        self.text(RequestField::RealIp)
    }

    /// Whether `field` is present (any value, empty included).
    pub fn has(&self, field: RequestField) -> bool {
        self.0.get(field as usize).is_some()
    }

    /// Sets `field` to `value`, for headers built by hand (tests, tools): the values are packed
    /// anew. A text field takes `value` as UTF-8, invalid sequences replaced.
    pub fn set(&mut self, field: RequestField, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let value = if field.is_credential() {
            Cow::Borrowed(value)
        } else {
            lossy(value)
        };
        let mut values = RequestField::ALL.map(|f| self.0.get(f as usize));
        values[field as usize] = Some(&value);
        *self = Self::pack(values);
    }

    fn credential(&self, field: RequestField) -> Option<SecretRef<'_>> {
        self.0.get(field as usize).map(SecretRef::new)
    }

    fn text(&self, field: RequestField) -> Option<&str> {
        self.0.text(field as usize)
    }
}

/// Credentials redacted.
impl fmt::Debug for RequestHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RequestHeaders");
        for field in RequestField::ALL {
            if field.is_credential() {
                s.field(field.name(), &self.credential(field));
            } else {
                s.field(field.name(), &self.text(field));
            }
        }
        s.finish()
    }
}

/// A response header field the semantics read (the first of repeated fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseField {
    ContentType,
    ContentEncoding,
    /// `Sec-WebSocket-Extensions` of a 101 response (permessage-deflate parameters).
    WebsocketExtensions,
    Upgrade,
}

impl ResponseField {
    pub const ALL: [Self; 4] = [
        Self::ContentType,
        Self::ContentEncoding,
        Self::WebsocketExtensions,
        Self::Upgrade,
    ];
    pub(crate) const COUNT: usize = Self::ALL.len();
}

/// Response headers the semantics use ([`ResponseField`]), their values in one buffer, all
/// text.
#[derive(Clone, Default)]
pub struct ResponseHeaders(Packed<{ ResponseField::COUNT }>);

impl ResponseHeaders {
    /// Packs the value of each field (index: its position in [`ResponseField::ALL`]), UTF-8.
    pub(crate) fn pack(values: [Option<&[u8]>; ResponseField::COUNT]) -> Self {
        Self(Packed::pack(values))
    }

    pub fn content_type(&self) -> Option<&str> {
        self.0.text(ResponseField::ContentType as usize)
    }
    pub fn content_encoding(&self) -> Option<&str> {
        self.0.text(ResponseField::ContentEncoding as usize)
    }
    pub fn websocket_extensions(&self) -> Option<&str> {
        self.0.text(ResponseField::WebsocketExtensions as usize)
    }
    pub fn upgrade(&self) -> Option<&str> {
        self.0.text(ResponseField::Upgrade as usize)
    }

    /// Sets `field` to `value` (as UTF-8, invalid sequences replaced), for headers built by hand.
    pub fn set(&mut self, field: ResponseField, value: impl AsRef<[u8]>) {
        let value = lossy(value.as_ref());
        let mut values = ResponseField::ALL.map(|f| self.0.get(f as usize));
        values[field as usize] = Some(&value);
        *self = Self::pack(values);
    }
}

impl fmt::Debug for ResponseHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseHeaders")
            .field("content_type", &self.content_type())
            .field("content_encoding", &self.content_encoding())
            .field("websocket_extensions", &self.websocket_extensions())
            .field("upgrade", &self.upgrade())
            .finish()
    }
}

/// `value` as UTF-8, invalid sequences replaced (`String::from_utf8_lossy`), as bytes.
pub(crate) fn lossy(value: &[u8]) -> Cow<'_, [u8]> {
    // `from_utf8` first: its ASCII fast path is quicker than `from_utf8_lossy`'s chunking, and
    // header values are nearly always ASCII.
    match std::str::from_utf8(value) {
        Ok(_) => Cow::Borrowed(value),
        Err(_) => Cow::Owned(String::from_utf8_lossy(value).into_owned().into_bytes()),
    }
}

/// Where one value lies in a [`Packed`] buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

/// The values of `N` fields in one buffer; field `i` is `spans[i]` of it, if present.
#[derive(Clone)]
struct Packed<const N: usize> {
    buf: Box<[u8]>,
    spans: [Option<Span>; N],
}

impl<const N: usize> Default for Packed<N> {
    fn default() -> Self {
        Self {
            buf: Box::default(),
            spans: [None; N],
        }
    }
}

impl<const N: usize> Packed<N> {
    /// One allocation of exactly the values' total length (none when it is 0). Values past
    /// 4 GiB in all, which no capped head reaches, are left out.
    fn pack(values: [Option<&[u8]>; N]) -> Self {
        let total = values.iter().flatten().map(|v| v.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut spans = [None; N];
        for (span, value) in spans.iter_mut().zip(values) {
            let Some(value) = value else { continue };
            let (Ok(start), Ok(end)) = (
                u32::try_from(buf.len()),
                u32::try_from(buf.len() + value.len()),
            ) else {
                break;
            };
            buf.extend_from_slice(value);
            *span = Some(Span { start, end });
        }
        Self {
            // Length equals capacity: no reallocation.
            buf: buf.into_boxed_slice(),
            spans,
        }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let span = self.spans[i]?;
        self.buf.get(span.start as usize..span.end as usize)
    }

    /// A text value. Text is packed from UTF-8 only; checking it again costs a few nanoseconds
    /// for the short values of a head and keeps this module free of `unsafe`.
    fn text(&self, i: usize) -> Option<&str> {
        self.get(i)
            .map(|v| std::str::from_utf8(v).unwrap_or_default())
    }
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
