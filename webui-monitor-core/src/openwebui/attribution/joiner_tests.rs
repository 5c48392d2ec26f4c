//! One case each: a few events into a [`Joiner`], then the answer's state and the steps out.
use super::*;
use crate::openwebui::{
    attribution::CompletionLabels,
    identity::Special,
    labels::{Auth, Client, StatusClass},
};

const MSG: &str = "m1";
const MOCK: u32 = 2;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn alice() -> OwnedUser {
    OwnedUser::Id("alice".into())
}

fn usage(prompt: u64, completion: u64) -> Usage {
    Usage::io(prompt, completion)
}

fn deferred() -> Deferred {
    Deferred {
        user: alice(),
        labels: CompletionLabels {
            api: crate::openwebui::ApiKind::ChatCompletion,
            model: MOCK,
            auth: Auth::Jwt,
            client: Client::Webui,
            stream: true,
            status: StatusClass::Success,
        },
    }
}

fn joined(secs: u64) -> Join {
    Join::Joined {
        model: MOCK,
        request_end: at(secs),
        session: Some("sid".into()),
    }
}

/// A joiner with room for `max` answers, and the steps it emitted.
struct Case {
    j: Joiner,
    steps: Vec<Step>,
}

impl Case {
    fn new(max: usize) -> Self {
        Self {
            j: Joiner::new(max),
            steps: Vec::new(),
        }
    }
    fn request(&mut self, secs: u64, deferred: Option<Deferred>) {
        let out = &mut |s| self.steps.push(s);
        self.j
            .request(MSG, MOCK, at(secs), Some("sid"), deferred, out);
    }
    fn delta(&mut self, secs: u64) {
        self.j
            .first_delta(MSG, at(secs), &mut |s| self.steps.push(s));
    }
    fn usage(&mut self, u: Usage, done: bool, secs: u64) {
        let out = &mut |s| self.steps.push(s);
        self.j
            .usage(MSG, u, &alice(), Some("sid"), done, at(secs), out);
    }
    fn done(&mut self, secs: u64) {
        self.j
            .done(MSG, &alice(), at(secs), &mut |s| self.steps.push(s));
    }
    fn state(&self) -> Option<&Answer> {
        self.j.get(MSG)
    }
    fn take(&mut self) -> Vec<Step> {
        std::mem::take(&mut self.steps)
    }
}

#[test]
fn request_then_usage_credits_at_once_and_counts_the_duplicate() {
    let mut c = Case::new(8);
    c.request(1, Some(deferred()));
    c.usage(usage(6, 19), false, 2);
    c.usage(usage(6, 19), true, 2);
    assert_eq!(
        c.state(),
        Some(&Answer {
            join: joined(1),
            tokens: Tokens::Credited,
            completion: Completion::Done,
            first_token: FirstToken::Awaited,
            touched: at(2),
        })
    );
    assert_eq!(
        c.take(),
        [
            Step::Credit {
                user: alice(),
                model: MOCK,
                usage: usage(6, 19)
            },
            Step::Settle {
                completion: deferred(),
                done: true
            },
            Step::DuplicateUsage,
        ]
    );
}

#[test]
fn usage_before_request_is_held_then_credited_to_the_requests_model() {
    let mut c = Case::new(8);
    c.usage(usage(31, 19), true, 1);
    assert_eq!(
        c.state(),
        Some(&Answer {
            join: Join::Awaiting,
            tokens: Tokens::Held(usage(31, 19), alice()),
            completion: Completion::Done,
            first_token: FirstToken::Awaited,
            touched: at(1),
        })
    );
    assert_eq!(c.take(), []);
    c.request(2, Some(deferred()));
    assert_eq!(c.state().map(|a| &a.tokens), Some(&Tokens::Credited));
    assert_eq!(
        c.take(),
        [
            Step::Credit {
                user: alice(),
                model: MOCK,
                usage: usage(31, 19)
            },
            // Done before its request: the deferred completion counts at once.
            Step::Settle {
                completion: deferred(),
                done: true
            },
        ]
    );
}

#[test]
fn done_without_usage_before_request_waits_for_the_model() {
    let mut c = Case::new(8);
    c.done(1);
    assert_eq!(
        c.state().map(|a| (&a.tokens, &a.completion)),
        Some((&Tokens::MissingHeld(alice()), &Completion::Done))
    );
    c.request(2, None);
    c.done(3);
    assert_eq!(c.state().map(|a| &a.tokens), Some(&Tokens::Missing));
    assert_eq!(
        c.take(),
        [Step::WithoutUsage {
            user: alice(),
            model: MOCK
        }]
    );
}

#[test]
fn first_delta_before_request_is_observed_once_joined() {
    let mut c = Case::new(8);
    c.delta(5);
    assert_eq!(
        c.state().map(|a| a.first_token),
        Some(FirstToken::Seen(at(5)))
    );
    c.request(3, None);
    c.delta(6);
    assert_eq!(c.state().map(|a| a.first_token), Some(FirstToken::Observed));
    assert_eq!(
        c.take(),
        [Step::FirstToken {
            model: MOCK,
            seconds: 2.0
        }]
    );
}

#[test]
fn closed_session_settles_its_deferred_completion_as_not_done() {
    let mut c = Case::new(8);
    c.request(1, Some(deferred()));
    assert_eq!(
        c.state().map(|a| &a.completion),
        Some(&Completion::Deferred(deferred()))
    );
    c.j.settle_session("other-sid", false, &mut |s| c.steps.push(s));
    assert_eq!(c.take(), []);
    c.j.settle_session("sid", false, &mut |s| c.steps.push(s));
    assert_eq!(c.state().map(|a| &a.completion), Some(&Completion::Open));
    assert_eq!(
        c.take(),
        [Step::Settle {
            completion: deferred(),
            done: false
        }]
    );
}

#[test]
fn expiry_credits_held_usage_to_unknown_and_forgets_the_answer() {
    let mut c = Case::new(8);
    c.usage(usage(1, 2), false, 1);
    c.j.expire(at(100), 10_000_000_000, false, &mut |s| c.steps.push(s));
    assert_eq!(c.state(), None);
    assert_eq!(
        c.take(),
        [
            Step::Unjoined,
            Step::Credit {
                user: alice(),
                model: MODEL_UNKNOWN,
                usage: usage(1, 2)
            },
        ]
    );
}

#[test]
fn expiry_counts_a_deferred_completion_as_incomplete() {
    let mut c = Case::new(8);
    c.request(1, Some(deferred()));
    c.j.expire(at(2), u64::MAX, true, &mut |s| c.steps.push(s));
    assert_eq!(
        c.take(),
        [Step::Settle {
            completion: deferred(),
            done: false
        }]
    );
}

#[test]
fn a_full_joiner_counts_a_new_request_at_once_and_remembers_nothing() {
    let mut c = Case::new(0);
    c.request(1, Some(deferred()));
    c.usage(usage(1, 2), true, 2);
    assert_eq!(c.state(), None);
    assert_eq!(c.j.len(), 0);
    assert_eq!(
        c.take(),
        [
            Step::Dropped,
            Step::Settle {
                completion: deferred(),
                done: true
            },
            Step::Dropped,
        ]
    );
}

#[test]
fn usage_on_another_sessions_socket_is_credited_and_noticed() {
    let mut c = Case::new(8);
    c.request(1, None);
    let user = OwnedUser::Special(Special::Invalid);
    c.j.usage(
        MSG,
        usage(1, 1),
        &user,
        Some("s2"),
        false,
        at(2),
        &mut |s| c.steps.push(s),
    );
    assert_eq!(
        c.take(),
        [
            Step::SessionMismatch,
            Step::Credit {
                user,
                model: MOCK,
                usage: usage(1, 1)
            },
        ]
    );
}
