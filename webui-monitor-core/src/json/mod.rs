//! A push-style, single-pass JSON scanner that reports the values of chosen shallow fields
//! without ever holding the document.
//!
//! Bodies of chat requests carry base64 images and files of many megabytes, while the monitor only
//! needs a handful of top-level fields (`model`, `stream`, `usage`, …). The scanner walks the bytes
//! as they arrive (any split), keeps only a bounded container stack, the keys of the first
//! [`MAX_PATH`] object levels and the one string value the [`JsonVisitor`] asked for (capped), and
//! reports every value whose path is made of object keys only, up to [`MAX_PATH`] keys deep.
//! Everything else is validated and dropped.
//!
//! One file of about 860 lines: the scanner is one state machine over bytes, whose
//! states are read best side by side.
use serde::Deserialize;

/// Deepest key path reported to a [`JsonVisitor`]: `response.usage.input_tokens_details.cached_tokens`
/// (the Responses stream's `response.completed` event) is 4 deep.
pub const MAX_PATH: usize = 4;
/// Longest key kept for path matching; longer keys never match a wanted path.
const MAX_KEY: usize = 32;
/// Longest number literal parsed; longer ones are reported as not-a-number.
const MAX_NUMBER: usize = 40;

/// Caps of the JSON field scanner. Every cut is reported (`json_truncated` of the HTTP counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonLimits {
    /// Deepest nesting of arrays/objects accepted (default 64); deeper input stops the scan.
    pub max_depth: usize,
    /// Longest captured string value in bytes (default 256); longer values are cut.
    pub max_string_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_string_bytes: 256,
        }
    }
}

/// A value reported to a [`JsonVisitor`]. Containers are reported when they open; their content
/// is reported member by member if it is within [`MAX_PATH`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonValue<'a> {
    Null,
    Bool(bool),
    /// Numbers are parsed as `f64`; literals longer than 40 bytes give NaN.
    Number(f64),
    /// A string the visitor asked for; `truncated` when it hit `max_string_bytes`.
    String {
        value: &'a str,
        truncated: bool,
    },
    /// A string the visitor did not ask for (content skipped).
    SkippedString,
    Object,
    Array,
}

/// Receives the values found at shallow object paths. `path` lists the keys from the root
/// (empty for the root value itself).
pub trait JsonVisitor {
    /// Whether the string starting at `path` should be captured (only then is it copied).
    fn wants_string(&self, path: &[&[u8]]) -> bool;
    /// A value at `path`.
    fn value(&mut self, path: &[&[u8]], value: JsonValue<'_>);
}

/// Why a scan stopped before the end of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("unexpected byte in JSON")]
    Syntax,
    #[error("JSON nested deeper than the configured limit")]
    TooDeep,
    #[error("JSON ended before the document was complete")]
    Incomplete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value must come (root, after `:`, after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    Colon,
    /// After a value: `,`, a closing bracket, or (at the root) the end.
    AfterValue,
    /// Inside a string; `key` tells where it goes.
    Str {
        key: bool,
        capture: bool,
    },
    StrEscape {
        key: bool,
        capture: bool,
    },
    /// `\u` escape: `digits` read so far and their value.
    StrUnicode {
        key: bool,
        capture: bool,
        digits: u8,
        acc: u16,
    },
    Number,
    Literal {
        which: Literal,
        pos: u8,
    },
    Done,
    Failed(JsonError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    True,
    False,
    Null,
}

impl Literal {
    fn text(self) -> &'static [u8] {
        match self {
            Literal::True => b"true",
            Literal::False => b"false",
            Literal::Null => b"null",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Key {
    bytes: [u8; MAX_KEY],
    len: u8,
    overflow: bool,
}

impl Key {
    const EMPTY: Key = Key {
        bytes: [0; MAX_KEY],
        len: 0,
        overflow: false,
    };
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// The open containers, one bit each (`1` = object, `0` = array): the first 64 levels inline,
/// deeper ones (only with a `max_depth` above 64) in `deep`. A body's scanner then allocates
/// nothing for its nesting, and whether every open level is an object (a reportable path) is
/// one mask test.
#[derive(Debug, Clone, Default)]
struct Stack {
    len: usize,
    low: u64,
    deep: Vec<u64>,
}

impl Stack {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
        self.low = 0;
        self.deep.clear();
    }

    fn get(&self, i: usize) -> bool {
        if i < 64 {
            self.low >> i & 1 == 1
        } else {
            let i = i - 64;
            self.deep[i / 64] >> (i % 64) & 1 == 1
        }
    }

    fn last(&self) -> Option<bool> {
        self.len.checked_sub(1).map(|i| self.get(i))
    }

    fn push(&mut self, object: bool) {
        let i = self.len;
        if i < 64 {
            self.low = (self.low & !(1 << i)) | (u64::from(object) << i);
        } else {
            let (word, bit) = ((i - 64) / 64, (i - 64) % 64);
            if word == self.deep.len() {
                self.deep.push(0);
            }
            let w = &mut self.deep[word];
            *w = (*w & !(1 << bit)) | (u64::from(object) << bit);
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        self.len -= 1;
    }

    /// Whether the `n` outermost levels (`n` ≤ 64) are all objects.
    fn objects_below(&self, n: usize) -> bool {
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        self.low & mask == mask
    }
}

/// Bytes of a string that [`string_end`] looks at a word at a time before it calls `memchr`.
const SHORT_STRING: usize = 64;

const LOW_BITS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `x` (8 bytes, little-endian) that is `"`, `\\` or a control
/// byte, and no other bit. Exact per byte: no sum carries into the next byte, as each adds to
/// a value below 0x80.
fn special_bytes(x: u64) -> u64 {
    // High bit set in a byte whose low seven bits are not all zero.
    let nonzero = |y: u64| (y & LOW_BITS) + LOW_BITS;
    let quote = !(nonzero(x ^ (ONES * u64::from(b'"'))) | (x ^ (ONES * u64::from(b'"'))));
    let backslash = !(nonzero(x ^ (ONES * u64::from(b'\\'))) | (x ^ (ONES * u64::from(b'\\'))));
    // High bit set in a byte whose low seven bits are at least 0x20.
    let control = !(((x & LOW_BITS) + ONES * 0x60) | x);
    (quote | backslash | control) & HIGH_BITS
}

/// Length of the plain run at the start of `s`: up to the first `"`, `\\` or control byte
/// (which ends or breaks a string), else all of it. Keys and most values of small documents
/// are short, so the first [`SHORT_STRING`] bytes are looked at eight at a time in a word
/// ([`special_bytes`]); past them, string content is most of a body (base64 images, prompts),
/// so the two delimiters are found with `memchr` and the control bytes before them with a
/// loop the compiler vectorises (no early exit).
fn string_end(s: &[u8]) -> usize {
    let mut at = 0;
    while at < SHORT_STRING {
        let Some(word) = s.get(at..at + 8) else {
            let tail = &s[at..];
            return at
                + tail
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                    .unwrap_or(tail.len());
        };
        let found = special_bytes(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + long_string_end(&s[at..])
}

/// [`string_end`] of a run with no short plain prefix left to look at.
fn long_string_end(s: &[u8]) -> usize {
    let end = memchr::memchr2(b'"', b'\\', s).unwrap_or(s.len());
    let run = &s[..end];
    if run.iter().fold(false, |any, &c| any | (c < 0x20)) {
        run.iter().position(|&c| c < 0x20).unwrap_or(end)
    } else {
        end
    }
}

/// The value of a number literal as `f64`, or NaN if it is not one. Integers of up to 15
/// digits (token counts, timestamps) are exact in an `f64` and read without the float parser,
/// which gives the same value for them.
fn number_value(literal: &[u8]) -> f64 {
    let (negative, digits) = match literal {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, literal),
    };
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let n = digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')) as f64;
        return if negative { -n } else { n };
    }
    std::str::from_utf8(literal)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// The streaming scanner. Feed it with [`JsonScanner::feed`], end it with
/// [`JsonScanner::finish`].
#[derive(Clone)]
pub struct JsonScanner {
    limits: JsonLimits,
    state: State,
    /// One bit per open container.
    stack: Stack,
    keys: [Key; MAX_PATH],
    /// Captured string value (capped).
    scratch: Vec<u8>,
    /// The number literal being read: its first `MAX_NUMBER + 1` bytes (one more than any
    /// parsed literal, so a longer one is known to be too long).
    number: [u8; MAX_NUMBER + 1],
    number_len: u8,
    scratch_truncated: bool,
    /// A high surrogate waiting for its low half in a `\u` escape pair.
    high_surrogate: Option<u16>,
    truncated: bool,
    started: bool,
}

/// `scratch` as a length only: it holds string values of request and response bodies.
impl std::fmt::Debug for JsonScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonScanner")
            .field("limits", &self.limits)
            .field("state", &self.state)
            .field("depth", &self.stack.len())
            .field("scratch_bytes", &self.scratch.len())
            .field("truncated", &self.truncated)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl JsonScanner {
    pub fn new(limits: JsonLimits) -> Self {
        Self {
            limits,
            state: State::Value,
            stack: Stack::default(),
            keys: [Key::EMPTY; MAX_PATH],
            scratch: Vec::new(),
            number: [0; MAX_NUMBER + 1],
            number_len: 0,
            scratch_truncated: false,
            high_surrogate: None,
            truncated: false,
            started: false,
        }
    }

    /// Back to the start of a new document, keeping allocations.
    pub fn reset(&mut self) {
        self.state = State::Value;
        self.stack.clear();
        self.scratch.clear();
        self.scratch_truncated = false;
        self.high_surrogate = None;
        self.truncated = false;
        self.started = false;
    }

    /// A string value was cut at `max_string_bytes` or the nesting limit was hit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// End of input: `Ok` if exactly one complete JSON value was seen.
    pub fn finish<V: JsonVisitor + ?Sized>(&mut self, visitor: &mut V) -> Result<(), JsonError> {
        if self.state == State::Number {
            self.end_number(visitor);
        }
        match self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e),
            _ => {
                self.state = State::Failed(JsonError::Incomplete);
                Err(JsonError::Incomplete)
            }
        }
    }

    fn fail(&mut self, e: JsonError) {
        if e == JsonError::TooDeep {
            self.truncated = true;
        }
        self.state = State::Failed(e);
    }

    /// Depth of the value about to be reported, or `None` if it is not on a reportable path.
    fn path_len(&self) -> Option<usize> {
        let depth = self.stack.len();
        if depth > MAX_PATH {
            return None;
        }
        if !self.stack.objects_below(depth) || self.keys[..depth].iter().any(|k| k.overflow) {
            return None;
        }
        Some(depth)
    }

    fn emit<V: JsonVisitor + ?Sized>(&self, visitor: &mut V, value: JsonValue<'_>) {
        if let Some(n) = self.path_len() {
            let mut parts: [&[u8]; MAX_PATH] = [&[]; MAX_PATH];
            for (i, part) in parts.iter_mut().enumerate().take(n) {
                *part = self.keys[i].as_slice();
            }
            visitor.value(&parts[..n], value);
        }
    }

    fn wants<V: JsonVisitor + ?Sized>(&self, visitor: &V) -> bool {
        match self.path_len() {
            Some(n) => {
                let mut parts: [&[u8]; MAX_PATH] = [&[]; MAX_PATH];
                for (i, part) in parts.iter_mut().enumerate().take(n) {
                    *part = self.keys[i].as_slice();
                }
                visitor.wants_string(&parts[..n])
            }
            None => false,
        }
    }

    /// A value has ended: what may come next depends on the enclosing container.
    fn value_done(&mut self) {
        self.state = if self.stack.is_empty() {
            State::Done
        } else {
            State::AfterValue
        };
    }

    fn open<V: JsonVisitor + ?Sized>(&mut self, object: bool, visitor: &mut V) {
        self.emit(
            visitor,
            if object {
                JsonValue::Object
            } else {
                JsonValue::Array
            },
        );
        if self.stack.len() >= self.limits.max_depth {
            self.fail(JsonError::TooDeep);
            return;
        }
        self.stack.push(object);
        self.state = if object {
            State::KeyOrClose
        } else {
            State::ValueOrClose
        };
    }

    fn close(&mut self, object: bool) {
        match self.stack.last() {
            Some(top) if top == object => {
                self.stack.pop();
                self.value_done();
            }
            _ => self.fail(JsonError::Syntax),
        }
    }

    fn start_value<V: JsonVisitor + ?Sized>(&mut self, b: u8, visitor: &mut V) {
        match b {
            b'{' => self.open(true, visitor),
            b'[' => self.open(false, visitor),
            b'"' => {
                let capture = self.wants(visitor);
                self.scratch.clear();
                self.scratch_truncated = false;
                self.high_surrogate = None;
                self.state = State::Str {
                    key: false,
                    capture,
                };
            }
            b'-' | b'0'..=b'9' => {
                self.number[0] = b;
                self.number_len = 1;
                self.state = State::Number;
            }
            b't' => {
                self.state = State::Literal {
                    which: Literal::True,
                    pos: 1,
                }
            }
            b'f' => {
                self.state = State::Literal {
                    which: Literal::False,
                    pos: 1,
                }
            }
            b'n' => {
                self.state = State::Literal {
                    which: Literal::Null,
                    pos: 1,
                }
            }
            _ => self.fail(JsonError::Syntax),
        }
    }

    fn start_key(&mut self) {
        let depth = self.stack.len();
        if depth <= MAX_PATH {
            let k = &mut self.keys[depth - 1];
            k.len = 0;
            k.overflow = false;
        }
        self.high_surrogate = None;
        // A key under an array is on no reportable path (nor is anything below it): not kept.
        self.state = State::Str {
            key: true,
            capture: depth <= MAX_PATH && self.stack.objects_below(depth),
        };
    }

    fn push_str_byte(&mut self, key: bool, b: u8) {
        if key {
            let depth = self.stack.len();
            if depth == 0 || depth > MAX_PATH {
                return;
            }
            let k = &mut self.keys[depth - 1];
            if (k.len as usize) < MAX_KEY {
                k.bytes[k.len as usize] = b;
                k.len += 1;
            } else {
                k.overflow = true;
            }
        } else if self.scratch.len() < self.limits.max_string_bytes {
            self.scratch.push(b);
        } else {
            self.scratch_truncated = true;
        }
    }

    /// [`Self::push_str_byte`] for each of `bytes`, copied in one go.
    fn push_str_bytes(&mut self, key: bool, bytes: &[u8]) {
        if key {
            let depth = self.stack.len();
            if depth == 0 || depth > MAX_PATH {
                return;
            }
            let k = &mut self.keys[depth - 1];
            let len = k.len as usize;
            let n = bytes.len().min(MAX_KEY - len);
            k.bytes[len..len + n].copy_from_slice(&bytes[..n]);
            k.len += n as u8;
            if n < bytes.len() {
                k.overflow = true;
            }
        } else {
            let room = self
                .limits
                .max_string_bytes
                .saturating_sub(self.scratch.len());
            let n = bytes.len().min(room);
            self.scratch.extend_from_slice(&bytes[..n]);
            if n < bytes.len() {
                self.scratch_truncated = true;
            }
        }
    }

    fn push_char(&mut self, key: bool, c: char) {
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            self.push_str_byte(key, b);
        }
    }

    fn end_string<V: JsonVisitor + ?Sized>(&mut self, key: bool, capture: bool, visitor: &mut V) {
        if self.high_surrogate.take().is_some() && capture {
            self.push_char(key, char::REPLACEMENT_CHARACTER);
        }
        if key {
            self.state = State::Colon;
            return;
        }
        if capture {
            let scratch = std::mem::take(&mut self.scratch);
            self.emit_captured(&scratch, self.scratch_truncated, visitor);
            self.scratch = scratch;
        } else {
            self.emit(visitor, JsonValue::SkippedString);
        }
        self.value_done();
    }

    /// Reports the captured string value `content`, which holds at most `max_string_bytes`;
    /// `cut`: more of it followed.
    fn emit_captured<V: JsonVisitor + ?Sized>(
        &mut self,
        content: &[u8],
        cut: bool,
        visitor: &mut V,
    ) {
        // A cut may split a UTF-8 sequence: keep the valid prefix.
        let value = match std::str::from_utf8(content) {
            Ok(value) => value,
            Err(e) => std::str::from_utf8(&content[..e.valid_up_to()]).unwrap_or_default(),
        };
        let truncated = cut || value.len() < content.len();
        if truncated {
            self.truncated = true;
        }
        self.emit(visitor, JsonValue::String { value, truncated });
    }

    fn end_number<V: JsonVisitor + ?Sized>(&mut self, visitor: &mut V) {
        let literal = &self.number[..usize::from(self.number_len)];
        let n = if literal.len() > MAX_NUMBER {
            f64::NAN
        } else {
            number_value(literal)
        };
        if n.is_nan() && literal.len() <= MAX_NUMBER {
            // `-`, `1.`, `1e` and the like: not a JSON number.
            self.fail(JsonError::Syntax);
            return;
        }
        self.emit(visitor, JsonValue::Number(n));
        self.value_done();
    }

    /// Scans the next piece of the document.
    pub fn feed<V: JsonVisitor + ?Sized>(&mut self, data: &[u8], visitor: &mut V) {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match self.state {
                State::Failed(_) => return,
                State::Str { key, capture } => {
                    // Fast path: bodies are mostly long strings (base64).
                    let rest = &data[i..];
                    let stop = string_end(rest);
                    let whole_value = capture
                        && !key
                        && rest.get(stop) == Some(&b'"')
                        && self.scratch.is_empty()
                        && !self.scratch_truncated
                        && self.high_surrogate.is_none();
                    if whole_value {
                        // A captured value that lies whole in this input, without escapes: read
                        // where it lies rather than copied.
                        let max = self.limits.max_string_bytes;
                        self.emit_captured(&rest[..stop.min(max)], stop > max, visitor);
                        self.value_done();
                    } else if capture {
                        if self.high_surrogate.is_some() && stop > 0 {
                            self.high_surrogate = None;
                            self.push_char(key, char::REPLACEMENT_CHARACTER);
                        }
                        self.push_str_bytes(key, &rest[..stop]);
                    }
                    i += stop;
                    if stop == rest.len() {
                        return;
                    }
                    match rest[stop] {
                        b'"' => {
                            if !whole_value {
                                self.end_string(key, capture, visitor);
                            }
                            i += self.separator(rest.get(stop + 1));
                        }
                        b'\\' => self.state = State::StrEscape { key, capture },
                        _ => self.fail(JsonError::Syntax),
                    }
                    i += 1;
                    continue;
                }
                State::StrEscape { key, capture } => {
                    let c = match b {
                        b'"' => Some('"'),
                        b'\\' => Some('\\'),
                        b'/' => Some('/'),
                        b'b' => Some('\u{8}'),
                        b'f' => Some('\u{c}'),
                        b'n' => Some('\n'),
                        b'r' => Some('\r'),
                        b't' => Some('\t'),
                        b'u' => None,
                        _ => {
                            self.fail(JsonError::Syntax);
                            return;
                        }
                    };
                    match c {
                        Some(c) => {
                            if capture {
                                if self.high_surrogate.take().is_some() {
                                    self.push_char(key, char::REPLACEMENT_CHARACTER);
                                }
                                self.push_char(key, c);
                            }
                            self.state = State::Str { key, capture };
                        }
                        None => {
                            self.state = State::StrUnicode {
                                key,
                                capture,
                                digits: 0,
                                acc: 0,
                            }
                        }
                    }
                }
                State::StrUnicode {
                    key,
                    capture,
                    digits,
                    acc,
                } => {
                    let Some(d) = (b as char).to_digit(16) else {
                        self.fail(JsonError::Syntax);
                        return;
                    };
                    let acc = (acc << 4) | d as u16;
                    if digits < 3 {
                        self.state = State::StrUnicode {
                            key,
                            capture,
                            digits: digits + 1,
                            acc,
                        };
                    } else {
                        if capture {
                            self.unicode_escape(key, acc);
                        }
                        self.state = State::Str { key, capture };
                    }
                }
                State::Number => {
                    // The literal's bytes in one run.
                    let rest = &data[i..];
                    let run = rest
                        .iter()
                        .position(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                        .unwrap_or(rest.len());
                    let len = usize::from(self.number_len);
                    let take = run.min(self.number.len() - len);
                    self.number[len..len + take].copy_from_slice(&rest[..take]);
                    self.number_len += take as u8;
                    i += run;
                    if run == rest.len() {
                        return;
                    }
                    // The terminator: a separator taken here, else processed in the new state.
                    self.end_number(visitor);
                    i += self.separator(rest.get(run));
                    continue;
                }
                State::Literal { which, pos } => {
                    let text = which.text();
                    if text.get(pos as usize) != Some(&b) {
                        self.fail(JsonError::Syntax);
                        return;
                    }
                    if pos as usize + 1 == text.len() {
                        let v = match which {
                            Literal::True => JsonValue::Bool(true),
                            Literal::False => JsonValue::Bool(false),
                            Literal::Null => JsonValue::Null,
                        };
                        self.emit(visitor, v);
                        self.value_done();
                    } else {
                        self.state = State::Literal {
                            which,
                            pos: pos + 1,
                        };
                    }
                }
                _ if matches!(b, b' ' | b'\t' | b'\n' | b'\r') => {}
                State::Value => {
                    self.started = true;
                    self.start_value(b, visitor);
                }
                State::ValueOrClose => {
                    if b == b']' {
                        self.close(false);
                    } else {
                        self.start_value(b, visitor);
                    }
                }
                State::KeyOrClose => match b {
                    b'}' => self.close(true),
                    b'"' => self.start_key(),
                    _ => self.fail(JsonError::Syntax),
                },
                State::Key => match b {
                    b'"' => self.start_key(),
                    _ => self.fail(JsonError::Syntax),
                },
                State::Colon => match b {
                    b':' => self.state = State::Value,
                    _ => self.fail(JsonError::Syntax),
                },
                State::AfterValue => match (b, self.stack.last()) {
                    (b',', Some(true)) => self.state = State::Key,
                    (b',', Some(false)) => self.state = State::Value,
                    (b'}', _) => self.close(true),
                    (b']', _) => self.close(false),
                    _ => self.fail(JsonError::Syntax),
                },
                State::Done => self.fail(JsonError::Syntax),
            }
            i += 1;
        }
    }

    /// The usual byte after a key or a member's value, taken in the step that ended it: `:`
    /// after a key, `,` between members (1 byte used); anything else (0) goes through the
    /// states of [`Self::feed`].
    fn separator(&mut self, next: Option<&u8>) -> usize {
        match (next, self.state) {
            (Some(b':'), State::Colon) => {
                self.state = State::Value;
                1
            }
            (Some(b','), State::AfterValue) if self.stack.last() == Some(true) => {
                self.state = State::Key;
                1
            }
            _ => 0,
        }
    }

    fn unicode_escape(&mut self, key: bool, unit: u16) {
        match unit {
            0xD800..=0xDBFF => {
                if self.high_surrogate.replace(unit).is_some() {
                    self.push_char(key, char::REPLACEMENT_CHARACTER);
                }
            }
            0xDC00..=0xDFFF => {
                let c = match self.high_surrogate.take() {
                    Some(high) => {
                        let cp =
                            0x10000 + (((high as u32) - 0xD800) << 10) + ((unit as u32) - 0xDC00);
                        char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER)
                    }
                    None => char::REPLACEMENT_CHARACTER,
                };
                self.push_char(key, c);
            }
            _ => {
                if self.high_surrogate.take().is_some() {
                    self.push_char(key, char::REPLACEMENT_CHARACTER);
                }
                let c = char::from_u32(unit as u32).unwrap_or(char::REPLACEMENT_CHARACTER);
                self.push_char(key, c);
            }
        }
    }
}

#[cfg(test)]
mod tests;
