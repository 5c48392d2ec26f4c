//! Base64url (RFC 4648 §5) decoding without padding into caller-provided buffers, as PyJWT
//! decodes JWT segments: no allocation, strict alphabet.

/// Why a segment could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B64Error {
    /// A byte outside `A-Z a-z 0-9 - _`, or a length of 4n+1 (never a valid encoding).
    Invalid,
    /// The decoded form does not fit the buffer.
    TooLong,
}

/// Decoded length of `len` base64url characters (without padding).
pub const fn decoded_len(len: usize) -> usize {
    len / 4 * 3
        + match len % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        }
}

fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decode `input` into `out`, returning the decoded prefix of `out`.
///
/// Like Python's `urlsafe_b64decode` after PyJWT re-pads the input, trailing bits of the last
/// quantum are ignored. Unlike it (non-validating mode), stray characters are rejected: a
/// token with them is reported malformed rather than silently repaired.
pub fn decode<'o>(input: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], B64Error> {
    if input.len() % 4 == 1 {
        return Err(B64Error::Invalid);
    }
    let n = decoded_len(input.len());
    if n > out.len() {
        return Err(B64Error::TooLong);
    }
    let mut w = 0;
    for quantum in input.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in quantum.iter().enumerate() {
            acc |= sextet(c).ok_or(B64Error::Invalid)? << (18 - 6 * i);
        }
        let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        let take = quantum.len() - 1;
        out[w..w + take].copy_from_slice(&bytes[..take]);
        w += take;
    }
    Ok(&out[..w])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rfc4648_vectors_unpadded() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"", b""),
            (b"Zg", b"f"),
            (b"Zm8", b"fo"),
            (b"Zm9v", b"foo"),
            (b"Zm9vYg", b"foob"),
            (b"Zm9vYmE", b"fooba"),
            (b"Zm9vYmFy", b"foobar"),
        ];
        let mut buf = [0u8; 16];
        for (enc, dec) in cases {
            assert_eq!(decode(enc, &mut buf).unwrap(), dec);
        }
    }

    #[test]
    fn url_safe_alphabet() {
        let mut buf = [0u8; 4];
        assert_eq!(decode(b"-_8", &mut buf).unwrap(), &[0xfb, 0xff]);
        assert_eq!(decode(b"+/8", &mut buf), Err(B64Error::Invalid));
    }

    #[test]
    fn rejects_bad_length_padding_and_overflow() {
        let mut buf = [0u8; 8];
        assert_eq!(decode(b"Zm9vY", &mut buf), Err(B64Error::Invalid));
        assert_eq!(decode(b"Zg==", &mut buf), Err(B64Error::Invalid));
        assert_eq!(decode(b"Zm9v", &mut buf[..2]), Err(B64Error::TooLong));
    }
}
