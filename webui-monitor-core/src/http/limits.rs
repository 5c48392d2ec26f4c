//! The HTTP engine's caps ([`HttpLimits`]) and what they cut ([`HttpCounters`]), shared by
//! every connection through [`HttpShared`].
use crate::{
    http::{
        decode::{BodyDecoder, DecodeBudget},
        head::{HeadError, HeadLimits},
    },
    json::JsonLimits,
    memory::MemoryAccount,
};

/// Caps of the HTTP engine. Every cap has a counter in [`HttpCounters`].
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Longest header block (start line through CRLFCRLF) read (default 64 KiB). The rest of a
    /// longer request head is skipped for its framing fields only; its request still takes its
    /// answer, unreported. uvicorn's httptools parser has no such limit.
    pub max_header_bytes: usize,
    /// Most header fields read in one message (default 1024); the framing fields past it still
    /// are. uvicorn limits a head by size, not by its number of fields.
    pub max_headers: usize,
    /// Longest request path kept; longer paths are cut (default 2048).
    pub max_path_bytes: usize,
    /// Longest header value kept as text in an exchange (default 1024).
    pub max_header_value_bytes: usize,
    /// Longest chunk-extension list and trailer section of a chunked body (default 8 KiB).
    pub max_chunk_meta_bytes: usize,
    /// Most decoded bytes per content-encoded body; decoding stops there (default 64 MiB).
    pub max_decoded_body_bytes: u64,
    /// Decode content-encoded bodies whose content no extractor reads (scripts, styles,
    /// images), only to report their decoded size (default false). No metric uses that size —
    /// only `body_decoded_bytes` of `replay --json` lines, `None` when false — and decompressing
    /// dominates the cost of compressed traffic: the web UI's assets are most of its bytes.
    pub decode_unused_bodies: bool,
    /// Largest zstd window accepted, as log2 bytes (default 23 = 8 MiB, RFC 9659's limit).
    pub max_zstd_window_log: u32,
    /// Largest brotli window accepted, as log2 bytes (default 22 = 4 MiB, the window of
    /// brotli's and ngx_brotli's defaults; the format allows 24). A body with a larger window
    /// is not decoded (`decode_errors`): its window would be held per connection.
    pub max_brotli_window_log: u32,
    /// Decompressed bytes per second of traffic time over all connections (default 256 MiB;
    /// 0: unlimited). Bodies that would go past it stop decoding (`decode_over_budget`), so a
    /// stream of decompression bombs cannot take the pipeline's thread.
    pub max_decoded_bytes_per_second: u64,
    /// Decompressed bytes per second of traffic time on one connection (default 64 MiB; 0:
    /// unlimited): one connection cannot spend the whole budget above.
    pub max_decoded_bytes_per_connection_per_second: u64,
    /// Most bytes held while waiting: request bytes after an `Upgrade` request until its
    /// response is known, response bytes before their request is seen (default 64 KiB).
    pub max_held_bytes: usize,
    /// Most requests waiting for their responses on one connection (default 64).
    pub max_pending_requests: usize,
    /// Name of the API-key request header (default `x-api-key`). Set from the configuration's
    /// `openwebui.api_key_header`: it is an Open WebUI setting, not an HTTP limit.
    #[serde(skip)]
    pub api_key_header: String,
    /// Caps of the JSON field extraction.
    pub json: JsonLimits,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 1024,
            max_path_bytes: 2048,
            max_header_value_bytes: 1024,
            max_chunk_meta_bytes: 8 * 1024,
            max_decoded_body_bytes: 64 * 1024 * 1024,
            max_zstd_window_log: 23,
            max_brotli_window_log: 22,
            max_decoded_bytes_per_second: 256 * 1024 * 1024,
            max_decoded_bytes_per_connection_per_second: 64 * 1024 * 1024,
            decode_unused_bodies: false,
            max_held_bytes: 64 * 1024,
            max_pending_requests: 64,
            api_key_header: "x-api-key".to_owned(),
            json: JsonLimits::default(),
        }
    }
}

/// What every connection's HTTP engine has cut or rejected, summed over connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCounters {
    /// Messages rejected (bad start line, header line, Content-Length or chunked framing, or a
    /// head over `max_header_bytes`). A rejected request whose head was read to its end still
    /// takes its answer, and its body is skipped when its length is known; otherwise the
    /// direction resynchronises.
    pub malformed_messages: u64,
    /// Header blocks over `max_header_bytes`.
    pub headers_too_large: u64,
    /// Messages with more header fields than `max_headers`: the fields past it were read for
    /// framing only.
    pub too_many_headers: u64,
    /// Chunked bodies that broke framing.
    pub chunked_errors: u64,
    /// Bytes skipped while looking for the next message start.
    pub resync_skipped_bytes: u64,
    /// Gaps skipped inside a body (the body's decoding was abandoned).
    pub body_gaps: u64,
    /// Gaps elsewhere, each followed by a resynchronisation.
    pub stream_gaps: u64,
    /// Bodies whose Content-Encoding was unknown or corrupt.
    pub decode_errors: u64,
    /// Bodies cut at `max_decoded_body_bytes`.
    pub decode_capped: u64,
    /// Bodies whose decoding stopped because a decode budget per second ran out.
    pub decode_over_budget: u64,
    /// Compressed bodies not decoded because the memory budget could not hold their
    /// decompressor (`memory.max_held_bytes`).
    pub decode_memory_refused: u64,
    /// Request bodies not decoded or scanned: their route reads no field of them.
    pub request_bodies_unread: u64,
    /// Bodies (or their rest) skipped unseen because nothing reads them
    /// ([`HttpShared::skip_unread_bodies_from`]).
    pub bodies_skipped: u64,
    /// JSON bodies malformed or with a value cut at a JSON cap.
    pub json_truncated: u64,
    /// Paths cut at `max_path_bytes`.
    pub paths_truncated: u64,
    /// Interim (1xx) responses skipped.
    pub interim_responses: u64,
    /// Responses with no request to match (dropped).
    pub orphan_responses: u64,
    /// Bytes dropped over `max_held_bytes`.
    pub held_bytes_dropped: u64,
    /// Requests emitted without a response (closed, expired, or over `max_pending_requests`).
    pub missing_responses: u64,
    /// Connections upgraded (101).
    pub upgrades: u64,
    /// Connections turned into tunnels by a 2xx to CONNECT (not parsed further).
    pub tunnels: u64,
    /// Messages presumed lost in a gap between or inside header blocks.
    pub lost_messages: u64,
    /// Bytes received after the connection ended for HTTP (upgrade or close).
    pub ignored_bytes: u64,
}

/// Limits and counters shared by all connections (owned by the pipeline).
#[derive(Debug, Default)]
pub struct HttpShared {
    pub limits: HttpLimits,
    pub counters: HttpCounters,
    /// The decode budget of all connections (`max_decoded_bytes_per_second`).
    pub budget: DecodeBudget,
    /// The pipeline's memory budget, which decompressors are granted from.
    pub memory: MemoryAccount,
    /// Whether a request's body is read for fields, by method and path. The HTTP engine knows
    /// no routes: the layer that uses the fields says which it reads (every JSON body if unset).
    pub reads_request_body: BodyReads,
    /// Decoders of finished bodies, emptied, whose allocations the next bodies take.
    pub spare_decoders: SpareDecoders,
    /// Bodies nothing reads whose remaining length is known and at least this many bytes are
    /// skipped (see [`HttpConnection::take_skip`](super::HttpConnection::take_skip)); `None`:
    /// none is.
    pub skip_unread_bodies_from: Option<u64>,
}

/// Which request bodies are read for fields: the answer of the reading layer's function (a
/// route lookup), kept for the last method and path asked about. Most requests repeat the one
/// before them (a script calls one endpoint, a browser polls a few), so most cost two string
/// comparisons instead of the lookup.
#[derive(Debug)]
pub struct BodyReads {
    reads: Option<fn(&str, &str) -> bool>,
    /// The last answer, for `method` and `path`.
    last: Option<bool>,
    method: String,
    path: String,
}

/// The longest path [`BodyReads`] keeps an answer for: the buffer it keeps it in is allocated
/// once, at this size, and never grows (longer paths are looked up every time).
const BODY_READS_PATH: usize = 128;

impl Default for BodyReads {
    fn default() -> Self {
        Self {
            reads: None,
            last: None,
            method: String::with_capacity(16),
            path: String::with_capacity(BODY_READS_PATH),
        }
    }
}

impl BodyReads {
    /// Bodies are read where `reads(method, path)` says so (every one until this is called).
    pub fn set(&mut self, reads: fn(&str, &str) -> bool) {
        self.reads = Some(reads);
        self.last = None;
    }

    /// Whether the body of a `method` request to `path` is read.
    pub fn of(&mut self, method: &str, path: &str) -> bool {
        let Some(reads) = self.reads else {
            return true;
        };
        if let Some(last) = self.last
            && self.path == path
            && self.method == method
        {
            return last;
        }
        let answer = reads(method, path);
        if path.len() <= BODY_READS_PATH && method.len() <= self.method.capacity() {
            self.method.clear();
            self.method.push_str(method);
            self.path.clear();
            self.path.push_str(path);
            self.last = Some(answer);
        } else {
            self.last = None;
        }
        answer
    }
}

/// Emptied body decoders whose allocations later bodies take: a body's decoder is boxed (its
/// consumer is large), and most bodies are short, so a box per body would be an allocation
/// and a free per body.
#[derive(Debug, Default)]
// The boxes are the point: each is handed out whole, as a body's decoder.
#[allow(clippy::vec_box)]
pub struct SpareDecoders(Vec<Box<BodyDecoder>>);

/// The most emptied decoders [`SpareDecoders`] keeps: between two ends of bodies only the
/// bodies of a few connections start, so a few cover the steady state; the rest of a burst
/// allocates.
const SPARE_DECODERS: usize = 8;

impl SpareDecoders {
    /// A spare decoder, if one is kept.
    pub(crate) fn take(&mut self) -> Option<Box<BodyDecoder>> {
        self.0.pop()
    }

    /// Keeps the allocation of `decoder`, whose body has ended, for a later body (up to
    /// [`SPARE_DECODERS`]); what it held is dropped now.
    pub(crate) fn recycle(&mut self, mut decoder: Box<BodyDecoder>) {
        if self.0.len() < SPARE_DECODERS {
            decoder.clear();
            self.0.push(decoder);
        }
    }
}

impl HttpShared {
    pub fn new(limits: HttpLimits) -> Self {
        Self {
            budget: DecodeBudget::new(limits.max_decoded_bytes_per_second),
            limits,
            counters: HttpCounters::default(),
            memory: MemoryAccount::default(),
            reads_request_body: BodyReads::default(),
            spare_decoders: SpareDecoders::default(),
            skip_unread_bodies_from: None,
        }
    }

    /// New caps from now on (the budget keeps what it holds, up to its new rate).
    pub fn set_limits(&mut self, limits: HttpLimits) {
        self.budget.set_rate(limits.max_decoded_bytes_per_second);
        self.limits = limits;
    }
}

impl HttpLimits {
    /// The caps that apply while parsing one header block.
    pub(crate) fn head(&self) -> HeadLimits<'_> {
        HeadLimits {
            max_headers: self.max_headers,
            max_path_bytes: self.max_path_bytes,
            max_value_bytes: self.max_header_value_bytes,
            api_key_header: &self.api_key_header,
        }
    }
}

impl HttpCounters {
    /// A header block was rejected.
    pub(crate) fn head_rejected(&mut self, error: HeadError) {
        self.malformed_messages += 1;
        if error == HeadError::TooLarge {
            self.headers_too_large += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    use super::*;

    /// A recycled decoder gives back what its body held (its decompressor's memory grant)
    /// at once, and the next body takes its allocation; past the cap, decoders are dropped.
    #[test]
    fn spare_decoders_are_emptied_and_reused() {
        use crate::{
            http::decode::{Consumer, WindowLogs},
            json::JsonLimits,
            memory::Holder,
        };
        let mut shared = HttpShared::default();
        let gzip_json = |spare, shared: &HttpShared| {
            let windows = WindowLogs {
                zstd: 23,
                brotli: 22,
            };
            let consumer = Consumer::response_json(JsonLimits::default());
            let mut decoder = BodyDecoder::new(spare, Some("gzip"), consumer, 1 << 20, windows);
            decoder.reserve(&shared.memory);
            decoder
        };
        let decoder = gzip_json(None, &shared);
        assert!(shared.memory.held(Holder::Decoder) > 0);
        let address: *const BodyDecoder = &*decoder;
        shared.spare_decoders.recycle(decoder);
        assert_eq!(
            shared.memory.held(Holder::Decoder),
            0,
            "the grant went back"
        );
        let spare = shared.spare_decoders.take();
        assert!(spare.is_some());
        let reused = gzip_json(spare, &shared);
        assert!(std::ptr::eq(&*reused, address), "the same allocation");
        assert!(shared.memory.held(Holder::Decoder) > 0);
        drop(reused);
        assert_eq!(shared.memory.held(Holder::Decoder), 0);

        for _ in 0..SPARE_DECODERS + 2 {
            let decoder = gzip_json(None, &shared);
            shared.spare_decoders.recycle(decoder);
        }
        assert_eq!(shared.spare_decoders.0.len(), SPARE_DECODERS);
        assert_eq!(shared.memory.held(Holder::Decoder), 0);
    }

    static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

    fn reads_completions(method: &str, path: &str) -> bool {
        LOOKUPS.fetch_add(1, Relaxed);
        method == "POST" && path == "/api/chat/completions"
    }

    /// The answer for the last method and path is kept; any other is looked up, and paths
    /// longer than the kept buffer are looked up every time.
    #[test]
    fn body_reads_keeps_the_last_answer() {
        let mut reads = BodyReads::default();
        assert!(reads.of("GET", "/anything"), "unset: every body is read");
        reads.set(reads_completions);
        let long = format!("/{}", "a".repeat(BODY_READS_PATH));
        let asked = [
            ("POST", "/api/chat/completions", true, 1),
            ("POST", "/api/chat/completions", true, 0),
            ("GET", "/api/chat/completions", false, 1),
            ("GET", "/api/chat/completions", false, 0),
            ("POST", "/api/chat/completion", false, 1),
            ("POST", long.as_str(), false, 1),
            ("POST", long.as_str(), false, 1),
            ("POST", "/api/chat/completions", true, 1),
        ];
        for (method, path, answer, lookups) in asked {
            let before = LOOKUPS.load(Relaxed);
            assert_eq!(reads.of(method, path), answer, "{method} {path}");
            assert_eq!(LOOKUPS.load(Relaxed) - before, lookups, "{method} {path}");
        }
        assert_eq!(
            reads.path.capacity(),
            BODY_READS_PATH,
            "the kept path never grew"
        );
        assert!(!reads.of("POST", "/api/chat/completion"));
        reads.set(|_, _| true);
        assert!(
            reads.of("POST", "/api/chat/completion"),
            "a new function's answers"
        );
    }
}
