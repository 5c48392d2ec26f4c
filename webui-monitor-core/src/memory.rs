//! One budget for the large buffers the stream engines hold per connection — decompression
//! windows of HTTP bodies and WebSocket messages being assembled — so that many connections
//! each holding a little less than its own cap cannot together exhaust the daemon's memory.
//!
//! A holder asks for a [`Reservation`] before it allocates and gives it back by dropping it.
//! When the budget is spent, new requests are refused — the first thing shed is whatever asks
//! next: a compressed body is not decoded (counted as `decode_memory_refused`), a WebSocket
//! message is cut where its buffer could not grow (`messages_truncated`) — while everything
//! already holding memory goes on. Each refusal is counted per holder, and the bytes held are
//! exported, per holder. Reassembly's buffers have their own total cap
//! (`reassembly.max_buffered_bytes_total`).
//!
//! The pipeline is single-threaded; the account is shared by `Arc` (with relaxed atomics)
//! only so that the engines' connection state stays `Send` and a reservation can release
//! itself on drop, wherever its holder is dropped (a body finished, a connection evicted).
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

/// Caps of [`MemoryAccount`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryLimits {
    /// Bytes all connections together may hold in decompression windows and WebSocket
    /// messages in progress (default 256 MiB).
    pub max_held_bytes: u64,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            max_held_bytes: 256 << 20,
        }
    }
}

/// What holds reserved memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The window and state of an HTTP body's decompressor (gzip, deflate, brotli, zstd).
    Decoder,
    /// A WebSocket message being assembled (up to `websocket.max_message_bytes`).
    WebSocketMessage,
}

impl Holder {
    pub const ALL: [Holder; 2] = [Holder::Decoder, Holder::WebSocketMessage];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Decoder => "http_decoder",
            Self::WebSocketMessage => "websocket_message",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
struct Inner {
    limit: AtomicU64,
    total: AtomicU64,
    held: [AtomicU64; 2],
    refused: [AtomicU64; 2],
}

/// The shared budget. Cloning shares it.
#[derive(Debug, Clone)]
pub struct MemoryAccount(Arc<Inner>);

impl Default for MemoryAccount {
    fn default() -> Self {
        Self::new(&MemoryLimits::default())
    }
}

impl MemoryAccount {
    pub fn new(limits: &MemoryLimits) -> Self {
        let account = Self(Arc::default());
        account.set_limits(limits);
        account
    }

    /// A new cap from now on; what is held stays until released.
    pub fn set_limits(&self, limits: &MemoryLimits) {
        self.0.limit.store(limits.max_held_bytes, Relaxed);
    }

    /// `bytes` for `holder`, or `None` (counted) if the budget cannot spare them.
    pub fn reserve(&self, holder: Holder, bytes: u64) -> Option<Reservation> {
        let mut r = Reservation {
            account: self.clone(),
            holder,
            bytes: 0,
        };
        r.grow_to(bytes).then_some(r)
    }

    /// Bytes held now by `holder`.
    pub fn held(&self, holder: Holder) -> u64 {
        self.0.held[holder.index()].load(Relaxed)
    }

    /// Requests of `holder` refused since the start.
    pub fn refused(&self, holder: Holder) -> u64 {
        self.0.refused[holder.index()].load(Relaxed)
    }

    fn take(&self, holder: Holder, bytes: u64) -> bool {
        let total = self.0.total.load(Relaxed);
        if total.saturating_add(bytes) > self.0.limit.load(Relaxed) {
            self.0.refused[holder.index()].fetch_add(1, Relaxed);
            return false;
        }
        self.0.total.fetch_add(bytes, Relaxed);
        self.0.held[holder.index()].fetch_add(bytes, Relaxed);
        true
    }

    fn give(&self, holder: Holder, bytes: u64) {
        self.0.total.fetch_sub(bytes, Relaxed);
        self.0.held[holder.index()].fetch_sub(bytes, Relaxed);
    }
}

/// Memory granted to one holder; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    account: MemoryAccount,
    holder: Holder,
    bytes: u64,
}

impl Reservation {
    /// Bytes granted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Grows the grant to `bytes` (no-op if it is that large already); false, counted, if the
    /// budget cannot spare the difference (the grant stays as it was).
    pub fn grow_to(&mut self, bytes: u64) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        if !self.account.take(self.holder, bytes - self.bytes) {
            return false;
        }
        self.bytes = bytes;
        true
    }

    /// Grows the grant towards `bytes` as far as the budget allows (a shortfall is counted as
    /// refused); returns the bytes granted now.
    pub fn grow_up_to(&mut self, bytes: u64) -> u64 {
        if bytes > self.bytes {
            let inner = &self.account.0;
            let free = inner
                .limit
                .load(Relaxed)
                .saturating_sub(inner.total.load(Relaxed));
            let wanted = bytes - self.bytes;
            let granted = wanted.min(free);
            if granted < wanted {
                inner.refused[self.holder.index()].fetch_add(1, Relaxed);
            }
            if granted > 0 {
                inner.total.fetch_add(granted, Relaxed);
                inner.held[self.holder.index()].fetch_add(granted, Relaxed);
                self.bytes += granted;
            }
        }
        self.bytes
    }

    /// Shrinks the grant to `bytes`, giving the rest back.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.account.give(self.holder, self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_up_to_the_limit_refuses_beyond_and_releases_on_drop() {
        let account = MemoryAccount::new(&MemoryLimits {
            max_held_bytes: 100,
        });
        let a = account.reserve(Holder::Decoder, 60).unwrap();
        let mut b = account.reserve(Holder::WebSocketMessage, 30).unwrap();
        assert!(account.reserve(Holder::Decoder, 20).is_none());
        assert!(!b.grow_to(41));
        assert!(b.grow_to(40));
        assert_eq!(
            (
                account.held(Holder::Decoder),
                account.held(Holder::WebSocketMessage)
            ),
            (60, 40)
        );
        assert_eq!(
            (
                account.refused(Holder::Decoder),
                account.refused(Holder::WebSocketMessage)
            ),
            (1, 1)
        );
        drop(a);
        b.shrink_to(10);
        assert_eq!(account.held(Holder::WebSocketMessage), 10);
        assert!(account.reserve(Holder::Decoder, 90).is_some());
        assert_eq!(
            account.held(Holder::Decoder),
            0,
            "released when the grant was dropped"
        );
        drop(b);
        assert_eq!(account.held(Holder::WebSocketMessage), 0);
        let mut c = account.reserve(Holder::WebSocketMessage, 0).unwrap();
        let _d = account.reserve(Holder::Decoder, 70).unwrap();
        assert_eq!(c.grow_up_to(50), 30, "as far as the budget goes");
        assert_eq!(account.refused(Holder::WebSocketMessage), 2);
        assert_eq!(c.grow_up_to(20), 30);
    }
}
