//! Credentials as they appear on the wire, kept unprintable.
//!
//! A leaf: every layer that carries a credential (HTTP headers, Socket.IO `auth`, the
//! configuration's JWT secret) uses it, and it uses nothing.
use std::fmt;

/// A credential value (Authorization, `token` cookie, API-key header) as it appeared on the wire.
/// `Debug` is redacted; there is no `Display`, `Serialize` or `Clone` into a `String`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(value: &[u8]) -> Self {
        Self(value.into())
    }
    /// The raw bytes, for verification and fingerprinting only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A credential borrowed from where it is kept (a request head's packed values): what [`Secret`]
/// is, without owning the bytes. `Debug` is redacted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretRef<'a>(&'a [u8]);

impl<'a> SecretRef<'a> {
    pub fn new(value: &'a [u8]) -> Self {
        Self(value)
    }
    /// The raw bytes, for verification and fingerprinting only.
    pub fn expose(self) -> &'a [u8] {
        self.0
    }
}

impl fmt::Debug for SecretRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
