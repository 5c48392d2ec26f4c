//! HS256 JWTs as Open WebUI 0.12.4 checks them (PyJWT `jwt.decode(token, secret,
//! algorithms=["HS256"])`), judged at the traffic's own time.
//!
//! Decoding reuses one scratch buffer owned by the [`JwtVerifier`] and borrows every claim from
//! it (`serde_json` raw values); the time-independent outcome is cached per distinct token
//! (bounded), so a token already seen costs one hash lookup and no allocation, and only its
//! time claims are judged again, at each request's own time. The secret lives in a
//! [`JwtSecret`] whose `Debug` is redacted; the shell reads it from the environment or a file,
//! never from the command line (which `ps` shows).
use std::{borrow::Cow, fmt};

use super::fast_map::FastMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;

use super::b64;
use crate::segment::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// Bytes reserved at start for the last token checked: Open WebUI's session tokens are about
/// 350 bytes, so the buffer never grows for them.
const LAST_TOKEN_CAPACITY: usize = 512;

/// Open WebUI's `WEBUI_SECRET_KEY`: the raw bytes are the HMAC key. The shell reads it (from
/// the environment or a file) and hands the bytes over.
#[derive(Clone)]
pub struct JwtSecret(Box<[u8]>);

impl JwtSecret {
    pub fn new(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// The outcome of checking a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Signature valid, claims valid at the traffic time.
    Verified,
    /// Well-formed, but no secret is configured to check it.
    Unverified,
    /// `alg` other than HS256, or HMAC mismatch.
    BadSignature,
    /// `exp <= now`.
    Expired,
    /// `iat > now` or `nbf > now`.
    NotYetValid,
    /// Not decodable, claims of the wrong type, or a claim PyJWT rejects without options (`aud`).
    Malformed,
}

/// A short string claim held inline (no allocation). Longer values are dropped (`None`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> InlineStr<N> {
    fn new(s: &str) -> Option<Self> {
        let mut buf = [0u8; N];
        buf.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
        Some(Self { buf, len: s.len() })
    }
    pub fn as_str(&self) -> &str {
        // Copied from a `str` whole, so always valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Longest `id` claim kept (Open WebUI ids are 36-character UUIDs).
pub const MAX_ID_LEN: usize = 128;

/// The claims the monitor uses. None of them is secret (the signature is); `jti` and
/// `session_stamp` are deliberately not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    /// The user id: Open WebUI's `id` claim. `None` if absent, not a string or too long.
    pub id: Option<InlineStr<MAX_ID_LEN>>,
    /// The `id` claim exists but was longer than [`MAX_ID_LEN`] or not a string.
    pub id_unusable: bool,
    pub typ: Option<InlineStr<32>>,
    pub auth_method: Option<InlineStr<32>>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
}

/// Verdict and claims of one token. `claims` is set once the payload parsed, whatever the
/// verdict: it is what the token *claims*, trusted only when the verdict is `Verified`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub verdict: Verdict,
    pub claims: Option<Claims>,
}

/// Caps of JWT decoding.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtLimits {
    /// Longest token decoded (bytes); longer ones are `malformed` and counted. Default 8 KiB,
    /// far above Open WebUI's ~350-byte session tokens.
    pub max_token_bytes: usize,
    /// Distinct tokens whose decoding and signature check are remembered (default 4,096; 0
    /// disables the cache). When full, the cache is emptied and the flush counted.
    pub cache_entries: usize,
}

impl Default for JwtLimits {
    fn default() -> Self {
        Self {
            max_token_bytes: 8 * 1024,
            cache_entries: 4096,
        }
    }
}

/// What JWT decoding cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtCounters {
    /// Tokens longer than `max_token_bytes`.
    pub oversized_tokens: u64,
    /// `id` claims not kept (too long or not a string), per distinct token.
    pub unusable_ids: u64,
    /// Times the verification cache was full and emptied.
    pub cache_flushes: u64,
}

/// Checks tokens against an optional secret; owns the scratch buffer decoding borrows from.
pub struct JwtVerifier {
    /// HMAC keyed once with the secret; cloned per token (no allocation).
    mac: Option<HmacSha256>,
    limits: JwtLimits,
    scratch: Vec<u8>,
    /// Token → time-independent result. Keyed by the whole token: an exact match is the only
    /// safe reuse of a signature check.
    cache: FastMap<Box<[u8]>, Stage>,
    /// The token checked last and its result (`None`: no token yet): a client sends the same
    /// token request after request, and comparing it costs less than hashing it for the cache
    /// (it is cached too). The buffer is sized for a session token at start.
    last_token: Vec<u8>,
    last_stage: Option<Stage>,
    pub counters: JwtCounters,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("secret", &self.mac.as_ref().map(|_| "<redacted>"))
            .field("limits", &self.limits)
            .field("counters", &self.counters)
            .finish()
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<&'a RawValue>,
}

/// A claim as it appears, `null` included (`Option<&RawValue>` would turn `null` into
/// "absent", but PyJWT treats `"exp": null` as present and not an integer).
#[derive(Default, Clone, Copy)]
struct Claim<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Claim<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|r| Claim(Some(r)))
    }
}

#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(default, borrow)]
    id: Claim<'a>,
    #[serde(default, borrow)]
    typ: Claim<'a>,
    #[serde(default, borrow)]
    auth_method: Claim<'a>,
    #[serde(default, borrow)]
    exp: Claim<'a>,
    #[serde(default, borrow)]
    iat: Claim<'a>,
    #[serde(default, borrow)]
    nbf: Claim<'a>,
    #[serde(default, borrow)]
    aud: Claim<'a>,
    #[serde(default, borrow)]
    sub: Claim<'a>,
    #[serde(default, borrow)]
    jti: Claim<'a>,
}

/// A JSON object (serde would also accept an array for a struct).
fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Python truthiness of a JSON value (PyJWT accepts a falsy `aud` when none is expected).
fn is_falsy(raw: &RawValue) -> bool {
    matches!(
        raw.get().trim(),
        "null" | "false" | "0" | "\"\"" | "[]" | "{}"
    )
}

/// A JSON string claim, borrowed when it has no escapes (serde's `Cow` impl always copies).
fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .ok()
            .map(Cow::Owned),
    }
}

/// PyJWT's `int(payload[claim])`: integers, floats (truncated) and decimal strings pass.
fn raw_int(raw: &RawValue) -> Option<i64> {
    let text = raw.get();
    if let Ok(i) = text.parse::<i64>() {
        return Some(i);
    }
    if let Ok(f) = text.parse::<f64>() {
        return f.is_finite().then_some(f.trunc() as i64);
    }
    raw_str(raw)?.trim().parse::<i64>().ok()
}

/// Split `a.b.c` as PyJWT does (`rsplit('.', 1)` then `split('.', 1)`): exactly three parts,
/// the signing input being everything before the last dot.
/// The segments of a compact JWS.
struct Parts<'a> {
    /// `header.payload`, what the signature covers.
    signing_input: &'a [u8],
    header: &'a [u8],
    payload: &'a [u8],
    signature: &'a [u8],
}

fn split_token(token: &[u8]) -> Option<Parts<'_>> {
    let last = memchr::memrchr(b'.', token)?;
    let (signing_input, sig) = (&token[..last], &token[last + 1..]);
    let first = memchr::memchr(b'.', signing_input)?;
    let (header, payload) = (&signing_input[..first], &signing_input[first + 1..]);
    // A third dot in the payload makes PyJWT's base64 decode fail.
    Some(Parts {
        signing_input,
        header,
        payload,
        signature: sig,
    })
}

/// `{"alg":"HS256","typ":"JWT"}` in base64url: the header of every token Open WebUI issues.
const OPEN_WEBUI_HEADER: &[u8] = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Does `value` look like a JWT (three base64url parts, the first a JSON object)? Allocates
/// nothing: the header is decoded into a stack buffer (headers are tiny; a huge one is simply
/// not JWT-shaped). Open WebUI's own header is recognised without decoding it: this runs for
/// every credential of every request.
pub fn is_jwt_shaped(value: &[u8]) -> bool {
    let Some(Parts { header, .. }) = split_token(value) else {
        return false;
    };
    if header == OPEN_WEBUI_HEADER {
        return true;
    }
    let mut buf = [0u8; 512];
    match b64::decode(header, &mut buf) {
        Ok(h) => is_json_object(h) && serde_json::from_slice::<serde::de::IgnoredAny>(h).is_ok(),
        Err(_) => false,
    }
}

impl JwtVerifier {
    pub fn new(secret: Option<&JwtSecret>, limits: JwtLimits) -> Self {
        let mac = secret.and_then(|s| HmacSha256::new_from_slice(&s.0).ok());
        let scratch = vec![0; b64::decoded_len(limits.max_token_bytes)];
        Self {
            mac,
            limits,
            scratch,
            cache: FastMap::default(),
            last_token: Vec::with_capacity(LAST_TOKEN_CAPACITY),
            last_stage: None,
            counters: JwtCounters::default(),
        }
    }

    /// Check `token` as PyJWT would at `now` (the request's capture time).
    ///
    /// The time-independent part (decoding, signature) is cached per distinct token, so the
    /// browser's repeated session token costs one hash lookup; the claims are still judged
    /// against each request's own time.
    pub fn check(&mut self, token: &[u8], now: Timestamp) -> Checked {
        if token.len() > self.limits.max_token_bytes {
            self.counters.oversized_tokens += 1;
            return Checked {
                verdict: Verdict::Malformed,
                claims: None,
            };
        }
        if let Some(stage) = &self.last_stage
            && *self.last_token == *token
        {
            return stage.judge(now);
        }
        let stage = match self.cache.get(token) {
            Some(stage) => *stage,
            None => {
                let stage = self.decode(token);
                if self.cache.len() >= self.limits.cache_entries {
                    // Bounded: start over rather than track recency (a flood of distinct
                    // tokens is itself the anomaly, counted here).
                    self.cache.clear();
                    self.counters.cache_flushes += 1;
                }
                if self.limits.cache_entries > 0 {
                    self.cache.insert(token.into(), stage);
                }
                stage
            }
        };
        if self.limits.cache_entries > 0 {
            self.last_token.clear();
            self.last_token.extend_from_slice(token);
            self.last_stage = Some(stage);
        }
        stage.judge(now)
    }

    /// Everything about `token` that does not depend on time.
    fn decode(&mut self, token: &[u8]) -> Stage {
        let malformed = Stage::Final(Verdict::Malformed);
        let Some(Parts {
            signing_input,
            header: header_b64,
            payload: payload_b64,
            signature: sig_b64,
        }) = split_token(token)
        else {
            return malformed;
        };
        // One scratch buffer, carved into header | payload | signature.
        let (header_buf, rest) = self
            .scratch
            .split_at_mut(b64::decoded_len(header_b64.len()));
        let (payload_buf, sig_buf) = rest.split_at_mut(b64::decoded_len(payload_b64.len()));
        let (Ok(header), Ok(payload), Ok(sig)) = (
            b64::decode(header_b64, header_buf),
            b64::decode(payload_b64, payload_buf),
            b64::decode(sig_b64, sig_buf),
        ) else {
            return malformed;
        };
        if !is_json_object(header) {
            return malformed;
        }
        let Ok(header) = serde_json::from_slice::<Header<'_>>(header) else {
            return malformed;
        };

        let signed = match &self.mac {
            None => false,
            Some(mac) => {
                let alg_ok = header.alg.and_then(raw_str).is_some_and(|a| a == "HS256");
                let mut mac = mac.clone();
                mac.update(signing_input);
                // `verify_slice` compares in constant time.
                if !(alg_ok && mac.verify_slice(sig).is_ok()) {
                    return Stage::Final(Verdict::BadSignature);
                }
                true
            }
        };

        if !is_json_object(payload) {
            return malformed;
        }
        let Ok(raw) = serde_json::from_slice::<RawClaims<'_>>(payload) else {
            return malformed;
        };
        let id = raw.id.0.and_then(raw_str);
        let id_inline = id.as_deref().and_then(InlineStr::new);
        let id_unusable = raw.id.0.is_some() && id_inline.is_none();
        if id_unusable {
            self.counters.unusable_ids += 1;
        }
        let int_claim = |raw: Option<&RawValue>| match raw {
            None => Ok(None),
            Some(r) => raw_int(r).map(Some).ok_or(()),
        };
        let (iat, nbf, exp) = (
            int_claim(raw.iat.0),
            int_claim(raw.nbf.0),
            int_claim(raw.exp.0),
        );
        let ints_ok = iat.is_ok() && nbf.is_ok() && exp.is_ok();
        let claims = Claims {
            id: id_inline,
            id_unusable,
            typ: raw
                .typ
                .0
                .and_then(raw_str)
                .as_deref()
                .and_then(InlineStr::new),
            auth_method: raw
                .auth_method
                .0
                .and_then(raw_str)
                .as_deref()
                .and_then(InlineStr::new),
            exp: exp.unwrap_or(None),
            iat: iat.unwrap_or(None),
            nbf: nbf.unwrap_or(None),
        };
        Stage::Decoded {
            claims,
            signed,
            ints_ok,
            aud_truthy: raw.aud.0.is_some_and(|a| !is_falsy(a)),
            // PyJWT ≥ 2.10 requires `sub` and `jti`, when present, to be strings.
            sub_jti_ok: [raw.sub.0, raw.jti.0]
                .iter()
                .all(|c| c.is_none_or(|r| r.get().starts_with('"'))),
        }
    }
}

/// The time-independent result of decoding a token (what the cache holds).
// Inline claims (~250 bytes) keep a cache hit free of pointer chasing and allocation; the
// cache is bounded, so the size difference costs at most `cache_entries` × that.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// `malformed` or `bad_signature`, whatever the time.
    Final(Verdict),
    Decoded {
        claims: Claims,
        /// Signature checked and valid (false: no secret configured).
        signed: bool,
        /// `exp`, `iat`, `nbf` are integers where present.
        ints_ok: bool,
        /// A truthy `aud` claim, which PyJWT rejects when no audience is expected.
        aud_truthy: bool,
        /// `sub` and `jti` are strings where present.
        sub_jti_ok: bool,
    },
}

impl Stage {
    /// PyJWT's claim checks at `now`, in its order: iat, nbf, exp, aud, sub, jti.
    fn judge(self, now: Timestamp) -> Checked {
        let (claims, signed, ints_ok, claims_ok) = match self {
            Stage::Final(verdict) => {
                return Checked {
                    verdict,
                    claims: None,
                };
            }
            Stage::Decoded {
                claims,
                signed,
                ints_ok,
                aud_truthy,
                sub_jti_ok,
            } => (claims, signed, ints_ok, !aud_truthy && sub_jti_ok),
        };
        // PyJWT compares integer claims with a float `now`; for integers, comparing with the
        // whole seconds is the same.
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let verdict = if !ints_ok {
            Verdict::Malformed
        } else if !signed {
            Verdict::Unverified
        } else if claims.iat.is_some_and(|t| t > now) || claims.nbf.is_some_and(|t| t > now) {
            Verdict::NotYetValid
        } else if claims.exp.is_some_and(|t| t <= now) {
            Verdict::Expired
        } else if !claims_ok {
            Verdict::Malformed
        } else {
            Verdict::Verified
        };
        Checked {
            verdict,
            claims: Some(claims),
        }
    }
}

/// Test helper: sign `header` and `payload` JSON with `key` (HS256), as Open WebUI does.
#[cfg(test)]
pub(crate) fn sign(header: &str, payload: &str, key: &[u8]) -> String {
    fn enc(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
    let input = format!("{}.{}", enc(header.as_bytes()), enc(payload.as_bytes()));
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", enc(&mac.finalize().into_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SECRET: &[u8] = b"owui-test-secret-key-0123456789abcdef";
    pub(crate) const ALICE: &str = "700c1556-9d86-452a-880f-edbc8a74ead8";
    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
    /// 2026-11-27, inside the fixtures' capture window.
    pub(crate) const NOW: u64 = 1_795_766_827;

    pub(crate) fn session_token(id: &str, iat: u64, key: &[u8]) -> String {
        let payload = format!(
            r#"{{"id":"{id}","typ":"session","auth_method":"password","auth_time":{iat},"session_stamp":"s","mfa_verified":false,"exp":{},"jti":"j","iat":{iat}}}"#,
            iat + 2_419_200
        );
        sign(HS256, &payload, key)
    }

    fn verifier(secret: Option<&[u8]>) -> JwtVerifier {
        JwtVerifier::new(secret.map(JwtSecret::new).as_ref(), JwtLimits::default())
    }

    fn verdict(v: &mut JwtVerifier, token: &str) -> Verdict {
        v.check(token.as_bytes(), Timestamp::from_secs(NOW)).verdict
    }

    /// Alice's session JWT from `script_jwt.pcap` (exchange 1), minted by Open WebUI 0.12.4.
    pub(crate) const FIXTURE_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjcwMGMxNTU2LTlkODYtNDUyYS04ODBmLWVkYmM4YTc0ZWFkOCIsInR5cCI6InNlc3Npb24iLCJhdXRoX21ldGhvZCI6InBhc3N3b3JkIiwiYXV0aF90aW1lIjoxNzk1NzY2ODI3LCJzZXNzaW9uX3N0YW1wIjoiODhmMmIyOTMtZDZhMy00Zjg0LTk0YmItYWQyMmU5MmMyN2MwIiwibWZhX3ZlcmlmaWVkIjpmYWxzZSwiZXhwIjoxNzk4MTg2MDI3LCJqdGkiOiIzZDJkMTQ2Yi03OGRlLTQxYzYtYjNlZC01NTAzOGI1NWQyMmIiLCJpYXQiOjE3OTU3NjY4Mjd9.qs52nIFrcrxH7rZv1eEyGvUj45DyB23achqSjN-L44I";

    #[test]
    fn real_fixture_token_verifies() {
        let mut v = verifier(Some(SECRET));
        let checked = v.check(FIXTURE_TOKEN.as_bytes(), Timestamp::from_secs(NOW));
        assert_eq!(checked.verdict, Verdict::Verified);
        assert_eq!(checked.claims.unwrap().id.unwrap().as_str(), ALICE);
        assert_eq!(checked.claims.unwrap().exp, Some(1_798_186_027));
        // The same token after its expiry, and with one signature character changed.
        assert_eq!(
            v.check(
                FIXTURE_TOKEN.as_bytes(),
                Timestamp::from_secs(1_798_186_027)
            )
            .verdict,
            Verdict::Expired
        );
        // (Not the last character: its low bits are padding PyJWT ignores too.)
        let mut tampered = FIXTURE_TOKEN.as_bytes().to_vec();
        let i = tampered.len() - 10;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(verdict(&mut v, &tampered), Verdict::BadSignature);
    }

    #[test]
    fn mutations_and_truncations_never_verify_and_never_panic() {
        let mut v = verifier(Some(SECRET));
        let now = Timestamp::from_secs(NOW);
        let token = FIXTURE_TOKEN.as_bytes();
        for i in 0..token.len() {
            // The last character of a segment also carries padding bits, which PyJWT ignores.
            let last_of_segment = i + 1 == token.len() || token[i + 1] == b'.';
            for b in [
                b'A', b'z', b'0', b'.', b'-', b'_', b'=', b' ', b'"', 0x00, 0xff,
            ] {
                if token[i] == b {
                    continue;
                }
                let mut t = token.to_vec();
                t[i] = b;
                let verdict = v.check(&t, now).verdict;
                assert!(
                    last_of_segment || verdict != Verdict::Verified,
                    "byte {i} -> {b:#x}"
                );
            }
        }
        for n in 0..token.len() {
            assert_ne!(
                v.check(&token[..n], now).verdict,
                Verdict::Verified,
                "prefix {n}"
            );
        }
        // Garbage of every length up to the cap and beyond (xorshift, deterministic).
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for len in (0..9000).step_by(7) {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"eyJ.abc-_xyz09{}\\"[(x % 17) as usize]
                })
                .collect();
            assert_ne!(v.check(&garbage, now).verdict, Verdict::Verified);
            let _ = is_jwt_shaped(&garbage);
        }
    }

    #[test]
    fn cache_keeps_judging_time_and_stays_bounded() {
        let limits = JwtLimits {
            cache_entries: 2,
            ..Default::default()
        };
        let mut v = JwtVerifier::new(Some(&JwtSecret::new(SECRET)), limits);
        let token = FIXTURE_TOKEN.as_bytes();
        // Same token, cached after the first check, judged at each request's time.
        assert_eq!(
            v.check(token, Timestamp::from_secs(NOW)).verdict,
            Verdict::Verified
        );
        assert_eq!(
            v.check(token, Timestamp::from_secs(1_798_186_027)).verdict,
            Verdict::Expired
        );
        assert_eq!(
            v.check(token, Timestamp::from_secs(1_795_766_826)).verdict,
            Verdict::NotYetValid
        );
        let forged = session_token(ALICE, NOW, b"x");
        for _ in 0..2 {
            assert_eq!(verdict(&mut v, &forged), Verdict::BadSignature);
        }
        assert_eq!(v.counters.cache_flushes, 0);
        assert_eq!(verdict(&mut v, "undefined"), Verdict::Malformed);
        assert_eq!(v.counters.cache_flushes, 1);
        // Without a cache, the same answers.
        let mut uncached = JwtVerifier::new(
            Some(&JwtSecret::new(SECRET)),
            JwtLimits {
                cache_entries: 0,
                ..Default::default()
            },
        );
        assert_eq!(
            uncached.check(token, Timestamp::from_secs(NOW)).verdict,
            Verdict::Verified
        );
        assert_eq!(verdict(&mut uncached, &forged), Verdict::BadSignature);
    }

    #[test]
    fn verified_token_yields_claims() {
        let mut v = verifier(Some(SECRET));
        let token = session_token(ALICE, NOW - 10, SECRET);
        let checked = v.check(token.as_bytes(), Timestamp::from_secs(NOW));
        assert_eq!(checked.verdict, Verdict::Verified);
        let claims = checked.claims.unwrap();
        assert_eq!(claims.id.unwrap().as_str(), ALICE);
        assert_eq!(claims.typ.unwrap().as_str(), "session");
        assert_eq!(claims.auth_method.unwrap().as_str(), "password");
        assert_eq!(claims.iat, Some(NOW as i64 - 10));
        assert_eq!(claims.exp, Some(NOW as i64 - 10 + 2_419_200));
        assert!(is_jwt_shaped(token.as_bytes()));
    }

    #[test]
    fn wrong_key_and_forged_signature() {
        let mut v = verifier(Some(SECRET));
        let wrong_key = session_token(ALICE, NOW, b"another-secret");
        assert_eq!(verdict(&mut v, &wrong_key), Verdict::BadSignature);
        // Forged: Alice's valid header+payload with the signature of another token.
        let good = session_token(ALICE, NOW, SECRET);
        let other = session_token("93966668-8c59-43ba-b3b7-c151e6d780a4", NOW, SECRET);
        let forged = format!(
            "{}.{}",
            &good[..good.rfind('.').unwrap()],
            &other[other.rfind('.').unwrap() + 1..]
        );
        assert_eq!(verdict(&mut v, &forged), Verdict::BadSignature);
        // Payload swapped under a valid signature.
        let mut parts: Vec<&str> = good.split('.').collect();
        let swapped_payload = other.split('.').nth(1).unwrap();
        parts[1] = swapped_payload;
        assert_eq!(verdict(&mut v, &parts.join(".")), Verdict::BadSignature);
    }

    #[test]
    fn alg_none_and_other_algs_are_bad_signature() {
        let mut v = verifier(Some(SECRET));
        let payload = format!(r#"{{"id":"{ALICE}","exp":{}}}"#, NOW + 100);
        let none = sign(r#"{"alg":"none"}"#, &payload, SECRET);
        assert_eq!(verdict(&mut v, &none), Verdict::BadSignature);
        let hs512 = sign(r#"{"alg":"HS512"}"#, &payload, SECRET);
        assert_eq!(verdict(&mut v, &hs512), Verdict::BadSignature);
    }

    #[test]
    fn expiry_is_judged_at_traffic_time() {
        let mut v = verifier(Some(SECRET));
        let token = session_token(ALICE, NOW - 2_419_200, SECRET); // exp == NOW
        assert_eq!(verdict(&mut v, &token), Verdict::Expired);
        let at = |secs| v_check_at(&token, secs);
        assert_eq!(at(NOW - 1), Verdict::Verified);
        assert_eq!(at(NOW), Verdict::Expired);
        fn v_check_at(token: &str, secs: u64) -> Verdict {
            verifier(Some(SECRET))
                .check(
                    token.as_bytes(),
                    Timestamp::from_nanos(secs * 1_000_000_000 + 999_999_999),
                )
                .verdict
        }
    }

    #[test]
    fn not_yet_valid() {
        let mut v = verifier(Some(SECRET));
        assert_eq!(
            verdict(&mut v, &session_token(ALICE, NOW + 1, SECRET)),
            Verdict::NotYetValid
        );
        assert_eq!(
            verdict(&mut v, &session_token(ALICE, NOW, SECRET)),
            Verdict::Verified
        );
        let nbf = sign(
            HS256,
            &format!(r#"{{"id":"{ALICE}","nbf":{}}}"#, NOW + 5),
            SECRET,
        );
        assert_eq!(verdict(&mut v, &nbf), Verdict::NotYetValid);
    }

    /// The fast path of `is_jwt_shaped` answers what decoding would: Open WebUI's header is a
    /// JSON object, with or without the shortcut.
    #[test]
    fn open_webui_header_shortcut_agrees_with_decoding() {
        let mut buf = [0u8; 64];
        let header = b64::decode(OPEN_WEBUI_HEADER, &mut buf).unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
        let token = [OPEN_WEBUI_HEADER, b".e30.AAAA"].concat();
        assert!(is_jwt_shaped(&token));
        // The shortcut needs the whole header: a longer or cut one takes the slow path.
        assert!(!is_jwt_shaped(
            &[&OPEN_WEBUI_HEADER[..20], b".e30.AAAA"].concat()
        ));
    }

    #[test]
    fn malformed_tokens() {
        let mut v = verifier(Some(SECRET));
        for bad in ["undefined", "", "a.b", "a.b.c", "null", "..."] {
            assert_eq!(verdict(&mut v, bad), Verdict::Malformed, "{bad:?}");
            assert!(!is_jwt_shaped(bad.as_bytes()), "{bad:?}");
        }
        // JWT-shaped (JSON header) but the signature segment is not base64url.
        assert!(is_jwt_shaped(b"e30.e30.!!!"));
        assert_eq!(verdict(&mut v, "e30.e30.!!!"), Verdict::Malformed);
        // Header an array, payload not an object, exp not an integer, aud present.
        assert_eq!(
            verdict(&mut v, &sign("[1]", "{}", SECRET)),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&mut v, &sign(HS256, "[1]", SECRET)),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&mut v, &sign(HS256, r#"{"exp":"soon"}"#, SECRET)),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&mut v, &sign(HS256, r#"{"exp":null}"#, SECRET)),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&mut v, &sign(HS256, r#"{"aud":"x"}"#, SECRET)),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&mut v, &sign(HS256, r#"{"aud":""}"#, SECRET)),
            Verdict::Verified
        );
        assert_eq!(
            verdict(&mut v, &sign(HS256, r#"{"jti":7}"#, SECRET)),
            Verdict::Malformed
        );
        assert_eq!(
            verdict(&mut v, &sign(HS256, r#"{"sub":"u","jti":"j"}"#, SECRET)),
            Verdict::Verified
        );
        // Decimal strings and floats pass PyJWT's int().
        let exp = NOW + 10;
        assert_eq!(
            verdict(
                &mut v,
                &sign(HS256, &format!(r#"{{"exp":"{exp}"}}"#), SECRET)
            ),
            Verdict::Verified
        );
        assert_eq!(
            verdict(
                &mut v,
                &sign(HS256, &format!(r#"{{"exp":{exp}.5}}"#), SECRET)
            ),
            Verdict::Verified
        );
        // Oversized.
        let mut small = JwtVerifier::new(
            Some(&JwtSecret::new(SECRET)),
            JwtLimits {
                max_token_bytes: 64,
                ..Default::default()
            },
        );
        assert_eq!(
            verdict(&mut small, &session_token(ALICE, NOW, SECRET)),
            Verdict::Malformed
        );
        assert_eq!(small.counters.oversized_tokens, 1);
    }

    #[test]
    fn without_secret_claims_are_unverified() {
        let mut v = verifier(None);
        let checked = v.check(
            session_token(ALICE, NOW, b"anything").as_bytes(),
            Timestamp::from_secs(NOW),
        );
        assert_eq!(checked.verdict, Verdict::Unverified);
        assert_eq!(checked.claims.unwrap().id.unwrap().as_str(), ALICE);
        assert_eq!(verdict(&mut v, "undefined"), Verdict::Malformed);
    }

    #[test]
    fn id_claim_edge_cases() {
        let mut v = verifier(Some(SECRET));
        let numeric = v.check(
            sign(HS256, r#"{"id":42}"#, SECRET).as_bytes(),
            Timestamp::from_secs(NOW),
        );
        assert_eq!(numeric.verdict, Verdict::Verified);
        assert!(numeric.claims.unwrap().id.is_none());
        assert!(numeric.claims.unwrap().id_unusable);
        let long = "x".repeat(MAX_ID_LEN + 1);
        let c = v.check(
            sign(HS256, &format!(r#"{{"id":"{long}"}}"#), SECRET).as_bytes(),
            Timestamp::from_secs(NOW),
        );
        assert!(c.claims.unwrap().id.is_none());
        assert_eq!(v.counters.unusable_ids, 2);
        let escaped = v.check(
            sign(HS256, r#"{"id":"a\u0062c"}"#, SECRET).as_bytes(),
            Timestamp::from_secs(NOW),
        );
        assert_eq!(escaped.claims.unwrap().id.unwrap().as_str(), "abc");
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = JwtSecret::new(SECRET);
        assert_eq!(format!("{s:?}"), "JwtSecret(<redacted>)");
        let v = JwtVerifier::new(Some(&s), JwtLimits::default());
        assert!(!format!("{v:?}").contains("owui"));
    }
}
