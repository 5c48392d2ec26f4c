//! Who sent a request, as Open WebUI would decide: the credential it acts on (`credential`),
//! verified (`jwt`) or resolved through the database snapshot (`apikey`).
use crate::{
    http::Exchange,
    openwebui::{
        apikey::{Directory, Fingerprint, KeyLookup, key_hash},
        credential::{self, CredentialSource, CredentialType},
        identity::{Special, UserRef},
        jwt::{InlineStr, JwtVerifier, MAX_ID_LEN, Verdict},
        labels::{Auth, AuthResult},
    },
    segment::Timestamp,
};

/// Who a request is from: an id borrowed from where it was found, or a [`Special`] value.
#[derive(Debug, Clone, Copy)]
pub(super) enum Who<'d> {
    /// An API key's owner, borrowed from the directory snapshot.
    Directory(&'d str),
    /// A JWT's `id` claim (verified, or unverified without a secret).
    Claimed(InlineStr<MAX_ID_LEN>),
    Special(Special),
}

impl<'d> Who<'d> {
    pub(super) fn as_ref(&self) -> UserRef<'_> {
        match self {
            Who::Directory(id) => UserRef::Id(id),
            Who::Claimed(id) => UserRef::Id(id.as_str()),
            Who::Special(s) => UserRef::Special(*s),
        }
    }
}

/// The identity of one request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Identity<'d> {
    pub(super) who: Who<'d>,
    pub(super) auth: Auth,
    pub(super) result: AuthResult,
    pub(super) api_key: Option<Fingerprint>,
}

/// Resolve a token (request credential or `user-join`) to a user, as Open WebUI would.
pub(super) fn resolve_token<'d>(
    verifier: &mut JwtVerifier,
    token: &[u8],
    now: Timestamp,
    rejected: bool,
) -> (Who<'d>, AuthResult) {
    let checked = verifier.check(token, now);
    match (checked.verdict, checked.claims.and_then(|c| c.id)) {
        (Verdict::Verified, Some(id)) => (Who::Claimed(id), AuthResult::Verified),
        // Verified but without a usable id: Open WebUI answers 401 ("invalid token").
        (Verdict::Verified, None) => (Who::Special(Special::Invalid), AuthResult::Verified),
        (Verdict::Unverified, _) if rejected => {
            (Who::Special(Special::Invalid), AuthResult::Rejected)
        }
        (Verdict::Unverified, Some(id)) => (Who::Claimed(id), AuthResult::Unverified),
        (Verdict::Unverified, None) => (Who::Special(Special::Invalid), AuthResult::Unverified),
        (v, _) => (Who::Special(Special::Invalid), AuthResult::from(v)),
    }
}

/// The credential Open WebUI acts on in `ex`, resolved: who, how, with which outcome.
pub(super) fn identify<'d>(
    verifier: &mut JwtVerifier,
    ex: &Exchange,
    dir: Option<&'d Directory>,
) -> (credential::AuthCarrier, Identity<'d>) {
    let creds = credential::extract(&ex.request_headers);
    let rejected = ex.status == Some(401);
    let identity = match creds.effective {
        None => Identity {
            who: Who::Special(Special::Anonymous),
            auth: Auth::None,
            result: AuthResult::Anonymous,
            api_key: None,
        },
        Some(c) if c.kind == CredentialType::ApiKey => {
            let hash = key_hash(c.expose());
            let (who, result) = match dir.map(|d| d.lookup_hash(&hash)) {
                Some(KeyLookup::Known(uid)) => (Who::Directory(uid), AuthResult::Verified),
                Some(KeyLookup::Unknown) => (
                    Who::Special(Special::UnknownApiKey),
                    AuthResult::UnknownApiKey,
                ),
                None if rejected => (Who::Special(Special::Invalid), AuthResult::Rejected),
                None => (
                    Who::Special(Special::UnresolvedApiKey),
                    AuthResult::Unverified,
                ),
            };
            Identity {
                who,
                auth: Auth::ApiKey,
                result,
                api_key: Some(Fingerprint::from_hash(&hash)),
            }
        }
        Some(c) => {
            let auth = if c.source == CredentialSource::Cookie {
                Auth::Cookie
            } else {
                Auth::Jwt
            };
            let (who, result) =
                resolve_token(verifier, c.expose(), ex.request.first_byte, rejected);
            Identity {
                who,
                auth,
                result,
                api_key: None,
            }
        }
    };
    (creds.carrier, identity)
}
