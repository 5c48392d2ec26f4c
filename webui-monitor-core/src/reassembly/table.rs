//! The connection table: two LRU lists, one for connections that proved themselves (handshake
//! seen, or traffic in both directions) and one for the rest.
//!
//! Anyone who can reach the host can send a payload segment for a made-up 4-tuple, and each one
//! opens an unconfirmed connection. When the table is full, the least recently used
//! *unconfirmed* connection goes first; an established one is evicted only when no unconfirmed
//! one is left. A flood of spoofed 4-tuples therefore churns through the unconfirmed list and
//! leaves the established connections alone.
//!
//! Both lists share one recency clock, so "least recently used over the whole table" (idle
//! expiry, end of input) keeps the order a single list would have.
use lru::LruCache;

use super::Conn;
use crate::segment::ConnectionKey;

pub(super) struct Table<S> {
    trusted: LruCache<ConnectionKey, Conn<S>>,
    unconfirmed: LruCache<ConnectionKey, Conn<S>>,
    /// Recency clock: `Conn::touched` takes its next value on every use.
    clock: u64,
}

impl<S> Table<S> {
    pub fn new() -> Self {
        Self {
            trusted: LruCache::unbounded(),
            unconfirmed: LruCache::unbounded(),
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.trusted.len() + self.unconfirmed.len()
    }

    pub fn unconfirmed_len(&self) -> usize {
        self.unconfirmed.len()
    }

    /// The connection, marked as most recently used, and whether it is trusted.
    pub fn get_mut(&mut self, key: &ConnectionKey) -> Option<(&mut Conn<S>, bool)> {
        self.clock += 1;
        let clock = self.clock;
        let (conn, trusted) = match self.trusted.get_mut(key) {
            Some(conn) => (conn, true),
            None => (self.unconfirmed.get_mut(key)?, false),
        };
        conn.touched = clock;
        Some((conn, trusted))
    }

    pub fn peek(&self, key: &ConnectionKey) -> Option<&Conn<S>> {
        self.trusted
            .peek(key)
            .or_else(|| self.unconfirmed.peek(key))
    }

    /// The connection, without marking it used.
    pub fn peek_mut(&mut self, key: &ConnectionKey) -> Option<&mut Conn<S>> {
        match self.trusted.peek_mut(key) {
            Some(conn) => Some(conn),
            None => self.unconfirmed.peek_mut(key),
        }
    }

    pub fn pop(&mut self, key: &ConnectionKey) -> Option<Conn<S>> {
        self.trusted.pop(key).or_else(|| self.unconfirmed.pop(key))
    }

    /// Adds a new connection as the most recently used unconfirmed one.
    pub fn insert(&mut self, key: ConnectionKey, mut conn: Conn<S>) {
        self.clock += 1;
        conn.touched = self.clock;
        self.unconfirmed.push(key, conn);
    }

    /// Moves an unconfirmed connection to the trusted list (as its most recently used entry).
    pub fn promote(&mut self, key: &ConnectionKey) {
        if let Some(conn) = self.unconfirmed.pop(key) {
            self.trusted.push(*key, conn);
        }
    }

    /// The connection to evict when the table is full: the least recently used unconfirmed one,
    /// else the least recently used trusted one. The flag says whether it was unconfirmed.
    pub fn pop_evictable(&mut self) -> Option<(ConnectionKey, Conn<S>, bool)> {
        if let Some((key, conn)) = self.unconfirmed.pop_lru() {
            return Some((key, conn, true));
        }
        self.trusted.pop_lru().map(|(key, conn)| (key, conn, false))
    }

    /// Which list holds the least recently used connection of the whole table.
    fn oldest_is_trusted(&self) -> Option<bool> {
        match (self.trusted.peek_lru(), self.unconfirmed.peek_lru()) {
            (Some((_, t)), Some((_, u))) => Some(t.touched < u.touched),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    /// The least recently used connection of the whole table.
    pub fn peek_oldest(&self) -> Option<&Conn<S>> {
        match self.oldest_is_trusted()? {
            true => self.trusted.peek_lru().map(|(_, c)| c),
            false => self.unconfirmed.peek_lru().map(|(_, c)| c),
        }
    }

    pub fn pop_oldest(&mut self) -> Option<(ConnectionKey, Conn<S>)> {
        match self.oldest_is_trusted()? {
            true => self.trusted.pop_lru(),
            false => self.unconfirmed.pop_lru(),
        }
    }

    /// Every connection, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&ConnectionKey, &Conn<S>)> {
        self.trusted.iter().chain(self.unconfirmed.iter())
    }
}
