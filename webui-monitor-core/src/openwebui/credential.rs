//! Which credential a request carries and which one Open WebUI 0.12.4 acts on.
//!
//! Open WebUI looks, in order, at `Authorization: Bearer <non-empty>` (scheme case-insensitive,
//! FastAPI's `HTTPBearer`), then the `token` cookie (present, even empty), then an
//! `Authorization` of another scheme split on `' '` into exactly two parts (its ASGI
//! middleware), then the API-key header. A value starting with `sk-` is an API key; anything
//! else is decoded as a JWT. This module only classifies; [`super::jwt`] verifies and
//! [`super::apikey`] resolves.
use crate::http::exchange::RequestHeaders;

use super::jwt;

/// Where the effective credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// The `token` cookie.
    Cookie,
    /// `Authorization: <scheme> <value>` of another scheme (or an empty Bearer), exactly two
    /// space-separated parts.
    AuthorizationOther,
    /// The API-key header (`x-api-key` by default).
    ApiKeyHeader,
}

impl CredentialSource {
    /// The `credential_source` value of the fixtures' expected files.
    #[cfg(test)]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Bearer | Self::AuthorizationOther => "authorization",
            Self::Cookie => "cookie",
            Self::ApiKeyHeader => "x-api-key",
        }
    }
}

/// What the effective credential looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialType {
    /// Three dot-separated base64url parts whose first decodes to a JSON object.
    Jwt,
    /// Starts with `sk-`.
    ApiKey,
    /// Anything else (`undefined`, empty, garbage): Open WebUI still decodes it as a JWT.
    Other,
}

impl CredentialType {
    /// The `credential_type` value of the fixtures' expected files.
    #[cfg(test)]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::ApiKey => "api_key",
            Self::Other => "other",
        }
    }

    /// Classify a credential value.
    pub fn of(value: &[u8]) -> Self {
        if value.starts_with(b"sk-") {
            Self::ApiKey
        } else if jwt::is_jwt_shaped(value) {
            Self::Jwt
        } else {
            Self::Other
        }
    }
}

/// The credential Open WebUI acts on, borrowed from the request headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    pub source: CredentialSource,
    pub kind: CredentialType,
    value: &'a [u8],
}

impl<'a> Credential<'a> {
    /// The raw value, for verification and fingerprinting only.
    pub fn expose(&self) -> &'a [u8] {
        self.value
    }
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("kind", &self.kind)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// What the `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthorizationCarrier {
    #[default]
    Absent,
    BearerJwt,
    BearerApiKey,
    BearerOther,
    /// Another scheme, or `Bearer` with an empty value.
    Other,
}

/// What the `token` cookie holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CookieCarrier {
    #[default]
    Absent,
    Jwt,
    Other,
}

/// Every credential a request carries (not only the effective one): the fixtures'
/// `auth_carrier`, e.g. `bearer_jwt+cookie_jwt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AuthCarrier {
    pub authorization: AuthorizationCarrier,
    pub cookie: CookieCarrier,
    pub api_key_header: bool,
}

/// `LABELS[authorization][cookie][api_key_header]`: every combination as a static string, as
/// the fixtures' expected files name the carriers.
#[cfg(test)]
const LABELS: [[[&str; 2]; 3]; 5] = [
    [
        ["none", "x_api_key"],
        ["cookie_jwt", "cookie_jwt+x_api_key"],
        ["cookie_other", "cookie_other+x_api_key"],
    ],
    [
        ["bearer_jwt", "bearer_jwt+x_api_key"],
        ["bearer_jwt+cookie_jwt", "bearer_jwt+cookie_jwt+x_api_key"],
        [
            "bearer_jwt+cookie_other",
            "bearer_jwt+cookie_other+x_api_key",
        ],
    ],
    [
        ["bearer_apikey", "bearer_apikey+x_api_key"],
        [
            "bearer_apikey+cookie_jwt",
            "bearer_apikey+cookie_jwt+x_api_key",
        ],
        [
            "bearer_apikey+cookie_other",
            "bearer_apikey+cookie_other+x_api_key",
        ],
    ],
    [
        ["bearer_other", "bearer_other+x_api_key"],
        [
            "bearer_other+cookie_jwt",
            "bearer_other+cookie_jwt+x_api_key",
        ],
        [
            "bearer_other+cookie_other",
            "bearer_other+cookie_other+x_api_key",
        ],
    ],
    [
        ["authorization_other", "authorization_other+x_api_key"],
        [
            "authorization_other+cookie_jwt",
            "authorization_other+cookie_jwt+x_api_key",
        ],
        [
            "authorization_other+cookie_other",
            "authorization_other+cookie_other+x_api_key",
        ],
    ],
];

impl AuthCarrier {
    /// The `auth_carrier` value of the fixtures' expected files.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &'static str {
        let a = match self.authorization {
            AuthorizationCarrier::Absent => 0,
            AuthorizationCarrier::BearerJwt => 1,
            AuthorizationCarrier::BearerApiKey => 2,
            AuthorizationCarrier::BearerOther => 3,
            AuthorizationCarrier::Other => 4,
        };
        let c = match self.cookie {
            CookieCarrier::Absent => 0,
            CookieCarrier::Jwt => 1,
            CookieCarrier::Other => 2,
        };
        LABELS[a][c][usize::from(self.api_key_header)]
    }

    /// A cookie travels next to an `Authorization` header: what browsers do, and what a script
    /// copying the browser's requests does too.
    pub fn cookie_with_authorization(&self) -> bool {
        self.authorization != AuthorizationCarrier::Absent && self.cookie != CookieCarrier::Absent
    }
}

/// The credentials of one request.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub carrier: AuthCarrier,
    /// `None`: the request carries nothing Open WebUI would act on (user `anonymous`).
    pub effective: Option<Credential<'a>>,
}

/// `Authorization` split as FastAPI's `get_authorization_scheme_param` does: scheme before the
/// first space, the rest as parameter.
fn bearer_param(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = (&value[..space], &value[space + 1..]);
    (scheme.eq_ignore_ascii_case(b"bearer") && !rest.is_empty()).then_some(rest)
}

/// Python's `value.split(" ")` into exactly two parts: the second one.
fn two_part_param(value: &[u8]) -> Option<&[u8]> {
    let mut parts = value.split(|&b| b == b' ');
    let (_scheme, param) = (parts.next()?, parts.next()?);
    parts.next().is_none().then_some(param)
}

/// Classify every credential of `headers` and pick the effective one in Open WebUI's order.
pub fn extract(headers: &RequestHeaders) -> Credentials<'_> {
    let authorization = headers.authorization().map(|s| s.expose());
    let cookie = headers.cookie_token().map(|s| s.expose());
    let api_key = headers
        .api_key_header()
        .map(|s| s.expose())
        .filter(|v| !v.is_empty());

    let bearer = authorization.and_then(bearer_param);
    let bearer_kind = bearer.map(CredentialType::of);
    let carrier = AuthCarrier {
        authorization: match (authorization, bearer_kind) {
            (None, _) => AuthorizationCarrier::Absent,
            (Some(_), Some(CredentialType::Jwt)) => AuthorizationCarrier::BearerJwt,
            (Some(_), Some(CredentialType::ApiKey)) => AuthorizationCarrier::BearerApiKey,
            (Some(_), Some(CredentialType::Other)) => AuthorizationCarrier::BearerOther,
            (Some(_), None) => AuthorizationCarrier::Other,
        },
        cookie: match cookie {
            None => CookieCarrier::Absent,
            Some(v) if jwt::is_jwt_shaped(v) => CookieCarrier::Jwt,
            Some(_) => CookieCarrier::Other,
        },
        api_key_header: api_key.is_some(),
    };

    let effective = if let (Some(value), Some(kind)) = (bearer, bearer_kind) {
        Some(Credential {
            source: CredentialSource::Bearer,
            kind,
            value,
        })
    } else if let Some(value) = cookie {
        Some(Credential {
            source: CredentialSource::Cookie,
            kind: CredentialType::of(value),
            value,
        })
    } else if let Some(value) = authorization.and_then(two_part_param) {
        Some(Credential {
            source: CredentialSource::AuthorizationOther,
            kind: CredentialType::of(value),
            value,
        })
    } else {
        api_key.map(|value| Credential {
            source: CredentialSource::ApiKeyHeader,
            kind: CredentialType::of(value),
            value,
        })
    };
    Credentials { carrier, effective }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::exchange::RequestField;

    // A JWT-shaped value: header {"alg":"HS256","typ":"JWT"}, payload {}, any signature.
    const JWT: &[u8] = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln";
    const KEY: &[u8] = b"sk-b2f36db1e8f4423697d7fa73f0ac0987";

    fn headers(
        auth: Option<&[u8]>,
        cookie: Option<&[u8]>,
        x_api_key: Option<&[u8]>,
    ) -> RequestHeaders {
        let mut h = RequestHeaders::default();
        let fields = [
            (RequestField::Authorization, auth),
            (RequestField::CookieToken, cookie),
            (RequestField::ApiKeyHeader, x_api_key),
        ];
        for (field, value) in fields {
            if let Some(v) = value {
                h.set(field, v);
            }
        }
        h
    }

    type Summary = (&'static str, Option<(&'static str, &'static str, Vec<u8>)>);

    fn summary(h: &RequestHeaders) -> Summary {
        let c = extract(h);
        (
            c.carrier.as_str(),
            c.effective
                .map(|e| (e.source.as_str(), e.kind.as_str(), e.expose().to_vec())),
        )
    }

    #[test]
    fn bearer_jwt_wins_over_cookie() {
        let bearer = [b"Bearer ".as_slice(), JWT].concat();
        let h = headers(Some(&bearer), Some(b"other"), None);
        assert_eq!(
            summary(&h),
            (
                "bearer_jwt+cookie_other",
                Some(("authorization", "jwt", JWT.to_vec()))
            )
        );
        let c = extract(&h);
        assert!(c.carrier.cookie_with_authorization());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let bearer = [b"bEaReR ".as_slice(), KEY].concat();
        assert_eq!(
            summary(&headers(Some(&bearer), None, None)),
            (
                "bearer_apikey",
                Some(("authorization", "api_key", KEY.to_vec()))
            )
        );
    }

    #[test]
    fn bearer_undefined_is_other() {
        assert_eq!(
            summary(&headers(Some(b"Bearer undefined"), None, None)),
            (
                "bearer_other",
                Some(("authorization", "other", b"undefined".to_vec()))
            )
        );
    }

    #[test]
    fn cookie_only() {
        assert_eq!(
            summary(&headers(None, Some(JWT), None)),
            ("cookie_jwt", Some(("cookie", "jwt", JWT.to_vec())))
        );
        // Present but empty still counts (Starlette's cookie dict has the key).
        assert_eq!(
            summary(&headers(None, Some(b""), None)),
            ("cookie_other", Some(("cookie", "other", Vec::new())))
        );
    }

    #[test]
    fn empty_bearer_falls_back_to_cookie_then_two_part_split() {
        assert_eq!(
            summary(&headers(Some(b"Bearer "), Some(JWT), None)),
            (
                "authorization_other+cookie_jwt",
                Some(("cookie", "jwt", JWT.to_vec()))
            )
        );
        assert_eq!(
            summary(&headers(Some(b"Bearer "), None, None)),
            (
                "authorization_other",
                Some(("authorization", "other", Vec::new()))
            )
        );
    }

    #[test]
    fn other_scheme_needs_exactly_two_parts() {
        let basic = [b"Basic ".as_slice(), KEY].concat();
        assert_eq!(
            summary(&headers(Some(&basic), None, None)),
            (
                "authorization_other",
                Some(("authorization", "api_key", KEY.to_vec()))
            )
        );
        assert_eq!(
            summary(&headers(Some(b"Basic a b"), None, Some(KEY))),
            (
                "authorization_other+x_api_key",
                Some(("x-api-key", "api_key", KEY.to_vec()))
            )
        );
        assert_eq!(
            summary(&headers(Some(b"Token"), None, None)),
            ("authorization_other", None)
        );
    }

    #[test]
    fn api_key_header_last() {
        assert_eq!(
            summary(&headers(None, Some(JWT), Some(KEY))),
            (
                "cookie_jwt+x_api_key",
                Some(("cookie", "jwt", JWT.to_vec()))
            )
        );
        assert_eq!(
            summary(&headers(None, None, Some(KEY))),
            ("x_api_key", Some(("x-api-key", "api_key", KEY.to_vec())))
        );
        assert_eq!(summary(&headers(None, None, Some(b""))), ("none", None));
    }

    #[test]
    fn nothing() {
        assert_eq!(summary(&RequestHeaders::default()), ("none", None));
    }

    #[test]
    fn debug_is_redacted() {
        let h = headers(None, None, Some(KEY));
        let dbg = format!("{:?}", extract(&h));
        assert!(!dbg.contains("sk-"), "{dbg}");
    }
}
