//! [`Emit`]: the attributor's conclusions turned into facts, with the model names and traffic
//! time they need, over fields borrowed apart from the joiner and the sockets.
use super::{
    CompletionLabels, SemanticsCounters,
    joiner::{Deferred, Step},
};
use crate::{
    openwebui::{
        fact::{Fact, FactSink, Limit, Model, TokenDetail, TokenDirection, TokenSource},
        identity::UserRef,
        labels::{ModelTable, StatusClass},
        route::ApiKind,
    },
    segment::Timestamp,
    usage::Usage,
};

/// Where the attributor's conclusions go, with what facts need besides themselves: model
/// names and traffic time. Borrows the attributor's fields apart from the joiner and sockets.
pub(super) struct Emit<'x, S: FactSink + ?Sized> {
    pub(super) models: &'x ModelTable,
    pub(super) counters: &'x mut SemanticsCounters,
    pub(super) clock: Timestamp,
    pub(super) sink: &'x mut S,
}

impl<'x, S: FactSink + ?Sized> Emit<'x, S> {
    pub(super) fn model(&self, id: u32) -> Model<'x> {
        Model {
            id,
            name: self.models.name(id),
        }
    }

    pub(super) fn tokens(
        &mut self,
        user: UserRef<'_>,
        model: u32,
        api: ApiKind,
        source: TokenSource,
        usage: Usage,
    ) {
        let model = Model {
            id: model,
            name: self.models.name(model),
        };
        for (direction, count) in [
            (TokenDirection::Input, usage.input),
            (TokenDirection::Output, usage.output),
        ] {
            self.sink.fact(Fact::Tokens {
                user,
                model,
                direction,
                source,
                count,
            });
        }
        for (kind, count) in [
            (TokenDetail::CachedInput, usage.cached_input),
            (TokenDetail::Reasoning, usage.reasoning),
        ] {
            if count > 0 {
                self.sink.fact(Fact::TokenDetail {
                    user,
                    model,
                    kind,
                    source,
                    count,
                });
            }
        }
        self.sink.fact(Fact::Usage {
            user,
            model,
            api,
            source,
            usage,
        });
    }

    /// Count one chat completion under `labels`.
    pub(super) fn completion(&mut self, user: UserRef<'_>, labels: CompletionLabels) {
        let at = self.clock;
        self.sink.fact(Fact::UserSeen { user, at });
        let model = Model {
            id: labels.model,
            name: self.models.name(labels.model),
        };
        self.sink.fact(Fact::Completion {
            user,
            model,
            api: labels.api,
            auth: labels.auth,
            client: labels.client,
            stream: labels.stream,
            status: labels.status,
        });
    }

    pub(super) fn limit_hit(&mut self, limit: Limit) {
        self.sink.fact(Fact::LimitHit(limit));
    }

    /// Turn one of the joiner's conclusions into facts.
    pub(super) fn step(&mut self, step: Step) {
        let at = self.clock;
        match step {
            Step::Credit { user, model, usage } => {
                let user = user.as_ref();
                self.sink.fact(Fact::UserSeen { user, at });
                // The web UI asks through `/api/chat/completions`.
                let api = ApiKind::ChatCompletion;
                self.tokens(user, model, api, TokenSource::Websocket, usage);
            }
            Step::WithoutUsage { user, model } => {
                let user = user.as_ref();
                self.sink.fact(Fact::UserSeen { user, at });
                let model = self.model(model);
                self.sink.fact(Fact::CompletionWithoutUsage {
                    user,
                    model,
                    source: TokenSource::Websocket,
                });
            }
            Step::Settle {
                completion: Deferred { user, mut labels },
                done,
            } => {
                if !done {
                    labels.status = StatusClass::Incomplete;
                }
                self.completion(user.as_ref(), labels);
            }
            Step::FirstToken { model, seconds } => {
                let model = self.model(model);
                self.sink.fact(Fact::FirstToken { model, seconds });
            }
            Step::DuplicateUsage => self.counters.duplicate_usage += 1,
            Step::SessionMismatch => self.counters.session_mismatches += 1,
            Step::Unjoined => self.counters.unjoined_answers += 1,
            Step::Dropped => {
                self.counters.pending_answers_dropped += 1;
                self.limit_hit(Limit::MaxPendingAnswers);
            }
        }
    }
}

/// Split `$a` (an `&mut Attributor`) into its joiner, its sockets and an [`Emit`] over `$sink`.
macro_rules! split {
    ($a:expr, $sink:expr) => {
        (
            &mut $a.joiner,
            &mut $a.sockets,
            Emit {
                models: &$a.models,
                counters: &mut $a.counters,
                clock: $a.clock,
                sink: $sink,
            },
        )
    };
}

pub(super) use split;
