//! The web UI's socket.io connections: each socket's identity (from `user-join`; before it, its
//! upgrade request's) and its Socket.IO sid, the `session_id` that web-UI completion requests
//! name so their answers can be found on the socket.
use std::mem;

use crate::{
    openwebui::{
        fast_map::{FastMap, entry_within},
        identity::OwnedUser,
    },
    segment::{ConnectionKey, Timestamp},
};

/// One upgraded (socket.io) connection.
#[derive(Debug)]
pub(super) struct SocketState {
    /// From the latest `user-join`; before it, the upgrade request's own identity.
    pub(super) user: OwnedUser,
    pub(super) sid: Option<Box<str>>,
    /// Its frames stopped decoding: nothing more will come from it.
    pub(super) undecodable: bool,
    pub(super) last_event: Timestamp,
}

impl SocketState {
    fn new(user: OwnedUser, now: Timestamp) -> Self {
        Self {
            user,
            sid: None,
            undecodable: false,
            last_event: now,
        }
    }
}

/// A socket that is gone, with what its pending answers need to settle.
#[derive(Debug)]
pub(super) struct Gone {
    pub(super) sid: Option<Box<str>>,
    pub(super) undecodable: bool,
}

/// Why a socket was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Full;

/// The tracked sockets (at most `max`) and the sid → socket map (one entry per socket).
#[derive(Debug)]
pub(super) struct Sockets {
    sockets: FastMap<ConnectionKey, SocketState>,
    sessions: FastMap<Box<str>, ConnectionKey>,
    max: usize,
}

impl Sockets {
    pub(super) fn new(max: usize) -> Self {
        Self {
            sockets: FastMap::default(),
            sessions: FastMap::default(),
            max,
        }
    }

    /// A new cap for sockets not yet tracked; those already tracked stay.
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Sizes: (sockets, sessions).
    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.sockets.len(), self.sessions.len())
    }

    pub(super) fn contains(&self, connection: ConnectionKey) -> bool {
        self.sockets.contains_key(&connection)
    }

    pub(super) fn get_mut(&mut self, connection: ConnectionKey) -> Option<&mut SocketState> {
        self.sockets.get_mut(&connection)
    }

    /// A socket opens on `connection` as `user`. A reused connection key ends the socket it
    /// held, which is returned.
    pub(super) fn open(
        &mut self,
        connection: ConnectionKey,
        user: OwnedUser,
        now: Timestamp,
    ) -> Result<Option<Gone>, Full> {
        let mut fresh = false;
        let slot = entry_within(&mut self.sockets, &connection, self.max, || {
            fresh = true;
            SocketState::new(user.clone(), now)
        })
        .ok_or(Full)?;
        if fresh {
            return Ok(None);
        }
        let old = mem::replace(slot, SocketState::new(user, now));
        Ok(Some(self.unmap(connection, old)))
    }

    /// The socket on `connection` got Socket.IO sid `sid`.
    pub(super) fn connected(&mut self, connection: ConnectionKey, sid: &str) {
        let Some(socket) = self.sockets.get_mut(&connection) else {
            return;
        };
        if let Some(old) = socket.sid.replace(sid.into())
            && self.sessions.get(&old) == Some(&connection)
        {
            self.sessions.remove(&old);
        }
        self.sessions.insert(sid.into(), connection);
    }

    /// Whether session `sid` is a socket whose events are being decoded.
    pub(super) fn decodes(&self, sid: &str) -> bool {
        self.sessions
            .get(sid)
            .and_then(|c| self.sockets.get(c))
            .is_some_and(|s| !s.undecodable)
    }

    /// The socket on `connection` closed.
    pub(super) fn close(&mut self, connection: ConnectionKey) -> Option<Gone> {
        let socket = self.sockets.remove(&connection)?;
        Some(self.unmap(connection, socket))
    }

    /// Forget sockets without events for `ttl_nanos` before `now`.
    pub(super) fn expire(&mut self, now: Timestamp, ttl_nanos: u64) {
        let sessions = &mut self.sessions;
        self.sockets.retain(|connection, s| {
            let keep = s.last_event.as_nanos().saturating_add(ttl_nanos) > now.as_nanos();
            if let (false, Some(sid)) = (keep, &s.sid)
                && sessions.get(sid) == Some(connection)
            {
                sessions.remove(sid);
            }
            keep
        });
    }

    /// Remove `sid → connection` unless another socket has since claimed the sid.
    fn unmap(&mut self, connection: ConnectionKey, socket: SocketState) -> Gone {
        if let Some(sid) = &socket.sid
            && self.sessions.get(sid) == Some(&connection)
        {
            self.sessions.remove(sid);
        }
        Gone {
            sid: socket.sid,
            undecodable: socket.undecodable,
        }
    }
}
