//! Incremental decoder of the chunked transfer coding (RFC 9112 §7.1), extensions and trailers
//! included, for input split anywhere. Nothing but counters is buffered.

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("invalid chunk size line")]
    SizeLine,
    #[error("chunk data not followed by CRLF")]
    DataEnd,
    #[error("chunk extension or trailer section longer than the configured limit")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the size; `digits` read so far.
    Size {
        digits: u8,
    },
    /// Whitespace or `;extension` after the size, until the line end.
    SizeRest,
    SizeLf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final blank line).
    TrailerStart,
    TrailerLine,
    /// CR seen at the start of a trailer line: the final blank line.
    FinalLf,
    Done,
    Failed(ChunkedError),
}

/// Progress of one [`ChunkedDecoder::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes consumed (the body may end before the input does).
    pub consumed: usize,
    /// The terminating chunk and trailers were read.
    pub done: bool,
    /// The body broke framing at input offset `consumed`.
    pub error: Option<ChunkedError>,
}

/// The decoder state of one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    /// Bytes of the current size-line remainder or trailer section, against `max_line_bytes`.
    meta_bytes: usize,
    max_meta_bytes: usize,
    /// Non-empty chunks started.
    pub chunks: u32,
}

impl ChunkedDecoder {
    /// `max_meta_bytes` caps a chunk-extension list and the whole trailer section.
    pub fn new(max_meta_bytes: usize) -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            meta_bytes: 0,
            max_meta_bytes,
            chunks: 0,
        }
    }

    /// Bytes still missing from the current chunk's data, if inside one.
    pub fn data_remaining(&self) -> Option<u64> {
        match self.state {
            State::Data { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// Skips `n` data bytes that were lost (must be ≤ [`Self::data_remaining`]).
    pub fn skip_data(&mut self, n: u64) {
        if let State::Data { remaining } = self.state {
            let left = remaining.saturating_sub(n);
            self.state = if left == 0 {
                State::DataCr
            } else {
                State::Data { remaining: left }
            };
        }
    }

    /// At the start of a chunk-size line (none of it read).
    pub fn at_size_line(&self) -> bool {
        self.state == State::Size { digits: 0 }
    }

    /// The CRLF after a chunk's data went by unseen: the decoder moves to the next size line.
    /// Only right after the data ([`Self::skip_data`] reached its end); false elsewhere,
    /// nothing changed.
    pub fn skip_data_end(&mut self) -> bool {
        if self.state != State::DataCr {
            return false;
        }
        self.next_size();
        true
    }

    /// `n` whole chunks went by unseen, each its size line, data and the CRLF after it:
    /// counted, and the decoder again at a size line. Only there ([`Self::at_size_line`]);
    /// false elsewhere, nothing changed.
    pub fn skip_chunks(&mut self, n: u32) -> bool {
        if !self.at_size_line() {
            return false;
        }
        self.chunks += n;
        true
    }

    fn meta(&mut self) -> Result<(), ChunkedError> {
        self.meta_bytes += 1;
        if self.meta_bytes > self.max_meta_bytes {
            Err(ChunkedError::TooLong)
        } else {
            Ok(())
        }
    }

    fn size_line_done(&mut self) {
        self.meta_bytes = 0;
        if self.size == 0 {
            self.state = State::TrailerStart;
        } else {
            self.chunks += 1;
            self.state = State::Data {
                remaining: self.size,
            };
        }
    }

    /// Decodes `input`, handing chunk data to `on_data`. After an error the decoder stays
    /// failed; `consumed` then counts the bytes read before the offending one.
    pub fn feed(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Fed {
        let mut i = 0;
        let error = match self.state {
            State::Failed(e) => Some(e),
            _ => self.run(input, &mut on_data, &mut i).err(),
        };
        if let Some(e) = error {
            self.state = State::Failed(e);
        }
        Fed {
            consumed: i,
            done: self.state == State::Done,
            error,
        }
    }

    fn run(
        &mut self,
        input: &[u8],
        on_data: &mut dyn FnMut(&[u8]),
        i: &mut usize,
    ) -> Result<(), ChunkedError> {
        while *i < input.len() {
            let b = input[*i];
            match self.state {
                State::Done | State::Failed(_) => break,
                State::Data { remaining } => {
                    let n =
                        (input.len() - *i).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    on_data(&input[*i..*i + n]);
                    *i += n;
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    continue;
                }
                State::Size { digits } => match (b as char).to_digit(16) {
                    Some(d) => {
                        if digits >= 16 {
                            return Err(ChunkedError::SizeLine);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                    }
                    None if digits == 0 => return Err(ChunkedError::SizeLine),
                    None => match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => self.size_line_done(),
                        b';' | b' ' | b'\t' => {
                            self.meta()?;
                            self.state = State::SizeRest;
                        }
                        _ => return Err(ChunkedError::SizeLine),
                    },
                },
                State::SizeRest => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => self.size_line_done(),
                    _ => self.meta()?,
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::SizeLine);
                    }
                    self.size_line_done();
                }
                State::DataCr => match b {
                    b'\r' => self.state = State::DataLf,
                    // A bare LF is tolerated, like most servers do.
                    b'\n' => self.next_size(),
                    _ => return Err(ChunkedError::DataEnd),
                },
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::DataEnd);
                    }
                    self.next_size();
                }
                State::TrailerStart => match b {
                    b'\r' => self.state = State::FinalLf,
                    b'\n' => {
                        self.state = State::Done;
                        *i += 1;
                        break;
                    }
                    _ => {
                        self.meta()?;
                        self.state = State::TrailerLine;
                    }
                },
                State::TrailerLine => {
                    self.meta()?;
                    if b == b'\n' {
                        self.state = State::TrailerStart;
                    }
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::SizeLine);
                    }
                    self.state = State::Done;
                    *i += 1;
                    break;
                }
            }
            *i += 1;
        }
        Ok(())
    }

    fn next_size(&mut self) {
        self.size = 0;
        self.state = State::Size { digits: 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(wire: &[u8], split: usize) -> Result<(Vec<u8>, usize, bool, u32), ChunkedError> {
        let mut d = ChunkedDecoder::new(64);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut done = false;
        for part in wire.chunks(split.max(1)) {
            let fed = d.feed(part, |b| out.extend_from_slice(b));
            if let Some(e) = fed.error {
                return Err(e);
            }
            consumed += fed.consumed;
            done = fed.done;
            if done {
                break;
            }
        }
        Ok((out, consumed, done, d.chunks))
    }

    #[test]
    fn extensions_and_trailers() {
        let wire =
            b"5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT";
        for split in 1..wire.len() {
            let (out, consumed, done, chunks) = decode(wire, split).unwrap();
            assert_eq!(out, b"hello world");
            assert_eq!(consumed, wire.len() - 4);
            assert!(done);
            assert_eq!(chunks, 2);
        }
    }

    #[test]
    fn bare_lf_and_errors() {
        assert_eq!(decode(b"3\nabc\n0\n\n", 100).unwrap().0, b"abc");
        assert_eq!(decode(b"x\r\n", 100), Err(ChunkedError::SizeLine));
        assert_eq!(decode(b"3\r\nabcd", 100), Err(ChunkedError::DataEnd));
        assert_eq!(
            decode(b"11111111111111111\r\n", 100),
            Err(ChunkedError::SizeLine)
        );
        let long_ext = [b"1;".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(decode(&long_ext, 100), Err(ChunkedError::TooLong));
    }
}
