//! Basic authentication against the bcrypt hashes of the web configuration file.
//!
//! bcrypt is slow by design (about 100 ms at cost 10 on this class of machine), so a scrape
//! every 15 s must not pay it each time: a successful check leaves the SHA-256 of the password
//! in a per-user slot, and a later request with the same password costs one SHA-256. The cache
//! holds at most one digest per configured user, so it is bounded by the file. A password that
//! differs from the cached one goes through bcrypt again.
//!
//! Failed checks cannot be cached, so an attacker can make the server run bcrypt at will: at
//! most one bcrypt check runs at a time ([`BasicAuth::check`] waits on a semaphore, on the
//! blocking pool), so wrong passwords cost at most one CPU and the async workers never stall.
//! An unknown user is checked against a decoy hash at the cost of the configured hashes, so
//! the answer time does not say which user names exist.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, OnceLock},
};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Basic` header, or one that does not decode.
    Missing,
    /// A user or password that does not match.
    Invalid,
}

impl Refusal {
    /// The `reason` label of `webui_monitor_http_server_auth_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
        }
    }
}

/// The users of `basic_auth_users` and the cache of passwords already verified.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<BTreeMap<String, [u8; 32]>>,
    bcrypt_slots: Semaphore,
    /// What unknown users are checked against, made on first need.
    decoy: Arc<OnceLock<String>>,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            verified: Mutex::new(BTreeMap::new()),
            bcrypt_slots: Semaphore::new(1),
            decoy: Arc::new(OnceLock::new()),
        }
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        let (user, password) = authorization
            .and_then(decode_basic)
            .ok_or(Refusal::Missing)?;
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if self
            .verified
            .lock()
            .expect("auth cache lock")
            .get(&user)
            .is_some_and(|cached| constant_time_eq(cached, &digest))
        {
            return Ok(());
        }
        let hash = self.users.get(&user).cloned();
        let known = hash.is_some();
        let cost = self
            .users
            .values()
            .find_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map_or(bcrypt::DEFAULT_COST, |parts| parts.get_cost());
        let decoy = Arc::clone(&self.decoy);
        let _slot = self
            .bcrypt_slots
            .acquire()
            .await
            .map_err(|_| Refusal::Invalid)?;
        let matches = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| {
                decoy
                    // Its password does not matter: an unknown user is refused whatever matches.
                    .get_or_init(|| bcrypt::hash("decoy", cost).unwrap_or_default())
                    .clone()
            });
            bcrypt::verify(password, &hash)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
        if matches && known {
            self.verified
                .lock()
                .expect("auth cache lock")
                .insert(user, digest);
            Ok(())
        } else {
            Err(Refusal::Invalid)
        }
    }

    /// Users whose password is cached (tests).
    #[cfg(test)]
    fn cached(&self) -> usize {
        self.verified.lock().expect("auth cache lock").len()
    }
}

/// `Basic base64(user:password)` → (user, password).
fn decode_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn verifies_caches_and_refuses() {
        // Cost 4, the lowest, keeps the test fast; the daemon accepts any cost.
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prom".to_owned(), hash)]));
        assert_eq!(auth.check(None).await, Err(Refusal::Missing));
        assert_eq!(auth.check(Some(b"Bearer abc")).await, Err(Refusal::Missing));
        assert_eq!(
            auth.check(Some(b"Basic !!notbase64")).await,
            Err(Refusal::Missing)
        );
        assert_eq!(
            auth.check(Some(&header("prom", "wrong"))).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(auth.cached(), 0);
        assert_eq!(auth.check(Some(&header("prom", "s3cret"))).await, Ok(()));
        assert_eq!(auth.cached(), 1);
        // Cached: the same password again, then a wrong one is not let through by the cache.
        assert_eq!(auth.check(Some(&header("prom", "s3cret"))).await, Ok(()));
        assert_eq!(
            auth.check(Some(&header("prom", "s3cret2"))).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(
            auth.check(Some(&header("nobody", "s3cret"))).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(auth.cached(), 1);
        // The scheme is case-insensitive (RFC 7617), a password may hold ':'.
        let hash = bcrypt::hash("a:b", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)]));
        let mut lower = header("u", "a:b");
        lower[..5].copy_from_slice(b"basic");
        assert_eq!(auth.check(Some(&lower)).await, Ok(()));
    }
}
