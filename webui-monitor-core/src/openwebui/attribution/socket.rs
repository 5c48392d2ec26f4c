//! The web UI's socket.io side of attribution (issue 6): the socket's identity from
//! `user-join`, its Socket.IO sid (the `session_id` of web-UI completion requests), and each
//! answer joined to its completion request through the message id (the request body's `id`), in
//! whichever order request and answer events arrive. Each answer's usage is credited once, to
//! the socket's user and the request's model; a web-UI completion is counted when its answer is
//! done.
use super::{Attributor, resolve_token};
use crate::{
    openwebui::users::{CompletionKey, OwnedUser, Special},
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
    websocket::SocketEvent,
};

/// One upgraded (socket.io) connection.
#[derive(Debug)]
pub(super) struct SocketState {
    /// From the latest `user-join`; before it, the upgrade request's own identity.
    pub(super) user: OwnedUser,
    pub(super) sid: Option<Box<str>>,
    pub(super) undecodable: bool,
    pub(super) last_event: Timestamp,
}

/// One web-UI answer (keyed by message id) while its request and usage are being joined.
#[derive(Debug)]
pub(super) struct Answer {
    /// Model of the completion request whose body `id` is this message id.
    pub(super) model: Option<u32>,
    /// End of that request (TTFT origin).
    pub(super) request_end: Option<Timestamp>,
    pub(super) session_id: Option<Box<str>>,
    /// Usage waiting for its request, with the socket's user at the time.
    pub(super) usage: Option<(Usage, OwnedUser)>,
    pub(super) credited: bool,
    /// The answer reported `done` on its socket.
    pub(super) done: bool,
    /// The answer was done without any usage, before its request named the model: whom to
    /// count it for once the model is known.
    pub(super) done_without_usage: Option<OwnedUser>,
    /// Its missing usage was counted (or is waiting in `done_without_usage`).
    pub(super) usage_missing: bool,
    /// A web-UI completion counted only once its answer is done (its 2xx only means "task
    /// accepted"): who and under which labels.
    pub(super) completion: Option<(OwnedUser, CompletionKey)>,
    pub(super) first_delta: Option<Timestamp>,
    pub(super) ttft_observed: bool,
    pub(super) touched: Timestamp,
}

impl Answer {
    pub(super) fn new(ts: Timestamp) -> Self {
        Self {
            model: None,
            request_end: None,
            session_id: None,
            usage: None,
            credited: false,
            done: false,
            done_without_usage: None,
            usage_missing: false,
            completion: None,
            first_delta: None,
            ttft_observed: false,
            touched: ts,
        }
    }
}

impl Attributor {
    /// A web-UI completion request: remember its model for the answer that will arrive on the
    /// socket (or credit an answer that arrived first).
    pub(super) fn join_request(
        &mut self,
        message_id: &str,
        model: u32,
        request_end: Timestamp,
        session: Option<&str>,
        pending: Option<(OwnedUser, CompletionKey)>,
    ) {
        if !self.answers.contains_key(message_id) && !self.reserve_answer() {
            // Not remembered: count the completion now rather than lose it.
            self.settle_completion(pending, true);
            return;
        }
        let answer = self
            .answers
            .entry(message_id.into())
            .or_insert_with(|| Answer::new(request_end));
        answer.model = Some(model);
        answer.request_end = Some(request_end);
        answer.session_id = session.map(Into::into);
        answer.touched = answer.touched.max(request_end);
        let usage = answer.usage.take();
        if usage.is_some() {
            answer.credited = true;
        }
        let without_usage = answer.done_without_usage.take();
        let settle_now = if answer.done {
            pending
        } else {
            answer.completion = pending;
            None
        };
        if let Some((usage, user)) = usage {
            self.credit_ws(&user, model, usage);
        }
        if let Some(user) = without_usage {
            self.count_ws_without_usage(&user, model);
        }
        self.settle_completion(settle_now, true);
        self.observe_ws_ttft(message_id);
    }

    pub(super) fn reserve_answer(&mut self) -> bool {
        if self.answers.len() < self.config.max_pending_answers {
            return true;
        }
        self.counters.pending_answers_dropped += 1;
        self.limit_hit("max_pending_answers");
        false
    }

    pub(super) fn credit_ws(&mut self, user: &OwnedUser, model: u32, usage: Usage) {
        let model_name = self.models.name(model);
        let entry = self.users.entry(user.as_ref(), &self.metrics, |_| None);
        entry.seen(self.clock);
        entry.add_usage(&self.metrics, model, 1, usage, model_name);
    }

    pub(super) fn count_ws_without_usage(&mut self, user: &OwnedUser, model: u32) {
        let model_name = self.models.name(model);
        let entry = self.users.entry(user.as_ref(), &self.metrics, |_| None);
        entry.seen(self.clock);
        entry
            .without_usage(&self.metrics, model, 1, model_name)
            .inc();
    }

    pub(super) fn observe_ws_ttft(&mut self, message_id: &str) {
        let Some(a) = self.answers.get_mut(message_id) else {
            return;
        };
        if let (false, Some(first), Some(start), Some(model)) =
            (a.ttft_observed, a.first_delta, a.request_end, a.model)
        {
            a.ttft_observed = true;
            let name = self.models.name(model);
            self.metrics
                .ttft
                .with_label_values(&[name])
                .observe(first.seconds_since(start));
        }
    }

    pub(super) fn on_upgrade(
        &mut self,
        connection: ConnectionKey,
        user: OwnedUser,
        now: Timestamp,
    ) {
        if !self.sockets.contains_key(&connection) && self.sockets.len() >= self.config.max_sockets
        {
            self.counters.sockets_dropped += 1;
            self.limit_hit("max_sockets");
            return;
        }
        let previous = self.sockets.insert(
            connection,
            SocketState {
                user,
                sid: None,
                undecodable: false,
                last_event: now,
            },
        );
        // A new upgrade on a reused connection key ends the old socket.
        if let Some(old) = previous {
            self.forget_socket(connection, old);
        }
    }

    /// A socket is gone: unmap its sid and settle its answers' pending completions.
    pub(super) fn forget_socket(&mut self, connection: ConnectionKey, socket: SocketState) {
        if let Some(sid) = &socket.sid {
            self.unmap_session(sid, connection);
        }
        self.settle_session(socket.sid.as_deref(), socket.undecodable);
    }

    /// Remove `sid → connection` unless another socket has since claimed the sid.
    pub(super) fn unmap_session(&mut self, sid: &str, connection: ConnectionKey) {
        if self.sessions.get(sid) == Some(&connection) {
            self.sessions.remove(sid);
        }
    }

    /// Feed one WebSocket event of an upgraded connection.
    pub fn on_socket(&mut self, connection: ConnectionKey, event: &SocketEvent) {
        self.counters.socket_events += 1;
        let ts = match event {
            SocketEvent::Connected { ts, .. }
            | SocketEvent::UserJoin { ts, .. }
            | SocketEvent::FirstDelta { ts, .. }
            | SocketEvent::Usage { ts, .. }
            | SocketEvent::Done { ts, .. }
            | SocketEvent::Undecodable { ts }
            | SocketEvent::Closed { ts } => *ts,
        };
        self.maybe_sweep(ts);
        if !self.sockets.contains_key(&connection) {
            // Upgrade not seen (capture started later): the socket has no identity until
            // its `user-join`.
            self.on_upgrade(connection, OwnedUser::Special(Special::Anonymous), ts);
        }
        let Some(socket) = self.sockets.get_mut(&connection) else {
            return;
        };
        socket.last_event = ts;
        match event {
            SocketEvent::Connected { sid, .. } => {
                if let Some(old) = socket.sid.replace(sid.as_str().into()) {
                    self.unmap_session(&old, connection);
                }
                self.sessions.insert(sid.as_str().into(), connection);
            }
            SocketEvent::UserJoin { token, ts } => {
                let (who, _) = resolve_token(&mut self.verifier, token.expose(), *ts, false);
                socket.user = who.as_ref().into();
            }
            SocketEvent::Undecodable { .. } => {
                socket.undecodable = true;
                // Nothing more will come: its pending completions keep their HTTP status.
                let sid = socket.sid.clone();
                self.settle_session(sid.as_deref(), true);
            }
            SocketEvent::Closed { .. } => {
                if let Some(socket) = self.sockets.remove(&connection) {
                    self.forget_socket(connection, socket);
                }
            }
            SocketEvent::FirstDelta { message_id, ts, .. } => {
                if !self.answers.contains_key(message_id.as_str()) && !self.reserve_answer() {
                    return;
                }
                let a = self
                    .answers
                    .entry(message_id.as_str().into())
                    .or_insert_with(|| Answer::new(*ts));
                a.first_delta.get_or_insert(*ts);
                a.touched = a.touched.max(*ts);
                self.observe_ws_ttft(message_id);
            }
            SocketEvent::Usage {
                message_id,
                usage,
                ts,
                done,
                ..
            } => {
                let user = socket.user.clone();
                let sid = socket.sid.clone();
                if *done {
                    self.answer_done(message_id, *ts);
                }
                if !self.answers.contains_key(message_id.as_str()) && !self.reserve_answer() {
                    return;
                }
                let a = self
                    .answers
                    .entry(message_id.as_str().into())
                    .or_insert_with(|| Answer::new(*ts));
                a.touched = a.touched.max(*ts);
                if a.credited || a.usage.is_some() {
                    // Open WebUI sends each answer's usage twice (delta and done): count once.
                    self.counters.duplicate_usage += 1;
                    return;
                }
                if let (Some(req), Some(sock)) = (&a.session_id, &sid)
                    && req != sock
                {
                    self.counters.session_mismatches += 1;
                }
                match a.model {
                    Some(model) => {
                        a.credited = true;
                        self.credit_ws(&user, model, *usage);
                    }
                    None => a.usage = Some((*usage, user)),
                }
            }
            SocketEvent::Done { message_id, ts, .. } => {
                let user = socket.user.clone();
                self.answer_done(message_id, *ts);
                self.check_usage_at_done(message_id, user);
            }
        }
    }

    /// An answer is done: every usage event it had came before this (a `done` event that
    /// carries usage yields the usage first). Without any, its tokens are unknown.
    fn check_usage_at_done(&mut self, message_id: &str, user: OwnedUser) {
        let Some(a) = self.answers.get_mut(message_id) else {
            return;
        };
        if a.credited || a.usage.is_some() || a.usage_missing {
            return;
        }
        a.usage_missing = true;
        match a.model {
            Some(model) => self.count_ws_without_usage(&user, model),
            None => a.done_without_usage = Some(user),
        }
    }

    /// An answer reported `done`: its deferred completion counts now.
    pub(super) fn answer_done(&mut self, message_id: &str, ts: Timestamp) {
        if !self.answers.contains_key(message_id) && !self.reserve_answer() {
            return;
        }
        let a = self
            .answers
            .entry(message_id.into())
            .or_insert_with(|| Answer::new(ts));
        a.done = true;
        a.touched = a.touched.max(ts);
        let pending = a.completion.take();
        self.settle_completion(pending, true);
    }

    /// Settle the deferred completions of the answers of socket session `sid`.
    pub(super) fn settle_session(&mut self, sid: Option<&str>, done: bool) {
        let Some(sid) = sid else {
            return;
        };
        let pending: Vec<_> = self
            .answers
            .values_mut()
            .filter(|a| a.session_id.as_deref() == Some(sid))
            .filter_map(|a| a.completion.take())
            .collect();
        for p in pending {
            self.settle_completion(Some(p), done);
        }
    }
}
