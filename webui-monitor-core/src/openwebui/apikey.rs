//! Open WebUI API keys (`sk-…`): resolved to their user through a [`Directory`] snapshot that
//! holds only SHA-256 hashes of keys, never a key; labelled by a 12-hex-digit fingerprint.
use super::fast_map::FastMap;

use sha2::{Digest, Sha256};

/// SHA-256 of a key: what the directory stores instead of the key.
pub type KeyHash = [u8; 32];

/// SHA-256 of `key`.
pub fn key_hash(key: &[u8]) -> KeyHash {
    Sha256::digest(key).into()
}

/// First 12 hex digits of a credential's SHA-256: a label that identifies a key (or token)
/// without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 12]);

impl Fingerprint {
    pub fn of(credential: &[u8]) -> Self {
        Self::from_hash(&key_hash(credential))
    }
    pub fn from_hash(hash: &KeyHash) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 12];
        for (i, b) in hash[..6].iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        Self(out)
    }
    pub fn as_str(&self) -> &str {
        // Only hex digits were written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.as_str())
    }
}

/// One row of Open WebUI's `user` table (personal data: exported only on opt-in; `Debug`
/// shows the role only).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UserRecord {
    pub name: String,
    pub email: String,
    pub role: String,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &"<redacted>")
            .field("email", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// A snapshot of Open WebUI's users and API keys (keys as hashes only). `Debug` shows sizes.
#[derive(Clone, Default)]
pub struct Directory {
    keys: FastMap<KeyHash, Box<str>>,
    users: FastMap<Box<str>, UserRecord>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("keys", &self.keys.len())
            .field("users", &self.users.len())
            .finish()
    }
}

/// How an API key resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookup<'d> {
    /// The key's `api_key.user_id`.
    Known(&'d str),
    /// Not in the database: Open WebUI rejects it.
    Unknown,
}

impl Directory {
    /// Add a key (hashed on the spot) belonging to `user_id`.
    pub fn insert_key(&mut self, key: &[u8], user_id: &str) {
        self.keys.insert(key_hash(key), user_id.into());
    }
    pub fn insert_user(&mut self, id: &str, record: UserRecord) {
        self.users.insert(id.into(), record);
    }
    pub fn lookup_key(&self, key: &[u8]) -> KeyLookup<'_> {
        self.lookup_hash(&key_hash(key))
    }
    pub fn lookup_hash(&self, hash: &KeyHash) -> KeyLookup<'_> {
        self.keys
            .get(hash)
            .map_or(KeyLookup::Unknown, |u| KeyLookup::Known(u))
    }
    pub fn user(&self, id: &str) -> Option<&UserRecord> {
        self.users.get(id)
    }
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
    pub fn user_count(&self) -> usize {
        self.users.len()
    }
    /// Fingerprints of every key and their user ids (for `openwebui_api_key_info`).
    pub fn keys(&self) -> impl Iterator<Item = (Fingerprint, &str)> {
        self.keys
            .iter()
            .map(|(h, u)| (Fingerprint::from_hash(h), &**u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_key_fingerprint() {
        // FIXTURES-README: Alice's key, fingerprint 46e99b8fcc3f.
        let fp = Fingerprint::of(b"sk-b2f36db1e8f4423697d7fa73f0ac0987");
        assert_eq!(fp.as_str(), "46e99b8fcc3f");
        assert_eq!(format!("{fp:?}"), "Fingerprint(46e99b8fcc3f)");
    }

    #[test]
    fn lookup_by_hash_only() {
        let mut d = Directory::default();
        d.insert_key(b"sk-known", "u1");
        assert_eq!(d.lookup_key(b"sk-known"), KeyLookup::Known("u1"));
        assert_eq!(d.lookup_key(b"sk-unknown"), KeyLookup::Unknown);
        assert!(!format!("{d:?}").contains("sk-known"));
    }
}
