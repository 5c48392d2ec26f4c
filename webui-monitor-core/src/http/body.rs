//! Which decoder reads a body, and what its result does to the exchange.
//!
//! The content type picks the consumer (chat completion fields of a JSON request; usage of a
//! JSON, SSE or NDJSON response; nothing otherwise), the content coding picks the decompressor,
//! and a body nothing reads is not decompressed unless the configuration asks for its size.
use crate::{
    http::{
        decode::{BodyDecoder, Consumer, DecodeStop, Decoded, WindowLogs},
        exchange::{Anomaly, Exchange, RequestHeaders, ResponseHeaders},
        limits::HttpShared,
    },
    segment::Direction,
};

/// The decoder of the body of a `method` request to `path` with these headers. A
/// body whose route reads no field is neither decompressed nor scanned: an unauthenticated
/// upload or bomb to any other route costs its wire bytes only.
pub(super) fn request_decoder(
    method: &str,
    path: &str,
    headers: &RequestHeaders,
    shared: &mut HttpShared,
) -> Box<BodyDecoder> {
    // A request without a content type is read as JSON: scripted clients often omit it.
    let json = headers.content_type().is_none_or(mentions_json);
    let read = shared.reads_request_body.of(method, path);
    if json && !read {
        shared.counters.request_bodies_unread += 1;
    }
    let consumer = if json && read {
        Consumer::request_json(shared.limits.json)
    } else {
        Consumer::Discard
    };
    decoder(headers.content_encoding(), consumer, shared)
}

/// The decoder of a response body with these headers.
pub(super) fn response_decoder(
    headers: &ResponseHeaders,
    shared: &mut HttpShared,
) -> Box<BodyDecoder> {
    let limits = shared.limits.json;
    let consumer = match headers.content_type() {
        Some(t) if is_event_stream(t) => Consumer::sse(limits),
        Some(t) if is_ndjson(t) => Consumer::ndjson(limits),
        Some(t) if mentions_json(t) => Consumer::response_json(limits),
        _ => Consumer::Discard,
    };
    decoder(headers.content_encoding(), consumer, shared)
}

/// `coding`: the `Content-Encoding` value.
fn decoder(coding: Option<&str>, consumer: Consumer, shared: &mut HttpShared) -> Box<BodyDecoder> {
    let spare = shared.spare_decoders.take();
    let limits = &shared.limits;
    let mut decoder = BodyDecoder::new(
        spare,
        coding,
        consumer,
        limits.max_decoded_body_bytes,
        WindowLogs {
            zstd: limits.max_zstd_window_log,
            brotli: limits.max_brotli_window_log,
        },
    );
    if !limits.decode_unused_bodies && decoder.discards() {
        decoder.skip();
    }
    decoder.reserve(&shared.memory);
    decoder
}

/// Records a finished body of `direction` in its exchange (when it still has one) and in the
/// counters. `complete`: the body ended as framed.
pub(super) fn finish(
    decoded: Decoded,
    direction: Direction,
    complete: bool,
    target: Option<&mut Exchange>,
    shared: &mut HttpShared,
) {
    let truncated = decoded.extracted.json_truncated && decoded.stop.is_none();
    match decoded.stop {
        Some(DecodeStop::Error) => shared.counters.decode_errors += 1,
        Some(DecodeStop::Capped) => shared.counters.decode_capped += 1,
        Some(DecodeStop::OverBudget) => shared.counters.decode_over_budget += 1,
        Some(DecodeStop::MemoryRefused) => shared.counters.decode_memory_refused += 1,
        _ => {}
    }
    if truncated {
        shared.counters.json_truncated += 1;
    }
    let Some(ex) = target else {
        return;
    };
    let Decoded {
        bytes,
        stop,
        extracted,
    } = decoded;
    let stats = match direction {
        Direction::Request => Some(&mut ex.request),
        Direction::Response => ex.response.as_mut(),
    };
    if let Some(stats) = stats {
        stats.body_decoded_bytes = bytes;
        stats.complete = complete;
    }
    match stop {
        Some(DecodeStop::Error) => ex.anomalies.push(Anomaly::DecodeError),
        Some(DecodeStop::Capped) => ex.anomalies.push(Anomaly::DecodeCapped),
        Some(DecodeStop::OverBudget) => ex.anomalies.push(Anomaly::DecodeOverBudget),
        Some(DecodeStop::MemoryRefused) => ex.anomalies.push(Anomaly::DecodeMemoryRefused),
        Some(DecodeStop::Abandoned) => ex.anomalies.push(Anomaly::BodyGap),
        Some(DecodeStop::Skipped) | None => {}
    }
    if truncated {
        ex.anomalies.push(Anomaly::JsonTruncated);
    }
    match direction {
        Direction::Request => ex.request_fields = extracted.request,
        Direction::Response => ex.response_fields = extracted.response,
    }
}

/// Media types are case-insensitive (RFC 9110 §8.3.1); these compare in place rather than
/// lowercasing a copy for every message.
fn is_event_stream(content_type: &str) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    content_type
        .as_bytes()
        .get(..SSE.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(SSE))
}

/// One JSON value per line: Ollama sends `application/x-ndjson`; the other names are aliases
/// of the same format.
fn is_ndjson(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
    ]
    .iter()
    .any(|t| media_type.eq_ignore_ascii_case(t))
}

/// `json` anywhere in the media type (`application/json`, `application/vnd.api+json`, …).
fn mentions_json(content_type: &str) -> bool {
    content_type
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_pick_the_consumer() {
        assert!(is_event_stream("Text/Event-Stream; charset=utf-8"));
        assert!(!is_event_stream("text/event"));
        assert!(is_ndjson("application/x-ndjson ; charset=utf-8"));
        assert!(!is_ndjson("application/json"));
        assert!(mentions_json("application/vnd.api+JSON"));
        assert!(!mentions_json("text/html"));
    }
}
