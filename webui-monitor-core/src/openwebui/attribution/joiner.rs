//! The answer joiner: each web-UI answer, keyed by its message id, joined to the completion
//! request whose body `id` names it, whichever arrives first.
//!
//! The web UI posts a completion over HTTP (its 2xx only means "task accepted") and receives
//! the answer on its socket: a first delta, usage (sent twice, alone and with `done`), `done`.
//! The request names the model; the socket names the user and carries the tokens. An answer's
//! life is four independent small machines, each an enum:
//!
//! ```text
//! join:        Awaiting ──request──▶ Joined{model, request_end, session}
//! tokens:      Awaited ──usage──▶ Credited              (joined: credited at once)
//!                 │       └─────▶ Held(usage, user) ──request──▶ Credited
//!                 └──done──▶ Missing                    (joined: counted at once)
//!                     └────▶ MissingHeld(user) ──request──▶ Missing
//! completion:  Open ──request(deferred)──▶ Deferred ──done──▶ Done (counted with its HTTP class)
//!                 └──done──▶ Done ──request(deferred)──▶ Done (counted at once)
//! first token: Awaited ──delta──▶ Seen(ts) ──joined──▶ Observed
//! ```
//!
//! Expiry (TTL or end of input) credits what is held to model `unknown` and counts a deferred
//! completion as `incomplete`. The joiner emits [`Step`]s; the attributor turns them into facts.
use std::mem;

use super::CompletionLabels;
use crate::{
    openwebui::{
        fast_map::{FastMap, entry_within},
        identity::OwnedUser,
        labels::MODEL_UNKNOWN,
    },
    segment::Timestamp,
    usage::Usage,
};

/// A web-UI completion counted only once its answer is done: who, under which labels.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Deferred {
    pub(super) user: OwnedUser,
    pub(super) labels: CompletionLabels,
}

/// What the joiner concluded, in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// An answer's usage, for `user` under `model`.
    Credit {
        user: OwnedUser,
        model: u32,
        usage: Usage,
    },
    /// An answer was done without any usage.
    WithoutUsage { user: OwnedUser, model: u32 },
    /// Count a deferred completion: `done` (its HTTP class) or not (`incomplete`).
    Settle { completion: Deferred, done: bool },
    /// Time to first token of a joined answer.
    FirstToken { model: u32, seconds: f64 },
    /// A usage event of an answer already credited or held (Open WebUI sends each twice).
    DuplicateUsage,
    /// The request's `session_id` differs from the sid of the socket that carried the usage.
    SessionMismatch,
    /// Held usage expired before its request: credited to model `unknown` next.
    Unjoined,
    /// A new answer was not remembered: `max_pending_answers` reached.
    Dropped,
}

/// Whether the completion request has been seen.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Join {
    Awaiting,
    Joined {
        model: u32,
        /// The request's last byte: where time to first token starts.
        request_end: Timestamp,
        session: Option<Box<str>>,
    },
}

/// What is known of the answer's token counts.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tokens {
    /// No usage yet, not done.
    Awaited,
    /// Usage before the request named the model, with the socket's user at the time.
    Held(Usage, OwnedUser),
    /// Usage credited; later usage events are duplicates.
    Credited,
    /// Done without usage before the request named the model: whom to count it for.
    MissingHeld(OwnedUser),
    /// Done without usage, counted.
    Missing,
}

/// The deferred web-UI completion.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Completion {
    /// Nothing deferred (none yet, not deferred, or settled when its socket went away).
    Open,
    /// Waiting for the answer's `done`.
    Deferred(Deferred),
    /// The answer reported `done`: a deferred completion arriving now counts at once.
    Done,
}

/// Time to first token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FirstToken {
    Awaited,
    /// The first delta's time, waiting for the request's end.
    Seen(Timestamp),
    Observed,
}

/// One web-UI answer while its request, usage and `done` are being joined.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Answer {
    pub(super) join: Join,
    pub(super) tokens: Tokens,
    pub(super) completion: Completion,
    pub(super) first_token: FirstToken,
    /// Latest traffic time of any of its events (expiry counts from here).
    pub(super) touched: Timestamp,
}

impl Answer {
    fn new(ts: Timestamp) -> Self {
        Self {
            join: Join::Awaiting,
            tokens: Tokens::Awaited,
            completion: Completion::Open,
            first_token: FirstToken::Awaited,
            touched: ts,
        }
    }

    /// The answer is done: its deferred completion counts now.
    fn finish(&mut self, out: &mut impl FnMut(Step)) {
        if let Completion::Deferred(completion) =
            mem::replace(&mut self.completion, Completion::Done)
        {
            out(Step::Settle {
                completion,
                done: true,
            });
        }
    }

    fn observe_first_token(&mut self, out: &mut impl FnMut(Step)) {
        if let (
            FirstToken::Seen(first),
            Join::Joined {
                model, request_end, ..
            },
        ) = (self.first_token, &self.join)
        {
            self.first_token = FirstToken::Observed;
            out(Step::FirstToken {
                model: *model,
                seconds: first.seconds_since(*request_end),
            });
        }
    }
}

/// The pending answers, at most `max` of them.
#[derive(Debug)]
pub(super) struct Joiner {
    answers: FastMap<Box<str>, Answer>,
    max: usize,
}

impl Joiner {
    pub(super) fn new(max: usize) -> Self {
        Self {
            answers: FastMap::default(),
            max,
        }
    }

    /// A new cap for answers not yet remembered; those already remembered stay.
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.answers.len()
    }

    #[cfg(test)]
    pub(super) fn get(&self, message_id: &str) -> Option<&Answer> {
        self.answers.get(message_id)
    }

    /// The answer of `message_id`, remembered from `ts` on if there is room.
    fn answer(
        &mut self,
        message_id: &str,
        ts: Timestamp,
        out: &mut impl FnMut(Step),
    ) -> Option<&mut Answer> {
        let Some(answer) =
            entry_within(&mut self.answers, message_id, self.max, || Answer::new(ts))
        else {
            out(Step::Dropped);
            return None;
        };
        answer.touched = answer.touched.max(ts);
        Some(answer)
    }

    /// A web-UI completion request for answer `message_id` ended at `request_end`.
    /// `deferred`: its completion, when it is to be counted at the answer's `done`.
    pub(super) fn request(
        &mut self,
        message_id: &str,
        model: u32,
        request_end: Timestamp,
        session: Option<&str>,
        deferred: Option<Deferred>,
        out: &mut impl FnMut(Step),
    ) {
        let Some(a) = self.answer(message_id, request_end, out) else {
            // Not remembered: count the completion now rather than lose it.
            if let Some(completion) = deferred {
                out(Step::Settle {
                    completion,
                    done: true,
                });
            }
            return;
        };
        a.join = Join::Joined {
            model,
            request_end,
            session: session.map(Into::into),
        };
        match mem::replace(&mut a.tokens, Tokens::Awaited) {
            Tokens::Held(usage, user) => {
                out(Step::Credit { user, model, usage });
                a.tokens = Tokens::Credited;
            }
            Tokens::MissingHeld(user) => {
                out(Step::WithoutUsage { user, model });
                a.tokens = Tokens::Missing;
            }
            other => a.tokens = other,
        }
        match (&a.completion, deferred) {
            (Completion::Done, Some(completion)) => out(Step::Settle {
                completion,
                done: true,
            }),
            (Completion::Done, None) => {}
            (_, deferred) => a.completion = deferred.map_or(Completion::Open, Completion::Deferred),
        }
        a.observe_first_token(out);
    }

    /// The answer's first streamed delta.
    pub(super) fn first_delta(
        &mut self,
        message_id: &str,
        ts: Timestamp,
        out: &mut impl FnMut(Step),
    ) {
        let Some(a) = self.answer(message_id, ts, out) else {
            return;
        };
        if a.first_token == FirstToken::Awaited {
            a.first_token = FirstToken::Seen(ts);
        }
        a.observe_first_token(out);
    }

    /// Usage of answer `message_id` on a socket of `user` with Socket.IO sid `sid`; `done`
    /// when the event also reports the answer done.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn usage(
        &mut self,
        message_id: &str,
        usage: Usage,
        user: &OwnedUser,
        sid: Option<&str>,
        done: bool,
        ts: Timestamp,
        out: &mut impl FnMut(Step),
    ) {
        let Some(a) = self.answer(message_id, ts, out) else {
            return;
        };
        if done {
            a.finish(out);
        }
        if matches!(a.tokens, Tokens::Held(..) | Tokens::Credited) {
            out(Step::DuplicateUsage);
            return;
        }
        match &a.join {
            Join::Joined { model, session, .. } => {
                if let (Some(request), Some(socket)) = (session.as_deref(), sid)
                    && request != socket
                {
                    out(Step::SessionMismatch);
                }
                out(Step::Credit {
                    user: user.clone(),
                    model: *model,
                    usage,
                });
                a.tokens = Tokens::Credited;
            }
            Join::Awaiting => a.tokens = Tokens::Held(usage, user.clone()),
        }
    }

    /// Answer `message_id` reported `done` on a socket of `user`. Every usage event it had
    /// came before this, so without any its tokens are unknown.
    pub(super) fn done(
        &mut self,
        message_id: &str,
        user: &OwnedUser,
        ts: Timestamp,
        out: &mut impl FnMut(Step),
    ) {
        let Some(a) = self.answer(message_id, ts, out) else {
            return;
        };
        a.finish(out);
        if a.tokens == Tokens::Awaited {
            a.tokens = match a.join {
                Join::Joined { model, .. } => {
                    out(Step::WithoutUsage {
                        user: user.clone(),
                        model,
                    });
                    Tokens::Missing
                }
                Join::Awaiting => Tokens::MissingHeld(user.clone()),
            };
        }
    }

    /// The socket of session `sid` is gone (or undecodable): settle its answers' deferred
    /// completions, as `done` (keeping their HTTP class) or not.
    pub(super) fn settle_session(&mut self, sid: &str, done: bool, out: &mut impl FnMut(Step)) {
        for a in self.answers.values_mut() {
            let Join::Joined {
                session: Some(session),
                ..
            } = &a.join
            else {
                continue;
            };
            if **session != *sid || !matches!(a.completion, Completion::Deferred(_)) {
                continue;
            }
            if let Completion::Deferred(completion) =
                mem::replace(&mut a.completion, Completion::Open)
            {
                out(Step::Settle { completion, done });
            }
        }
    }

    /// Forget answers untouched for `ttl_nanos` before `now` (every answer when `all`): held
    /// usage goes to model `unknown`, a deferred completion counts as `incomplete`.
    pub(super) fn expire(
        &mut self,
        now: Timestamp,
        ttl_nanos: u64,
        all: bool,
        out: &mut impl FnMut(Step),
    ) {
        let stale =
            |a: &Answer| all || a.touched.as_nanos().saturating_add(ttl_nanos) <= now.as_nanos();
        for (_, a) in self.answers.extract_if(|_, a| stale(a)) {
            match a.tokens {
                Tokens::Held(usage, user) => {
                    out(Step::Unjoined);
                    out(Step::Credit {
                        user,
                        model: MODEL_UNKNOWN,
                        usage,
                    });
                }
                Tokens::MissingHeld(user) => out(Step::WithoutUsage {
                    user,
                    model: MODEL_UNKNOWN,
                }),
                _ => {}
            }
            if let Completion::Deferred(completion) = a.completion {
                out(Step::Settle {
                    completion,
                    done: false,
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "joiner_tests.rs"]
mod tests;
