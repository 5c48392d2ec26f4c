//! Who a request, answer or socket is attributed to: a user id (the JWT's `id` claim or the API
//! key's owner) or one of the [`Special`] values. Attribution works on ids; turning them into a
//! bounded set of label values is the metrics sink's business (`metrics::user_series`).

/// Who a request is attributed to when it is not a user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// No credential at all.
    Anonymous,
    /// A token that failed verification (or that Open WebUI rejected): never its claimed id.
    Invalid,
    /// An `sk-` key not in Open WebUI's database.
    UnknownApiKey,
    /// An `sk-` key while no database is configured.
    UnresolvedApiKey,
    /// Users beyond a sink's label cap (`max_users`): never produced by attribution, only by
    /// a sink that folds ids it cannot keep.
    Other,
}

impl Special {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Invalid => "invalid",
            Self::UnknownApiKey => "unknown_api_key",
            Self::UnresolvedApiKey => "unresolved_api_key",
            Self::Other => "other",
        }
    }
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Who a request or answer is attributed to, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef<'a> {
    Id(&'a str),
    Special(Special),
}

/// Who a WebSocket answer is attributed to, owned (kept across events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedUser {
    Id(Box<str>),
    Special(Special),
}

impl OwnedUser {
    pub fn as_ref(&self) -> UserRef<'_> {
        match self {
            Self::Id(id) => UserRef::Id(id),
            Self::Special(s) => UserRef::Special(*s),
        }
    }
}

impl From<UserRef<'_>> for OwnedUser {
    fn from(u: UserRef<'_>) -> Self {
        match u {
            UserRef::Id(id) => Self::Id(id.into()),
            UserRef::Special(s) => Self::Special(s),
        }
    }
}
