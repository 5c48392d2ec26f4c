//! Content-Encoding decoding as a push stream with an output cap, feeding a body consumer.
//!
//! Every decoder is a `Write` adapter around a [`Sink`] that counts the decoded bytes, refuses
//! to go past the cap (so a decompression bomb costs at most the cap in CPU, never memory) and
//! hands the bytes to the [`Consumer`] that extracts fields.
use std::io::{self, Write};

use crate::{
    http::{
        exchange::{RequestBodyFields, ResponseBodyFields},
        fields::{RequestVisitor, ResponseVisitor},
        ndjson::NdjsonParser,
        sse::SseParser,
    },
    json::{JsonLimits, JsonScanner},
    memory::{Holder, MemoryAccount, Reservation},
    segment::Timestamp,
};

/// What is done with a decoded body. The JSON scanners are held inline: a consumer lives in
/// its body's decoder, which is boxed once per body, so a JSON body costs no allocation of its
/// own.
#[derive(Debug, Default)]
#[allow(clippy::large_enum_variant)]
pub enum Consumer {
    /// Only counted.
    #[default]
    Discard,
    /// A JSON request body: chat completion fields.
    Request(JsonScanner, RequestVisitor),
    /// A JSON response body: `usage`, `task_ids`.
    Response(JsonScanner, ResponseVisitor),
    /// A `text/event-stream` response.
    Sse(Box<SseParser>),
    /// An NDJSON response (Ollama's native streaming).
    Ndjson(Box<NdjsonParser>),
}

impl Consumer {
    pub fn request_json(limits: JsonLimits) -> Self {
        Consumer::Request(JsonScanner::new(limits), RequestVisitor::default())
    }
    pub fn response_json(limits: JsonLimits) -> Self {
        Consumer::Response(JsonScanner::new(limits), ResponseVisitor::default())
    }
    pub fn sse(limits: JsonLimits) -> Self {
        Consumer::Sse(Box::new(SseParser::new(limits)))
    }
    pub fn ndjson(limits: JsonLimits) -> Self {
        Consumer::Ndjson(Box::new(NdjsonParser::new(limits)))
    }

    fn feed(&mut self, data: &[u8], ts: Timestamp) {
        match self {
            Consumer::Discard => {}
            Consumer::Request(scanner, visitor) => scanner.feed(data, visitor),
            Consumer::Response(scanner, visitor) => scanner.feed(data, visitor),
            Consumer::Sse(p) => p.feed(data, ts),
            Consumer::Ndjson(p) => p.feed(data, ts),
        }
    }
}

/// Fields extracted from one body, and whether extraction hit a cap or malformed input.
#[derive(Debug, Default)]
pub struct Extracted {
    pub request: RequestBodyFields,
    pub response: ResponseBodyFields,
    /// JSON was expected but malformed, or a value was cut.
    pub json_truncated: bool,
}

impl Consumer {
    /// Ends the body. `whole`: every byte of the body reached the consumer. Read in place: a
    /// JSON consumer is too large to move for its few results.
    pub fn finish(&mut self, whole: bool) -> Extracted {
        let mut out = Extracted::default();
        match self {
            Consumer::Discard => {}
            Consumer::Request(scanner, visitor) => {
                let ok = whole && scanner.finish(visitor).is_ok();
                // Only a body that began as a JSON object and then broke counts as truncated.
                out.json_truncated = visitor.object && (!ok || scanner.truncated());
                out.request = std::mem::take(&mut visitor.fields);
                out.request.json = ok && visitor.object;
            }
            Consumer::Response(scanner, visitor) => {
                let ok = whole && scanner.finish(visitor).is_ok();
                out.json_truncated = visitor.object && (!ok || scanner.truncated());
                out.response.json = ok && visitor.object;
                out.response.usage = visitor.token_counts();
                out.response.model_load = visitor.model_load;
                out.response.has_task_ids = visitor.has_task_ids;
            }
            Consumer::Sse(p) => {
                out.json_truncated = p.truncated();
                out.response.usage = p.usage();
                out.response.sse = Some(p.summary().clone());
            }
            Consumer::Ndjson(p) => {
                if whole {
                    p.finish();
                }
                out.json_truncated = p.truncated();
                out.response.usage = p.usage();
                out.response.model_load = p.model_load();
                out.response.ndjson = Some(p.summary().clone());
            }
        }
        out
    }
}

/// A token bucket of decoded bytes in traffic time: `rate` bytes per second, holding at most
/// one second's worth. Decompression is the one place where a few input bytes cost much CPU;
/// the pipeline keeps one bucket for all connections and one per connection, so neither a bomb
/// nor a flood of them can take more than the configured share of the pipeline's thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeBudget {
    /// Bytes per second; 0: unlimited.
    rate: u64,
    available: u64,
    last: Timestamp,
}

impl DecodeBudget {
    pub fn new(rate: u64) -> Self {
        Self {
            rate,
            available: rate,
            last: Timestamp::default(),
        }
    }

    /// New rate from now on (the bucket keeps what it holds, up to the new rate).
    pub fn set_rate(&mut self, rate: u64) {
        self.rate = rate;
        self.available = self.available.min(rate);
    }

    /// Bytes that may be decoded at traffic time `ts`.
    pub fn available(&mut self, ts: Timestamp) -> u64 {
        if self.rate == 0 {
            return u64::MAX;
        }
        let elapsed = ts.as_nanos().saturating_sub(self.last.as_nanos());
        if elapsed > 0 {
            let refill = u128::from(elapsed) * u128::from(self.rate) / 1_000_000_000;
            let refill = u64::try_from(refill).unwrap_or(u64::MAX);
            self.available = self.available.saturating_add(refill).min(self.rate);
            self.last = ts;
        }
        self.available
    }

    pub fn spend(&mut self, bytes: u64) {
        self.available = self.available.saturating_sub(bytes);
    }
}

/// Counts decoded bytes, enforces the cap and the budget, and feeds the consumer.
#[derive(Debug, Default)]
pub struct Sink {
    pub consumer: Consumer,
    pub decoded: u64,
    cap: u64,
    pub capped: bool,
    /// Bytes the decode budgets allow in the current [`BodyDecoder::feed`].
    allowance: u64,
    /// The budgets ran out before the body's cap.
    over_budget: bool,
    ts: Timestamp,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let to_cap = self.cap.saturating_sub(self.decoded);
        let room = to_cap.min(self.allowance);
        if buf.len() as u64 > room {
            let n = room as usize;
            self.consumer.feed(&buf[..n], self.ts);
            self.decoded += room;
            self.allowance -= room;
            if room == to_cap {
                self.capped = true;
            } else {
                self.over_budget = true;
            }
            return Err(io::Error::other(
                "decoded body cap or decode budget reached",
            ));
        }
        self.consumer.feed(buf, self.ts);
        self.decoded += buf.len() as u64;
        self.allowance -= buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Identity,
    Gzip(Box<flate2::write::GzDecoder<Sink>>),
    /// `deflate` before its first two bytes tell zlib from raw deflate.
    DeflateSniff(Vec<u8>),
    /// `br` before its first byte declares the window.
    BrotliSniff,
    Zlib(Box<flate2::write::ZlibDecoder<Sink>>),
    Raw(Box<flate2::write::DeflateDecoder<Sink>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Sink>>),
    /// Decoding stopped (error, cap, gap or unknown coding); the sink is kept for its results.
    Stopped,
}

/// Why a body's decoded size is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeStop {
    /// Unknown coding or corrupt/truncated data.
    Error,
    /// Output reached the cap.
    Capped,
    /// The decode budgets (bytes per second, per connection and for all) ran out.
    OverBudget,
    /// The pipeline's memory budget could not hold another decompressor.
    MemoryRefused,
    /// Input bytes were lost (reassembly gap).
    Abandoned,
    /// Not decoded by configuration: nothing reads the content.
    Skipped,
}

/// Largest windows accepted, as log2 bytes: a decoder holds its window for the whole body.
#[derive(Debug, Clone, Copy)]
pub struct WindowLogs {
    pub zstd: u32,
    pub brotli: u32,
}

/// The window size (log2 bytes) a brotli stream declares in its first byte (RFC 7932, 9.1:
/// `WBITS`), or `None` for the large-window extension, which HTTP does not use.
fn brotli_window_log(first: u8) -> Option<u32> {
    if first & 1 == 0 {
        return Some(16);
    }
    match (first >> 1) & 0b111 {
        0 => match (first >> 4) & 0b111 {
            0 => Some(17),
            1 => None,
            n => Some(8 + u32::from(n)),
        },
        n => Some(17 + u32::from(n)),
    }
}

/// A Content-Encoding value, matched without case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    /// Empty or `identity`.
    Identity,
    /// `gzip` or `x-gzip`.
    Gzip,
    Deflate,
    Brotli,
    Zstd,
    Unknown,
}

impl Coding {
    fn of(value: &str) -> Self {
        let is = |name: &str| value.eq_ignore_ascii_case(name);
        if value.is_empty() || is("identity") {
            Self::Identity
        } else if is("gzip") || is("x-gzip") {
            Self::Gzip
        } else if is("deflate") {
            Self::Deflate
        } else if is("br") {
            Self::Brotli
        } else if is("zstd") {
            Self::Zstd
        } else {
            Self::Unknown
        }
    }
}

/// The decoding pipeline of one body.
pub struct BodyDecoder {
    inner: Inner,
    /// The sink while `inner` does not own it (identity, sniffing, stopped).
    sink: Option<Sink>,
    stop: Option<DecodeStop>,
    windows: WindowLogs,
    /// The decompressor's share of the pipeline's memory budget, held until the body ends.
    grant: Option<Reservation>,
}

impl std::fmt::Debug for BodyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyDecoder")
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

/// The result of a finished body.
#[derive(Debug)]
pub struct Decoded {
    /// Decoded size; `None` when decoding stopped.
    pub bytes: Option<u64>,
    pub stop: Option<DecodeStop>,
    pub extracted: Extracted,
}

impl BodyDecoder {
    /// `coding`: the Content-Encoding header value (`None`/`identity`: none). Boxed where it
    /// is built, since the consumer it holds is large: in `spare`'s allocation when there is
    /// one (a decoder emptied by [`BodyDecoder::clear`]), so that a body costs no allocation.
    pub fn new(
        spare: Option<Box<Self>>,
        coding: Option<&str>,
        consumer: Consumer,
        cap: u64,
        windows: WindowLogs,
    ) -> Box<Self> {
        let fresh = Self {
            inner: Inner::Identity,
            sink: Some(Sink {
                consumer,
                cap,
                allowance: u64::MAX,
                ..Sink::default()
            }),
            stop: None,
            windows,
            grant: None,
        };
        let mut d = match spare {
            Some(mut spare) => {
                *spare = fresh;
                spare
            }
            None => Box::new(fresh),
        };
        let coding = coding.map(|c| Coding::of(c.trim()));
        match coding {
            None | Some(Coding::Identity) => {
                // The cap bounds decompression work; an identity body costs no more than its
                // wire bytes.
                if let Some(s) = d.sink.as_mut() {
                    s.cap = u64::MAX;
                }
            }
            Some(Coding::Gzip) => {
                if let Some(s) = d.sink.take() {
                    d.inner = Inner::Gzip(Box::new(flate2::write::GzDecoder::new(s)));
                }
            }
            Some(Coding::Deflate) => d.inner = Inner::DeflateSniff(Vec::with_capacity(2)),
            // The decompressor starts at the first byte, which declares the window.
            Some(Coding::Brotli) => d.inner = Inner::BrotliSniff,
            Some(Coding::Zstd) => {
                if let Some(s) = d.sink.take() {
                    match zstd::stream::write::Decoder::new(s) {
                        Ok(mut z) => {
                            if z.window_log_max(d.windows.zstd).is_err() {
                                d.sink = Some(std::mem::take(z.get_mut()));
                                d.stop(DecodeStop::Error);
                            } else {
                                d.inner = Inner::Zstd(Box::new(z));
                            }
                        }
                        Err(_) => d.stop(DecodeStop::Error),
                    }
                }
            }
            Some(Coding::Unknown) => d.stop(DecodeStop::Error),
        }
        d
    }

    /// Drops what the body held (its consumer's buffers, a decompressor, its memory grant),
    /// keeping the allocation for [`BodyDecoder::new`].
    pub fn clear(&mut self) {
        *self = Self {
            inner: Inner::Identity,
            sink: None,
            stop: None,
            windows: self.windows,
            grant: None,
        };
    }

    fn sink_mut(&mut self) -> Option<&mut Sink> {
        match &mut self.inner {
            Inner::Gzip(w) => Some(w.get_mut()),
            Inner::Zlib(w) => Some(w.get_mut()),
            Inner::Raw(w) => Some(w.get_mut()),
            Inner::Brotli(w) => Some(w.get_mut()),
            Inner::Zstd(w) => Some(w.get_mut()),
            Inner::Identity | Inner::DeflateSniff(_) | Inner::BrotliSniff | Inner::Stopped => {
                self.sink.as_mut()
            }
        }
    }

    /// Stops decoding, taking the sink back from the decoder.
    fn stop(&mut self, why: DecodeStop) {
        if self.sink.is_none() {
            self.sink = self.sink_mut().map(std::mem::take);
        }
        self.inner = Inner::Stopped;
        if self.stop.is_none() {
            let (capped, over) = self
                .sink
                .as_ref()
                .map_or((false, false), |s| (s.capped, s.over_budget));
            self.stop = Some(if capped {
                DecodeStop::Capped
            } else if over {
                DecodeStop::OverBudget
            } else {
                why
            });
        }
    }

    /// Memory the decompressor may hold at most: its window (the largest accepted) and its
    /// state; 0 for a body that is not decompressed.
    fn memory_needed(&self) -> u64 {
        const STATE: u64 = 64 << 10;
        match &self.inner {
            Inner::Gzip(_) | Inner::Zlib(_) | Inner::Raw(_) | Inner::DeflateSniff(_) => STATE,
            Inner::Brotli(_) | Inner::BrotliSniff => (1u64 << self.windows.brotli) + STATE,
            Inner::Zstd(_) => (1u64 << self.windows.zstd) + 2 * STATE,
            Inner::Identity | Inner::Stopped => 0,
        }
    }

    /// Takes the decompressor's memory from `memory`; without it the body is not decoded.
    pub fn reserve(&mut self, memory: &MemoryAccount) {
        let needed = self.memory_needed();
        if needed == 0 || self.stop.is_some() {
            return;
        }
        match memory.reserve(Holder::Decoder, needed) {
            Some(grant) => self.grant = Some(grant),
            None => self.stop(DecodeStop::MemoryRefused),
        }
    }

    /// Does not decode at all (the content is not needed); the body is only counted.
    pub fn skip(&mut self) {
        if !matches!(self.inner, Inner::Identity) {
            self.stop(DecodeStop::Skipped);
        }
    }

    /// Whether nothing reads the decoded content.
    pub fn discards(&self) -> bool {
        match &self.inner {
            Inner::Gzip(w) => matches!(w.get_ref().consumer, Consumer::Discard),
            Inner::Zlib(w) => matches!(w.get_ref().consumer, Consumer::Discard),
            Inner::Raw(w) => matches!(w.get_ref().consumer, Consumer::Discard),
            Inner::Brotli(w) => matches!(w.get_ref().consumer, Consumer::Discard),
            Inner::Zstd(w) => matches!(w.get_ref().consumer, Consumer::Discard),
            _ => self
                .sink
                .as_ref()
                .is_none_or(|s| matches!(s.consumer, Consumer::Discard)),
        }
    }

    /// Whether the rest of the body can go unseen without changing the result: decoding has
    /// stopped (skipped by configuration, an error, a cap), or the body is not encoded and
    /// nothing reads it (its bytes are only counted, which [`Self::count_unseen`] does).
    pub fn unread(&self) -> bool {
        self.stop.is_some() || (matches!(self.inner, Inner::Identity) && self.discards())
    }

    /// `len` bytes of an [`unread`](Self::unread) body went unseen: counted as feeding them
    /// would have counted them.
    pub fn count_unseen(&mut self, len: u64) {
        if self.stop.is_none()
            && matches!(self.inner, Inner::Identity)
            && let Some(sink) = self.sink.as_mut()
        {
            sink.decoded += len;
        }
    }

    /// Input bytes of the body were lost: the rest cannot be decoded.
    pub fn abandon(&mut self) {
        self.stop(DecodeStop::Abandoned);
    }

    /// Decodes the next piece of the (de-chunked) body, spending what it decodes from
    /// `budgets` (an identity body costs nothing: no decompression).
    pub fn feed(&mut self, data: &[u8], ts: Timestamp, budgets: &mut [&mut DecodeBudget; 2]) {
        if data.is_empty() || self.stop.is_some() {
            return;
        }
        let identity = matches!(self.inner, Inner::Identity);
        let allowance = if identity {
            u64::MAX
        } else {
            budgets
                .iter_mut()
                .map(|b| b.available(ts))
                .min()
                .unwrap_or(u64::MAX)
        };
        let before = match self.sink_mut() {
            Some(s) => {
                s.ts = ts;
                s.allowance = allowance;
                s.decoded
            }
            None => 0,
        };
        self.feed_inner(data);
        if !identity {
            let after = self.sink_mut().map_or(before, |s| s.decoded);
            for b in budgets.iter_mut() {
                b.spend(after.saturating_sub(before));
            }
        }
    }

    fn feed_inner(&mut self, data: &[u8]) {
        if data.is_empty() || self.stop.is_some() {
            return;
        }
        if let Inner::DeflateSniff(head) = &mut self.inner {
            let take = (2 - head.len()).min(data.len());
            head.extend_from_slice(&data[..take]);
            if head.len() < 2 {
                return;
            }
            let (cmf, flg) = (head[0], head[1]);
            let head = std::mem::take(head);
            let Some(sink) = self.sink.take() else { return };
            // RFC 1950 header: CM 8, window ≤ 32 KiB, check bits. Otherwise raw deflate, which
            // some servers send for `deflate`.
            let zlib = cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
            self.inner = if zlib {
                Inner::Zlib(Box::new(flate2::write::ZlibDecoder::new(sink)))
            } else {
                Inner::Raw(Box::new(flate2::write::DeflateDecoder::new(sink)))
            };
            self.feed_inner(&head);
            self.feed_inner(&data[take..]);
            return;
        }
        if matches!(self.inner, Inner::BrotliSniff) {
            match brotli_window_log(data[0]) {
                Some(log) if log <= self.windows.brotli => {
                    let Some(sink) = self.sink.take() else { return };
                    self.inner = Inner::Brotli(Box::new(
                        brotli_decompressor::DecompressorWriter::new(sink, 4096),
                    ));
                }
                _ => {
                    self.stop(DecodeStop::Error);
                    return;
                }
            }
        }
        let r = match &mut self.inner {
            Inner::Identity => match self.sink.as_mut() {
                Some(s) => s.write_all(data),
                None => Ok(()),
            },
            Inner::Gzip(w) => w.write_all(data),
            Inner::Zlib(w) => w.write_all(data),
            Inner::Raw(w) => w.write_all(data),
            Inner::Brotli(w) => w.write_all(data),
            Inner::Zstd(w) => w.write_all(data),
            Inner::DeflateSniff(_) | Inner::BrotliSniff | Inner::Stopped => Ok(()),
        };
        if r.is_err() {
            self.stop(DecodeStop::Error);
        }
    }

    /// Ends the body. `whole`: no byte of it was lost and it ended as framed. The decoder is
    /// read in place and dropped by its owner.
    pub fn finish(&mut self, whole: bool) -> Decoded {
        if self.stop.is_none() {
            let r = match &mut self.inner {
                Inner::Gzip(w) => w.try_finish(),
                Inner::Zlib(w) => w.try_finish(),
                Inner::Raw(w) => w.try_finish(),
                Inner::Brotli(w) => w.close(),
                Inner::Zstd(w) => w.do_finish(),
                // Fewer than two bytes of deflate: only an empty body is valid.
                Inner::DeflateSniff(h) if !h.is_empty() => Err(io::Error::other("short deflate")),
                _ => Ok(()),
            };
            if r.is_err() {
                self.stop(DecodeStop::Error);
            }
        }
        let clean = self.stop.is_none();
        let stop = self.stop;
        match self.sink_mut() {
            Some(sink) => Decoded {
                bytes: clean.then_some(sink.decoded),
                stop,
                extracted: sink.consumer.finish(whole && clean),
            },
            None => Decoded {
                bytes: clean.then_some(0),
                stop,
                extracted: Extracted::default(),
            },
        }
    }
}
