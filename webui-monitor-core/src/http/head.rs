//! HTTP/1.x message heads: start lines and header fields of a complete header block.
//!
//! The connection collects a header block (start line through the blank line) and hands it here
//! whole; heads are small and capped, bodies never pass through this module.
//!
//! The file is about 700 lines (tests aside): the start-line checks, the one pass over the
//! header fields and what each field means to framing and to the exchange share the field
//! names and their classification, so they stay side by side.
use std::borrow::Cow;

use crate::http::exchange::{RequestField, RequestHeaders, ResponseField, ResponseHeaders, lossy};

/// Why a header block was rejected. Each maps to a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("start line is not an HTTP/1.x request or status line")]
    StartLine,
    #[error("header line without a colon or with an invalid name")]
    HeaderLine,
    #[error("header block longer than the configured limit")]
    TooLarge,
    #[error("invalid or conflicting Content-Length")]
    ContentLength,
}

/// How the body of a message is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes its direction (responses only).
    Close,
}

/// Framing-relevant header fields common to requests and responses. (`Content-Type` and
/// `Content-Encoding`, which pick a body's decoder, are in the message's headers.)
#[derive(Debug, Clone, Copy, Default)]
pub struct FramingHeaders {
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` present; `chunked` when its last coding is `chunked`.
    pub transfer_encoding: bool,
    pub chunked: bool,
    pub connection_close: bool,
}

impl FramingHeaders {
    /// How the body of a request with these fields is delimited (RFC 9112 §6.3: a request
    /// without `Content-Length` or chunked coding has none).
    pub fn request_body_framing(&self) -> BodyFraming {
        if self.chunked {
            BodyFraming::Chunked
        } else {
            match self.content_length {
                Some(0) | None => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
            }
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub has_query: bool,
    /// `true` when the path was cut at the configured limit.
    pub path_truncated: bool,
    /// Header fields past `max_headers`, read for framing only.
    pub fields_cut: usize,
    pub framing: FramingHeaders,
    pub headers: RequestHeaders,
}

impl RequestHead {
    pub fn body_framing(&self) -> BodyFraming {
        self.framing.request_body_framing()
    }
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    /// Header fields past `max_headers`, read for framing only.
    pub fields_cut: usize,
    pub framing: FramingHeaders,
    pub headers: ResponseHeaders,
}

impl ResponseHead {
    /// Body framing of this response to a request with `method` (RFC 9112 §6.3).
    pub fn body_framing(&self, method: &str) -> BodyFraming {
        if method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return BodyFraming::None;
        }
        if self.framing.transfer_encoding {
            return if self.framing.chunked {
                BodyFraming::Chunked
            } else {
                BodyFraming::Close
            };
        }
        match self.framing.content_length {
            Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Close,
        }
    }
}

/// Caps applied while parsing a head (a view of `HttpLimits`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits<'a> {
    /// Header fields past this many are read for framing (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, `Content-Encoding`, `Content-Type`) only.
    pub max_headers: usize,
    pub max_path_bytes: usize,
    pub max_value_bytes: usize,
    pub api_key_header: &'a str,
}

/// `tchar` of RFC 9110 §5.6.2, indexed by byte: header names are checked byte by byte.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric()
            || matches!(
                b as u8,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

fn version_ok(v: &[u8]) -> bool {
    v == b"HTTP/1.1" || v == b"HTTP/1.0"
}

/// Whether `line` (without its line end) looks like a request line: `METHOD SP target SP
/// HTTP/1.x`. Used to resynchronise, so it is strict.
pub fn plausible_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    (1..=20).contains(&method.len())
        && method
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        && !target.is_empty()
        && target.iter().all(|&b| b > b' ' && b != 0x7f)
        && (target[0] == b'/'
            || target[0] == b'*'
            || target.starts_with(b"http")
            || (method == b"CONNECT" && target.contains(&b':')))
        && version_ok(version)
}

/// Whether `line` looks like a status line: `HTTP/1.x SP 3DIGIT [SP reason]`, the status from
/// 100 up (RFC 9110 §15: the first digit is the class, 1 to 5; 6 to 9 are let through).
pub fn plausible_status_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.len() >= 12
        && version_ok(&line[..8])
        && line[8] == b' '
        && line[9] != b'0'
        && line[9..12].iter().all(u8::is_ascii_digit)
        && (line.len() == 12 || line[12] == b' ')
}

/// Where a request line starts in `line` (without its line end), if anywhere: the line may
/// begin with the tail of a lost body. The method is the longest run of method characters before
/// the target, cut to a well-known method it ends with.
pub fn find_request_line(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"\r").unwrap_or(line);
    if l.len() < 14 || !version_ok(&l[l.len() - 8..]) || l[l.len() - 9] != b' ' {
        return None;
    }
    let before_version = &l[..l.len() - 9];
    let target_start = before_version.iter().rposition(|&b| b == b' ')? + 1;
    let method_end = target_start - 1;
    let method_start = before_version[..method_end]
        .iter()
        .rposition(|&b| !(b.is_ascii_uppercase() || b == b'-' || b == b'_'))
        .map_or(0, |p| p + 1);
    let run = &before_version[method_start..method_end];
    const KNOWN: [&[u8]; 9] = [
        b"OPTIONS", b"CONNECT", b"DELETE", b"PATCH", b"TRACE", b"POST", b"HEAD", b"GET", b"PUT",
    ];
    let start = KNOWN
        .iter()
        .find(|m| run.ends_with(m))
        .map_or(method_start, |m| method_end - m.len());
    plausible_request_line(&line[start..]).then_some(start)
}

/// Where a status line starts in `line`, if anywhere (see [`find_request_line`]).
pub fn find_status_line(line: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = line[from..].windows(7).position(|w| w == b"HTTP/1.") {
        let at = from + p;
        if plausible_status_line(&line[at..]) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Splits a header block into lines (without line ends), stopping at the blank line.
fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(block);
    std::iter::from_fn(move || {
        let r = rest?;
        Some(match memchr::memchr(b'\n', r) {
            Some(nl) => {
                rest = Some(&r[nl + 1..]);
                &r[..nl]
            }
            None => {
                rest = None;
                r
            }
        })
    })
    .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
    .take_while(|l| !l.is_empty())
}

/// A header field: name and trimmed value.
type Field<'a> = (&'a [u8], &'a [u8]);

/// Calls `f` with each header field of a block in order (the start line skipped, up to the
/// blank line) and its index among the fields; the first malformed line or error of `f` ends
/// the walk. One pass over the block, the lines found as [`lines`] finds them.
fn for_each_field<'a>(
    block: &'a [u8],
    mut f: impl FnMut(usize, &'a [u8], &'a [u8]) -> Result<(), HeadError>,
) -> Result<(), HeadError> {
    let mut rest = match memchr::memchr(b'\n', block) {
        Some(nl) => &block[nl + 1..],
        None => return Ok(()),
    };
    let mut i = 0;
    loop {
        let (line, last) = match memchr::memchr(b'\n', rest) {
            Some(nl) => (&rest[..nl], false),
            None => (rest, true),
        };
        if !last {
            rest = &rest[line.len() + 1..];
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None => return Ok(()),
            // Obsolete line folding: the continuation is ignored, as a recipient may do.
            Some(b' ' | b'\t') => {}
            Some(_) => {
                let (name, value) = header_field(line)?;
                f(i, name, value)?;
                i += 1;
            }
        }
        if last {
            return Ok(());
        }
    }
}

/// The header field names the parsers act on, told apart in one comparison or two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    ContentLength,
    TransferEncoding,
    Connection,
    ContentEncoding,
    ContentType,
    Authorization,
    Cookie,
    XForwardedFor,
    XRealIp,
    UserAgent,
    Origin,
    SecFetchSite,
    SecFetchMode,
    SecFetchDest,
    Upgrade,
    Host,
    SecWebsocketExtensions,
    Other,
}

impl Name {
    fn of(name: &[u8]) -> Self {
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            4 if is(b"host") => Self::Host,
            6 if is(b"cookie") => Self::Cookie,
            6 if is(b"origin") => Self::Origin,
            7 if is(b"upgrade") => Self::Upgrade,
            9 if is(b"x-real-ip") => Self::XRealIp,
            10 if is(b"connection") => Self::Connection,
            10 if is(b"user-agent") => Self::UserAgent,
            12 if is(b"content-type") => Self::ContentType,
            13 if is(b"authorization") => Self::Authorization,
            14 if is(b"content-length") => Self::ContentLength,
            14 if is(b"sec-fetch-site") => Self::SecFetchSite,
            14 if is(b"sec-fetch-mode") => Self::SecFetchMode,
            14 if is(b"sec-fetch-dest") => Self::SecFetchDest,
            15 if is(b"x-forwarded-for") => Self::XForwardedFor,
            16 if is(b"content-encoding") => Self::ContentEncoding,
            17 if is(b"transfer-encoding") => Self::TransferEncoding,
            24 if is(b"sec-websocket-extensions") => Self::SecWebsocketExtensions,
            _ => Self::Other,
        }
    }
}

fn header_field(line: &[u8]) -> Result<Field<'_>, HeadError> {
    let colon = memchr::memchr(b':', line).ok_or(HeadError::HeaderLine)?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| TCHAR[usize::from(b)]) {
        return Err(HeadError::HeaderLine);
    }
    Ok((name, trim(&line[colon + 1..])))
}

/// Whether a header field name is one that delimits the body.
pub fn is_framing_name(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding")
}

/// Applies one header line (without its line end) to `framing` if it is a framing field;
/// other lines, malformed ones included, are passed over. For heads that are not parsed whole
/// (over a cap, or refused), whose body must still be skipped.
pub fn framing_line(framing: &mut FramingHeaders, line: &[u8]) -> Result<(), HeadError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match header_field(line) {
        Ok((name, value)) if is_framing_name(name) => {
            framing_field(framing, name, value).map(|_| ())
        }
        _ => Ok(()),
    }
}

/// The body framing of a complete request block that [`parse_request`] refused, read as
/// leniently as [`framing_line`]; `None` when its length cannot be known.
pub fn refused_request_framing(block: &[u8]) -> Option<BodyFraming> {
    let mut framing = FramingHeaders::default();
    for line in lines(block).skip(1) {
        framing_line(&mut framing, line).ok()?;
    }
    Some(framing.request_body_framing())
}

/// The first `cap` bytes of a header value as UTF-8, invalid sequences replaced: borrowed from
/// the block unless some were.
fn text(v: &[u8], cap: usize) -> Cow<'_, [u8]> {
    lossy(&v[..v.len().min(cap)])
}

/// The first `cap` bytes of `v` as an owned string, invalid sequences replaced.
fn string(v: &[u8], cap: usize) -> String {
    match text(v, cap) {
        Cow::Borrowed(v) => String::from_utf8_lossy(v).into_owned(),
        Cow::Owned(v) => String::from_utf8(v).unwrap_or_default(),
    }
}

fn has_token(list: &[u8], token: &str) -> bool {
    list.split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// Applies one header to the framing fields.
fn framing_field(f: &mut FramingHeaders, name: &[u8], value: &[u8]) -> Result<bool, HeadError> {
    apply_framing(f, Name::of(name), value)
}

/// Applies one header of class `name` to the framing fields; `false` if it is none of them.
fn apply_framing(f: &mut FramingHeaders, name: Name, value: &[u8]) -> Result<bool, HeadError> {
    match name {
        Name::ContentLength => {
            let n = content_length(value)?;
            if f.content_length.is_some_and(|p| p != n) {
                return Err(HeadError::ContentLength);
            }
            f.content_length = Some(n);
        }
        Name::TransferEncoding => {
            f.transfer_encoding = true;
            let last = value.rsplit(|&b| b == b',').next().map(trim).unwrap_or(b"");
            f.chunked = last.eq_ignore_ascii_case(b"chunked");
        }
        Name::Connection => f.connection_close |= has_token(value, "close"),
        _ => return Ok(false),
    }
    Ok(true)
}

/// A `Content-Length` value. `Content-Length: 5, 5` is allowed when all values agree (RFC 9110
/// §8.6).
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    // Nearly always a plain number; 19 digits cannot overflow a u64.
    if (1..=19).contains(&value.len()) && value.iter().all(u8::is_ascii_digit) {
        return Ok(value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')));
    }
    let s = std::str::from_utf8(value).map_err(|_| HeadError::ContentLength)?;
    let mut n = None;
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HeadError::ContentLength);
        }
        let v: u64 = part.parse().map_err(|_| HeadError::ContentLength)?;
        if n.is_some_and(|p| p != v) {
            return Err(HeadError::ContentLength);
        }
        n = Some(v);
    }
    n.ok_or(HeadError::ContentLength)
}

/// Whitespace as Python's `str.strip()` sees it in a header value Starlette decoded as
/// Latin-1: ASCII whitespace, the separators `\x1c`–`\x1f`, NEL and NBSP.
fn is_python_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f | 0x85 | 0xa0)
}

fn python_strip(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| !is_python_space(b))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| !is_python_space(b))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// The value of the last cookie `name` in one `Cookie` header value, read as Starlette's
/// `cookie_parser` reads it: pairs split at `;`, then at the first `=` (a pair without one is a
/// value with an empty name), both sides stripped, the value unquoted as Python's
/// `http.cookies._unquote` does. Starlette keeps the last of equal names, within a header and
/// across the request's `Cookie` headers in order.
fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    // `header.rsplit(|&b| b == b';')`, with the separators found by `memrchr`: browsers send
    // long `Cookie` headers, and this runs on every request.
    let mut end = header.len();
    loop {
        let start = memchr::memrchr(b';', &header[..end]).map_or(0, |p| p + 1);
        let pair = &header[start..end];
        if let Some(eq) = memchr::memchr(b'=', pair)
            && python_strip(&pair[..eq]) == name
        {
            return Some(python_unquote(python_strip(&pair[eq + 1..])));
        }
        if start == 0 {
            return None;
        }
        end = start - 1;
    }
}

/// `http.cookies._unquote`: a value in double quotes loses them, and inside, `\ooo` (octal,
/// first digit 0–3) is that byte and `\c` is `c` (any byte but a line feed).
fn python_unquote(value: &[u8]) -> Cow<'_, [u8]> {
    let inner = match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => return Cow::Borrowed(value),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        match inner[i..] {
            [b'\\', a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] => {
                out.push((a - b'0') * 64 + (b - b'0') * 8 + (c - b'0'));
                i += 4;
            }
            [b'\\', c, ..] if c != b'\n' => {
                out.push(c);
                i += 2;
            }
            [c, ..] => {
                out.push(c);
                i += 1;
            }
            [] => break,
        }
    }
    Cow::Owned(out)
}

/// The path as the application sees it: uvicorn percent-decodes the raw path (the query is
/// already split off) as UTF-8 with replacement characters (`urllib.parse.unquote`), `%2F` to
/// `/` included, and Starlette routes on that; a `%` not followed by two hex digits stays.
fn decode_path(raw: &[u8]) -> Cow<'_, str> {
    percent_encoding::percent_decode(raw).decode_utf8_lossy()
}

/// Parses a complete request header block. (The engine parses what its framer reported, with
/// [`parse_framed_request`].)
#[cfg(any(test, fuzzing))]
pub fn parse_request(block: &[u8], limits: &HeadLimits<'_>) -> Result<RequestHead, HeadError> {
    let start = lines(block).next().ok_or(HeadError::StartLine)?;
    if !plausible_request_line(start) {
        return Err(HeadError::StartLine);
    }
    request_head(block, start, limits)
}

/// [`parse_request`] of a block that a framer reported: the framer let it through only with a
/// plausible start line ([`plausible_request_line`]), which is not checked again.
pub(crate) fn parse_framed_request(
    block: &[u8],
    limits: &HeadLimits<'_>,
) -> Result<RequestHead, HeadError> {
    let start = lines(block).next().unwrap_or_default();
    debug_assert!(
        plausible_request_line(start),
        "the framer checks start lines"
    );
    request_head(block, start, limits)
}

/// The request head of `block`, whose start line `start` is plausible.
fn request_head(
    block: &[u8],
    start: &[u8],
    limits: &HeadLimits<'_>,
) -> Result<RequestHead, HeadError> {
    let mut parts = start.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    // Absolute form (`http://host/path?q`): keep the path.
    let target = if target.starts_with(b"http://") || target.starts_with(b"https://") {
        let after_scheme = target
            .windows(3)
            .position(|w| w == b"://")
            .map_or(target, |p| &target[p + 3..]);
        match after_scheme.iter().position(|&b| b == b'/') {
            Some(p) => &after_scheme[p..],
            None => b"/",
        }
    } else {
        target
    };
    let q = target.iter().position(|&b| b == b'?');
    let path = decode_path(&target[..q.unwrap_or(target.len())]);
    let path_truncated = path.len() > limits.max_path_bytes;

    let mut framing = FramingHeaders::default();
    // The values, borrowed from the block until they are packed into one buffer.
    let mut values: [Option<Cow<'_, [u8]>>; RequestField::COUNT] = Default::default();
    let cap = limits.max_value_bytes;
    let mut fields_cut = 0;
    let api_key_header = limits.api_key_header.as_bytes();
    for_each_field(block, |i, name, value| {
        let class = Name::of(name);
        if apply_framing(&mut framing, class, value)? {
            return Ok(());
        }
        let slot = |field: RequestField| field as usize;
        match class {
            // Read wherever they are, as the framing fields: they pick the body's decoder.
            Name::ContentType => {
                values[slot(RequestField::ContentType)].get_or_insert_with(|| text(value, cap));
                return Ok(());
            }
            Name::ContentEncoding => {
                values[slot(RequestField::ContentEncoding)].get_or_insert_with(|| text(value, cap));
                return Ok(());
            }
            // Credentials are read wherever they are: which user a request is is not capped.
            // Starlette's `headers.get` takes the first of repeated fields.
            Name::Authorization => {
                values[slot(RequestField::Authorization)].get_or_insert(Cow::Borrowed(value));
                return Ok(());
            }
            Name::Cookie => {
                if let Some(token) = cookie_value(value, b"token") {
                    values[slot(RequestField::CookieToken)] = Some(token);
                }
                return Ok(());
            }
            _ if name.eq_ignore_ascii_case(api_key_header) => {
                values[slot(RequestField::ApiKeyHeader)].get_or_insert(Cow::Borrowed(value));
                return Ok(());
            }
            Name::XForwardedFor => {
                // Read past `max_headers` too: a padded header block must not hide the address.
                append_list(&mut values[slot(RequestField::ForwardedFor)], value, cap);
                return Ok(());
            }
            Name::XRealIp => {
                values[slot(RequestField::RealIp)].get_or_insert_with(|| text(value, cap));
                return Ok(());
            }
            _ => {}
        }
        if i >= limits.max_headers {
            fields_cut += 1;
            return Ok(());
        }
        let field = match class {
            Name::UserAgent => RequestField::UserAgent,
            Name::Origin => RequestField::Origin,
            Name::SecFetchSite => RequestField::SecFetchSite,
            Name::SecFetchMode => RequestField::SecFetchMode,
            Name::SecFetchDest => RequestField::SecFetchDest,
            Name::Upgrade => RequestField::Upgrade,
            Name::Host => RequestField::Host,
            _ => return Ok(()),
        };
        values[slot(field)].get_or_insert_with(|| text(value, cap));
        Ok(())
    })?;
    Ok(RequestHead {
        method: string(method, 20),
        // A decoded path within the cap is kept as decoded: one copy at most.
        path: if path_truncated {
            string(path.as_bytes(), limits.max_path_bytes)
        } else {
            path.into_owned()
        },
        has_query: q.is_some(),
        path_truncated,
        fields_cut,
        framing,
        headers: RequestHeaders::pack(values.each_ref().map(Option::as_deref)),
    })
}

/// Appends `value` to a comma-separated list, keeping its last `cap` bytes (cut at an entry).
fn append_list<'a>(list: &mut Option<Cow<'a, [u8]>>, value: &'a [u8], cap: usize) {
    let value = lossy(value);
    let all = match list.take() {
        Some(prev) if !prev.is_empty() => {
            let mut all = prev.into_owned();
            all.push(b',');
            all.extend_from_slice(&value);
            Cow::Owned(all)
        }
        _ => value,
    };
    if all.len() <= cap {
        *list = Some(all);
        return;
    }
    let cut = all.len() - cap;
    // Byte search: `cut` need not fall on a character boundary, a comma's successor does.
    let start = all[cut..]
        .iter()
        .position(|&b| b == b',')
        .map_or(all.len(), |i| cut + i + 1);
    *list = Some(match all {
        Cow::Borrowed(all) => Cow::Borrowed(&all[start..]),
        Cow::Owned(mut all) => {
            all.drain(..start);
            Cow::Owned(all)
        }
    });
}

/// Parses a complete response header block.
pub fn parse_response(block: &[u8], limits: &HeadLimits<'_>) -> Result<ResponseHead, HeadError> {
    let start = lines(block).next().ok_or(HeadError::StartLine)?;
    if !plausible_status_line(start) {
        return Err(HeadError::StartLine);
    }
    let status = start[9..12]
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    let mut framing = FramingHeaders::default();
    let mut values: [Option<Cow<'_, [u8]>>; ResponseField::COUNT] = Default::default();
    let cap = limits.max_value_bytes;
    let mut fields_cut = 0;
    for_each_field(block, |i, name, value| {
        let class = Name::of(name);
        if apply_framing(&mut framing, class, value)? {
            return Ok(());
        }
        let field = match class {
            // Read wherever they are, as the framing fields: they pick the body's decoder.
            Name::ContentType => ResponseField::ContentType,
            Name::ContentEncoding => ResponseField::ContentEncoding,
            _ if i >= limits.max_headers => {
                fields_cut += 1;
                return Ok(());
            }
            Name::SecWebsocketExtensions => ResponseField::WebsocketExtensions,
            Name::Upgrade => ResponseField::Upgrade,
            _ => return Ok(()),
        };
        values[field as usize].get_or_insert_with(|| text(value, cap));
        Ok(())
    })?;
    Ok(ResponseHead {
        status,
        fields_cut,
        framing,
        headers: ResponseHeaders::pack(values.each_ref().map(Option::as_deref)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretRef;

    const LIMITS: HeadLimits<'static> = HeadLimits {
        max_headers: 8,
        max_path_bytes: 16,
        max_value_bytes: 32,
        api_key_header: "x-api-key",
    };

    #[test]
    fn start_lines_are_found_after_a_body_tail() {
        assert_eq!(
            find_request_line(b"\"}]}POST /api/chat HTTP/1.1\r"),
            Some(4)
        );
        assert_eq!(find_request_line(b"QUJDREVGGET / HTTP/1.1"), Some(8));
        assert_eq!(find_request_line(b"GET / HTTP/1.1"), Some(0));
        assert_eq!(find_request_line(b"GET / HTTP/2.0"), None);
        assert_eq!(find_request_line(b"get / HTTP/1.1"), None);
        assert_eq!(find_status_line(b"0\r\n\r\nHTTP/1.1 200 OK\r"), Some(5));
        assert_eq!(find_status_line(b"HTTP/1.1 2000"), None);
        assert!(plausible_status_line(b"HTTP/1.0 204"));
        assert!(!plausible_status_line(b"HTTP/1.1 001 "));
    }

    #[test]
    fn paths_are_percent_decoded_as_uvicorn_does() {
        let path = |target: &str| {
            let block = format!("GET {target} HTTP/1.1\r\n\r\n");
            let h = parse_request(
                block.as_bytes(),
                &HeadLimits {
                    max_path_bytes: 64,
                    ..LIMITS
                },
            )
            .unwrap();
            (h.path, h.has_query)
        };
        let cases = [
            ("/api/chat/%63ompletions", "/api/chat/completions", false),
            (
                "/api%2Fchat%2fcompletions?a=%2F",
                "/api/chat/completions",
                true,
            ),
            ("/a%3Fb", "/a?b", false),
            ("/%E2%82%AC%zz%4", "/€%zz%4", false),
            ("/%FF", "/\u{FFFD}", false),
        ];
        for (target, decoded, query) in cases {
            assert_eq!(path(target), (decoded.to_owned(), query), "{target}");
        }
    }

    /// Each case: the `Cookie` header values of one request, and the `token` Starlette 1.10's
    /// `Request.cookies` gives (the expectations were printed by Open WebUI 0.12.4's Starlette).
    #[test]
    fn the_token_cookie_is_read_as_starlette_reads_it() {
        type Case<'a> = (&'a [&'a [u8]], Option<&'a [u8]>);
        let cases: [Case<'_>; 13] = [
            (&[b"token=a; token=b"], Some(b"b")),
            (&[b"token=a", b"x=1; token=b"], Some(b"b")),
            (&[b"token=a", b"x=1"], Some(b"a")),
            (&[br#"token="a\"b\101""#], Some(br#"a"bA"#)),
            (&[b"  token = a ; "], Some(b"a")),
            (&[b"xtoken=a; token"], None),
            (&[b"token="], Some(b"")),
            (&[b"Token=a"], None),
            (&[b"token=a=b"], Some(b"a=b")),
            (&[br#"token="abc"#], Some(br#""abc"#)),
            (&[b"token=\xa0a\xa0"], Some(b"a")),
            (&[br#"token="\q\\""#], Some(br"q\")),
            (&[b"token=a;token=;"], Some(b"")),
        ];
        for (headers, token) in cases {
            let mut block = b"GET / HTTP/1.1\r\n".to_vec();
            for value in headers {
                block.extend_from_slice(b"Cookie: ");
                block.extend_from_slice(value);
                block.extend_from_slice(b"\r\n");
            }
            block.extend_from_slice(b"\r\n");
            let h = parse_request(&block, &LIMITS).unwrap();
            assert_eq!(
                h.headers.cookie_token().map(SecretRef::expose),
                token,
                "{:?}",
                headers
                    .iter()
                    .map(|v| String::from_utf8_lossy(v))
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn credentials_past_the_field_cap_are_read() {
        let mut block = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..LIMITS.max_headers {
            block.extend_from_slice(format!("x-{i}: {i}\r\n").as_bytes());
        }
        block.extend_from_slice(
            b"Cookie: token=t\r\nAuthorization: Bearer b\r\nUser-Agent: u\r\n\r\n",
        );
        let h = parse_request(&block, &LIMITS).unwrap();
        assert_eq!(
            (
                h.headers.cookie_token().map(SecretRef::expose),
                h.headers.authorization().map(SecretRef::expose),
                h.headers.user_agent(),
                h.fields_cut,
            ),
            (Some(&b"t"[..]), Some(&b"Bearer b"[..]), None, 1)
        );
    }

    /// Proxies append the address they saw to the last `X-Forwarded-For`: repeated fields join
    /// in order, a long list keeps its last whole entries, padding cannot push it past the cap.
    #[test]
    fn forwarding_headers_keep_the_proxys_end() {
        let mut block = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..LIMITS.max_headers {
            block.extend_from_slice(format!("x-{i}: {i}\r\n").as_bytes());
        }
        block.extend_from_slice(
            b"X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\nX-Real-IP: 198.51.100.2\r\nx-forwarded-for: 192.0.2.44\r\n\r\n",
        );
        let h = parse_request(&block, &LIMITS).unwrap().headers;
        assert_eq!(
            (h.forwarded_for(), h.real_ip()),
            (
                Some("203.0.113.7, 10.0.0.1,192.0.2.44"),
                Some("198.51.100.2")
            )
        );
        let long = b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1, \xff\xff2.2.2.2, 3.3.3.3, 4.4.4.4, 5.5.5.5\r\n\r\n";
        let h = parse_request(long, &LIMITS).unwrap().headers;
        assert_eq!(h.forwarded_for(), Some(" 3.3.3.3, 4.4.4.4, 5.5.5.5"));
    }

    #[test]
    fn request_head_fields() {
        let h = parse_request(
            b"POST http://h:8080/a/very/long/path/indeed?x=1 HTTP/1.1\r\nContent-Length: 5, 5\r\nConnection: keep-alive, close\r\nCookie: x=1;token=\r\n\r\n",
            &LIMITS,
        )
        .unwrap();
        assert_eq!(
            (h.method.as_str(), h.path.as_str()),
            ("POST", "/a/very/long/pat")
        );
        assert!(h.path_truncated && h.has_query && h.framing.connection_close);
        assert_eq!(h.body_framing(), BodyFraming::Length(5));
        assert_eq!(
            h.headers.cookie_token().map(SecretRef::expose),
            Some(&b""[..])
        );
    }

    #[test]
    fn framing_rules() {
        let parse = |head: &[u8]| parse_response(head, &LIMITS);
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body_framing("GET"), BodyFraming::Chunked);
        assert_eq!(r.body_framing("HEAD"), BodyFraming::None);
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap();
        assert_eq!(r.body_framing("GET"), BodyFraming::Close);
        let r = parse(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(r.body_framing("GET"), BodyFraming::Close);
        assert_eq!(
            parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")
                .unwrap()
                .body_framing("GET"),
            BodyFraming::None
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .unwrap_err(),
            HeadError::ContentLength
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").unwrap_err(),
            HeadError::ContentLength
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n").unwrap_err(),
            HeadError::HeaderLine
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\n: x\r\n\r\n").unwrap_err(),
            HeadError::HeaderLine
        );
    }
}
