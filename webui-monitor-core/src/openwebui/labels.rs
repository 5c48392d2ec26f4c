//! Values from small fixed sets that attribution names and the `openwebui_*` families use as
//! labels (auth, client, auth result, status class, method), and the bounded model table.
use super::fast_map::FastMap;
use crate::segment::Timestamp;

use super::jwt::Verdict;

/// `auth` label: which kind of credential Open WebUI acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// A token in `Authorization` (Bearer JWT, or anything else decoded as one).
    Jwt,
    /// The `token` cookie alone.
    Cookie,
    /// An `sk-` key (in `Authorization` or the API-key header).
    ApiKey,
    None,
}

pub(crate) const AUTH_LABELS: [&str; 4] = ["jwt", "cookie", "api_key", "none"];
pub(crate) const CLIENT_LABELS: [&str; 2] = ["webui", "api"];

/// `status_class` label of a chat completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    /// No response.
    None,
    /// A status outside 100–599.
    Other,
    /// A web-UI completion whose task was accepted (2xx) but whose answer never reported
    /// `done` on its socket before the socket closed or the answer expired.
    Incomplete,
}

impl StatusClass {
    pub fn of(status: Option<u16>) -> Self {
        match status {
            None => Self::None,
            Some(100..=199) => Self::Informational,
            Some(200..=299) => Self::Success,
            Some(300..=399) => Self::Redirection,
            Some(400..=499) => Self::ClientError,
            Some(500..=599) => Self::ServerError,
            Some(_) => Self::Other,
        }
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::None => "none",
            Self::Other => "other",
            Self::Incomplete => "incomplete",
        }
    }
}

impl Auth {
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
    pub const fn as_str(self) -> &'static str {
        AUTH_LABELS[self as usize]
    }
}

/// `client` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    Webui,
    Api,
}

impl Client {
    pub const fn as_str(self) -> &'static str {
        CLIENT_LABELS[self as usize]
    }
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// `openwebui_auth_total{result}` values: one per HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthResult {
    /// A JWT verified with the secret, or an API key found in the database.
    Verified,
    /// A well-formed JWT checked without the secret, or an API key without a database.
    Unverified,
    BadSignature,
    Expired,
    NotYetValid,
    Malformed,
    /// Not verifiable here (no secret or database) and Open WebUI answered 401.
    Rejected,
    /// No credential.
    Anonymous,
    /// An `sk-` key not in the database.
    UnknownApiKey,
}

impl AuthResult {
    /// The credential was checked and found wrong (Open WebUI answers 401 to it).
    pub const fn failed(self) -> bool {
        matches!(
            self,
            Self::BadSignature
                | Self::Expired
                | Self::NotYetValid
                | Self::Malformed
                | Self::Rejected
                | Self::UnknownApiKey
        )
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Unverified => "unverified",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Malformed => "malformed",
            Self::Rejected => "rejected",
            Self::Anonymous => "anonymous",
            Self::UnknownApiKey => "unknown_api_key",
        }
    }
}

impl From<Verdict> for AuthResult {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Verified => Self::Verified,
            Verdict::Unverified => Self::Unverified,
            Verdict::BadSignature => Self::BadSignature,
            Verdict::Expired => Self::Expired,
            Verdict::NotYetValid => Self::NotYetValid,
            Verdict::Malformed => Self::Malformed,
        }
    }
}

pub(crate) const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

pub(crate) fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The bounded set of model names, interned: a request's model becomes a small index, so an
/// answer waiting for its join holds a `u32`, and every sink sees the same bounded set of names.
/// Index 0 is `unknown` (no model in the request, or an answer never joined to one), 1 is
/// `other` (beyond the cap, too long or empty).
///
/// A model unused for longer than the TTL is retired ([`ModelTable::retire_idle`]): its slot is
/// free for the next new name, so models that come and go over months do not end in `other`.
/// The caller tells the sinks (`Fact::ModelRetired`) before the index is given out again.
#[derive(Debug)]
pub(crate) struct ModelTable {
    names: Vec<Box<str>>,
    /// Traffic time of each model's last use (by index).
    used: Vec<Timestamp>,
    index: FastMap<Box<str>, u32>,
    /// Retired indexes, given to the next new names.
    free: Vec<u32>,
    max: usize,
    max_len: usize,
    pub(crate) folded: u64,
}

pub(crate) const MODEL_UNKNOWN: u32 = 0;
pub(crate) const MODEL_OTHER: u32 = 1;

impl ModelTable {
    pub(crate) fn new(max: usize, max_len: usize) -> Self {
        Self {
            names: vec!["unknown".into(), "other".into()],
            used: vec![Timestamp::default(); 2],
            index: FastMap::default(),
            free: Vec::new(),
            max,
            max_len,
            folded: 0,
        }
    }

    /// The index of `model`, entering it if there is room, used at traffic time `now`.
    pub(crate) fn id(&mut self, model: Option<&str>, now: Timestamp) -> u32 {
        let Some(model) = model else {
            return MODEL_UNKNOWN;
        };
        if let Some(&i) = self.index.get(model) {
            self.touch(i, now);
            return i;
        }
        if self.index.len() >= self.max || model.len() > self.max_len || model.is_empty() {
            self.folded += 1;
            return MODEL_OTHER;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.names[i as usize] = model.into();
                i
            }
            None => {
                self.names.push(model.into());
                self.used.push(now);
                (self.names.len() - 1) as u32
            }
        };
        self.touch(i, now);
        self.index.insert(model.into(), i);
        i
    }

    /// The index of `model` if the table has it (`None` without a model: `unknown`), used at
    /// `now`.
    pub(crate) fn known(&mut self, model: Option<&str>, now: Timestamp) -> Option<u32> {
        match model {
            None => Some(MODEL_UNKNOWN),
            Some(m) => {
                let i = *self.index.get(m)?;
                self.touch(i, now);
                Some(i)
            }
        }
    }

    fn touch(&mut self, i: u32, now: Timestamp) {
        if let Some(used) = self.used.get_mut(i as usize) {
            *used = (*used).max(now);
        }
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("other", |n| n)
    }

    /// Retires every model not used since before `now - ttl`, calling `retired(id, name)` for
    /// each before its slot is free.
    pub(crate) fn retire_idle(
        &mut self,
        now: Timestamp,
        ttl_secs: u64,
        mut retired: impl FnMut(u32, &str),
    ) {
        let ttl = ttl_secs.saturating_mul(1_000_000_000);
        let Self {
            names,
            used,
            index,
            free,
            ..
        } = self;
        index.retain(|name, &mut i| {
            let idle = used[i as usize].as_nanos().saturating_add(ttl) <= now.as_nanos();
            if idle {
                retired(i, name);
                names[i as usize] = "".into();
                free.push(i);
            }
            !idle
        });
    }

    /// Models in the table now (`unknown` and `other` aside).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

/// Three-digit status label without formatting (only on a series' first use anyway).
pub(crate) fn status_label(status: Option<u16>, buf: &mut [u8; 3]) -> &str {
    match status {
        Some(s @ 100..=599) => {
            *buf = [
                b'0' + (s / 100) as u8,
                b'0' + (s / 10 % 10) as u8,
                b'0' + (s % 10) as u8,
            ];
            std::str::from_utf8(buf).unwrap_or("other")
        }
        Some(_) => "other",
        None => "none",
    }
}
