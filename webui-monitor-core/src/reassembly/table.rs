//! The connection table: every connection in one LRU list, and the unconfirmed ones (neither
//! handshake seen nor both directions live) also in a second LRU list of their own.
//!
//! Anyone who can reach the host can send a payload segment for a made-up 4-tuple, and each one
//! opens an unconfirmed connection. When the table is full, the least recently used
//! *unconfirmed* connection goes first; an established one is evicted only when no unconfirmed
//! one is left. A flood of spoofed 4-tuples therefore churns through the unconfirmed list and
//! leaves the established connections alone.
//!
//! The main list keeps the order of use over the whole table (idle expiry, end of input), and a
//! segment of a confirmed connection costs one lookup; one of an unconfirmed connection may cost
//! a second, to keep the unconfirmed list in order of use too.
use lru::LruCache;

use super::{Conn, Trust};
use crate::segment::ConnectionKey;

pub(super) struct Table<S> {
    all: LruCache<ConnectionKey, Conn<S>>,
    /// Keys of the connections of `all` whose trust is `Unconfirmed`, in order of use.
    unconfirmed: LruCache<ConnectionKey, ()>,
}

impl<S> Table<S> {
    pub fn new() -> Self {
        Self {
            all: LruCache::unbounded(),
            unconfirmed: LruCache::unbounded(),
        }
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn unconfirmed_len(&self) -> usize {
        self.unconfirmed.len()
    }

    /// The connection, marked as most recently used.
    pub fn get_mut(&mut self, key: &ConnectionKey) -> Option<&mut Conn<S>> {
        let conn = self.all.get_mut(key)?;
        // Consecutive segments of one connection skip the second lookup.
        if conn.trust == Trust::Unconfirmed
            && self
                .unconfirmed
                .peek_mru()
                .is_none_or(|(mru, _)| mru != key)
        {
            self.unconfirmed.promote(key);
        }
        Some(conn)
    }

    /// The connection, without marking it used.
    pub fn peek_mut(&mut self, key: &ConnectionKey) -> Option<&mut Conn<S>> {
        self.all.peek_mut(key)
    }

    pub fn pop(&mut self, key: &ConnectionKey) -> Option<Conn<S>> {
        let conn = self.all.pop(key)?;
        if conn.trust == Trust::Unconfirmed {
            self.unconfirmed.pop(key);
        }
        Some(conn)
    }

    /// Adds a new, unconfirmed connection as the most recently used one.
    pub fn insert(&mut self, key: ConnectionKey, conn: Conn<S>) {
        debug_assert!(conn.trust == Trust::Unconfirmed);
        self.all.push(key, conn);
        self.unconfirmed.push(key, ());
    }

    /// Takes a connection that stopped being unconfirmed off the unconfirmed list.
    pub fn confirmed(&mut self, key: &ConnectionKey) {
        self.unconfirmed.pop(key);
    }

    /// The connection to evict when the table is full: the least recently used unconfirmed one,
    /// else the least recently used one. The flag says whether it was unconfirmed.
    pub fn pop_evictable(&mut self) -> Option<(ConnectionKey, Conn<S>, bool)> {
        if let Some((key, ())) = self.unconfirmed.pop_lru() {
            return self.all.pop(&key).map(|conn| (key, conn, true));
        }
        self.all.pop_lru().map(|(key, conn)| (key, conn, false))
    }

    /// The least recently used connection.
    pub fn peek_oldest(&self) -> Option<&Conn<S>> {
        self.all.peek_lru().map(|(_, conn)| conn)
    }

    pub fn pop_oldest(&mut self) -> Option<(ConnectionKey, Conn<S>)> {
        let (key, conn) = self.all.pop_lru()?;
        if conn.trust == Trust::Unconfirmed {
            self.unconfirmed.pop(&key);
        }
        Some((key, conn))
    }

    /// Every connection, most recently used first.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&ConnectionKey, &mut Conn<S>)> {
        self.all.iter_mut()
    }
}
