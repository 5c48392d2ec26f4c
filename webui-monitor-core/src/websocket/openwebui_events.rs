//! Open WebUI's Socket.IO events → [`SocketEvent`]s.
//!
//! What Open WebUI 0.12 sends (see `fixtures/openwebui/browser.pcap`):
//!
//! * server `40{"sid":…}`: the namespace session id, sent back as `session_id` in completion
//!   requests → [`SocketEvent::Connected`];
//! * client `42["user-join",{"auth":{"token":<jwt>}}]`: the socket's identity →
//!   [`SocketEvent::UserJoin`]; a client connect with a token (`40{"token":<jwt>}`, socket.io's
//!   `auth` option, which Open WebUI's `connect` handler also honours) is reported the same way
//!   (the browser capture's client connects before sign-in: `40{}`);
//! * server `42["events",{"chat_id","message_id","data":{"type",…,"data":{…}}}]`:
//!   - `response:completion` with a non-empty `delta` (Responses-style text delta) or
//!     `choices[].delta.content`: the streamed answer; the first one of a message →
//!     [`SocketEvent::FirstDelta`];
//!   - `chat:completion` with `usage` → [`SocketEvent::Usage`] (sent twice per answer: alone,
//!     then with `done: true`), with `done: true` → [`SocketEvent::Done`]; older releases stream
//!     the answer as `chat:completion` with `content` or `choices[].delta.content`, which count
//!     as deltas too.
//!
//! Payloads are deserialized into borrowed, field-selective structs: everything else (prompt
//! and answer text included) is skipped by the parser and never copied or kept.
use std::{borrow::Cow, collections::VecDeque, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::value::RawValue;

use crate::{
    secret::Secret,
    segment::{Direction, Timestamp},
    usage::{RawUsage, Usage, UsageField},
    websocket::{
        SocketEvent,
        limits::{WebSocketCounters, WebSocketLimits},
        socketio::{PacketType, SocketPacket},
    },
};

/// Per-connection state: the answers whose first delta was already reported.
#[derive(Debug, Default)]
pub struct OpenWebUiEvents {
    first_delta_seen: VecDeque<Box<str>>,
}

/// `[name, first argument, …]` of a Socket.IO event; both borrow from the message.
struct EventArray<'a> {
    name: Option<&'a str>,
    arg: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for EventArray<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArrayVisitor;
        impl<'de> Visitor<'de> for ArrayVisitor {
            type Value = EventArray<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Socket.IO event array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let name = seq.next_element::<&'de str>()?;
                let arg = seq.next_element::<&'de RawValue>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(EventArray { name, arg })
            }
        }
        deserializer.deserialize_seq(ArrayVisitor)
    }
}

#[derive(Deserialize)]
struct SidPayload<'a> {
    #[serde(borrow)]
    sid: Option<Cow<'a, str>>,
}

/// Client connect payload (socket.io `auth`).
#[derive(Deserialize)]
struct ConnectAuth<'a> {
    #[serde(borrow)]
    token: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UserJoinArg<'a> {
    #[serde(borrow)]
    auth: Option<AuthArg<'a>>,
}

#[derive(Deserialize)]
struct AuthArg<'a> {
    #[serde(borrow)]
    token: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct EventsArg<'a> {
    #[serde(borrow)]
    chat_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<EventData<'a>>,
}

#[derive(Deserialize)]
struct EventData<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    /// Deferred: its shape depends on `type` (object, string, array…).
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct CompletionData {
    usage: Option<UsageJson>,
    done: Option<bool>,
    content: Option<Scalar>,
    delta: Option<Scalar>,
    choices: Option<ChoicesHaveContent>,
}

/// The usage fields of a socket answer (Open WebUI's merged usage: `prompt_tokens` and
/// `completion_tokens` of the last model call, `input_tokens`/`output_tokens` summed over the
/// reply), handed to the one normaliser ([`RawUsage`]).
#[derive(Deserialize)]
struct UsageJson {
    prompt_tokens: Option<Scalar>,
    completion_tokens: Option<Scalar>,
    input_tokens: Option<Scalar>,
    output_tokens: Option<Scalar>,
    prompt_tokens_details: Option<CachedJson>,
    input_tokens_details: Option<CachedJson>,
    completion_tokens_details: Option<ReasoningJson>,
    output_tokens_details: Option<ReasoningJson>,
    cache_read_input_tokens: Option<Scalar>,
    cache_creation_input_tokens: Option<Scalar>,
}

#[derive(Deserialize)]
struct CachedJson {
    cached_tokens: Option<Scalar>,
}

#[derive(Deserialize)]
struct ReasoningJson {
    reasoning_tokens: Option<Scalar>,
}

impl UsageJson {
    /// The normalised usage, or `None` when it names neither input nor output tokens.
    fn usage(&self) -> Option<Usage> {
        use UsageField as F;
        let get = |v: &Option<Scalar>| v.as_ref().and_then(|t| t.count);
        let fields = [
            (F::PromptTokens, get(&self.prompt_tokens)),
            (F::CompletionTokens, get(&self.completion_tokens)),
            (F::InputTokens, get(&self.input_tokens)),
            (F::OutputTokens, get(&self.output_tokens)),
            (
                F::PromptCachedTokens,
                self.prompt_tokens_details
                    .as_ref()
                    .and_then(|d| get(&d.cached_tokens)),
            ),
            (
                F::InputCachedTokens,
                self.input_tokens_details
                    .as_ref()
                    .and_then(|d| get(&d.cached_tokens)),
            ),
            (
                F::CompletionReasoningTokens,
                self.completion_tokens_details
                    .as_ref()
                    .and_then(|d| get(&d.reasoning_tokens)),
            ),
            (
                F::OutputReasoningTokens,
                self.output_tokens_details
                    .as_ref()
                    .and_then(|d| get(&d.reasoning_tokens)),
            ),
            (F::CacheReadInputTokens, get(&self.cache_read_input_tokens)),
            (
                F::CacheCreationInputTokens,
                get(&self.cache_creation_input_tokens),
            ),
        ];
        if fields[..4].iter().all(|(_, n)| n.is_none()) {
            return None;
        }
        let mut raw = RawUsage::default();
        for (field, n) in fields {
            raw.set(field, n);
        }
        raw.normalise()
    }
}

/// What the events need of a JSON value, without keeping it: its value if it is a token count
/// (a non-negative integer or integral float) and whether it is a non-empty string. Strings are
/// never copied; arrays and objects are skipped.
#[derive(Default)]
struct Scalar {
    count: Option<u64>,
    text: bool,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar {
                    count: Some(v),
                    text: false,
                })
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar {
                    count: u64::try_from(v).ok(),
                    text: false,
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                let ok = v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64;
                Ok(Scalar {
                    count: ok.then_some(v as u64),
                    text: false,
                })
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar {
                    count: None,
                    text: !v.is_empty(),
                })
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::default())
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// `choices`: true iff some `choices[i].delta.content` is a non-empty string.
#[derive(Default)]
struct ChoicesHaveContent(bool);

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<Scalar>,
}

impl<'de> Deserialize<'de> for ChoicesHaveContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoicesVisitor;
        impl<'de> Visitor<'de> for ChoicesVisitor {
            type Value = ChoicesHaveContent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut any = false;
                // No Vec: each choice is inspected and dropped.
                while let Some(choice) = seq.next_element::<Choice>()? {
                    any |= choice.delta.and_then(|d| d.content).is_some_and(|c| c.text);
                }
                Ok(ChoicesHaveContent(any))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(ChoicesHaveContent(false))
            }
        }
        deserializer.deserialize_any(ChoicesVisitor)
    }
}

impl CompletionData {
    fn carries_content(&self) -> bool {
        let text = |t: &Option<Scalar>| t.as_ref().is_some_and(|t| t.text);
        text(&self.content) || text(&self.delta) || self.choices.as_ref().is_some_and(|c| c.0)
    }
}

/// An id (sid, chat id, message id) if it fits the cap; counts the ones that do not.
fn bounded_id(
    id: Option<Cow<'_, str>>,
    limits: &WebSocketLimits,
    counters: &mut WebSocketCounters,
) -> Option<String> {
    let id = id?;
    if id.len() > limits.max_id_bytes {
        counters.ids_too_long += 1;
        return None;
    }
    Some(id.into_owned())
}

fn push_user_join(
    token: Option<Cow<'_, str>>,
    ts: Timestamp,
    limits: &WebSocketLimits,
    counters: &mut WebSocketCounters,
    out: &mut Vec<SocketEvent>,
) {
    let Some(token) = token else {
        return;
    };
    if token.is_empty() {
        return;
    }
    if token.len() > limits.max_token_bytes {
        counters.tokens_too_long += 1;
        return;
    }
    out.push(SocketEvent::UserJoin {
        token: Secret::new(token.as_bytes()),
        ts,
    });
}

fn on_client_connect(
    payload: &str,
    ts: Timestamp,
    limits: &WebSocketLimits,
    counters: &mut WebSocketCounters,
    out: &mut Vec<SocketEvent>,
) -> Result<(), serde_json::Error> {
    if payload.is_empty() {
        return Ok(());
    }
    let auth: ConnectAuth<'_> = serde_json::from_str(payload)?;
    push_user_join(auth.token, ts, limits, counters, out);
    Ok(())
}

impl OpenWebUiEvents {
    /// Handles one Socket.IO packet sent in `direction`.
    pub fn on_packet(
        &mut self,
        direction: Direction,
        packet: &SocketPacket<'_>,
        ts: Timestamp,
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
        out: &mut Vec<SocketEvent>,
    ) {
        // Open WebUI lives on the default namespace.
        if packet.namespace != "/" {
            return;
        }
        let handled = match (direction, packet.kind) {
            (Direction::Response, PacketType::Connect) => {
                self.on_connect(packet.payload, ts, limits, counters, out)
            }
            (Direction::Request, PacketType::Connect) => {
                on_client_connect(packet.payload, ts, limits, counters, out)
            }
            (_, PacketType::Event) => {
                self.on_event(direction, packet.payload, ts, limits, counters, out)
            }
            _ => Ok(()),
        };
        if handled.is_err() {
            counters.json_errors += 1;
        }
    }

    fn on_connect(
        &mut self,
        payload: &str,
        ts: Timestamp,
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
        out: &mut Vec<SocketEvent>,
    ) -> Result<(), serde_json::Error> {
        if payload.is_empty() {
            return Ok(());
        }
        let parsed: SidPayload<'_> = serde_json::from_str(payload)?;
        if let Some(sid) = bounded_id(parsed.sid, limits, counters) {
            out.push(SocketEvent::Connected { sid, ts });
        }
        Ok(())
    }

    fn on_event(
        &mut self,
        direction: Direction,
        payload: &str,
        ts: Timestamp,
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
        out: &mut Vec<SocketEvent>,
    ) -> Result<(), serde_json::Error> {
        let event: EventArray<'_> = serde_json::from_str(payload)?;
        let Some(arg) = event.arg else {
            return Ok(());
        };
        match (direction, event.name) {
            (Direction::Request, Some("user-join")) => {
                let join: UserJoinArg<'_> = serde_json::from_str(arg.get())?;
                push_user_join(join.auth.and_then(|a| a.token), ts, limits, counters, out);
            }
            (Direction::Response, Some("events")) => {
                self.on_events(arg, ts, limits, counters, out)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_events(
        &mut self,
        arg: &RawValue,
        ts: Timestamp,
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
        out: &mut Vec<SocketEvent>,
    ) -> Result<(), serde_json::Error> {
        let events: EventsArg<'_> = serde_json::from_str(arg.get())?;
        let Some(data) = events.data else {
            return Ok(());
        };
        let is_chat_completion = match data.kind.as_deref() {
            Some("chat:completion") => true,
            Some("response:completion") => false,
            _ => return Ok(()),
        };
        let Some(inner) = data.data else {
            return Ok(());
        };
        let completion: CompletionData = serde_json::from_str(inner.get())?;
        let Some(message_id) = bounded_id(events.message_id, limits, counters) else {
            return Ok(());
        };
        let chat_id = bounded_id(events.chat_id, limits, counters);
        if completion.carries_content() && self.first_delta(&message_id, limits, counters) {
            out.push(SocketEvent::FirstDelta {
                chat_id: chat_id.clone(),
                message_id: message_id.clone(),
                ts,
            });
        }
        if !is_chat_completion {
            return Ok(());
        }
        let done = completion.done == Some(true);
        if let Some(usage) = completion.usage.as_ref().and_then(UsageJson::usage) {
            out.push(SocketEvent::Usage {
                chat_id: chat_id.clone(),
                message_id: message_id.clone(),
                usage,
                done,
                ts,
            });
        }
        if done {
            out.push(SocketEvent::Done {
                chat_id,
                message_id,
                ts,
            });
        }
        Ok(())
    }

    /// True the first time `message_id` is seen (within the last `max_tracked_messages`).
    fn first_delta(
        &mut self,
        message_id: &str,
        limits: &WebSocketLimits,
        counters: &mut WebSocketCounters,
    ) -> bool {
        if self.first_delta_seen.iter().any(|m| &**m == message_id) {
            return false;
        }
        if limits.max_tracked_messages == 0 {
            return true;
        }
        while self.first_delta_seen.len() >= limits.max_tracked_messages {
            self.first_delta_seen.pop_front();
            counters.tracked_messages_evicted += 1;
        }
        self.first_delta_seen.push_back(message_id.into());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: Timestamp = Timestamp::from_secs(1_795_766_802);

    fn run(direction: Direction, text: &str) -> (Vec<SocketEvent>, WebSocketCounters) {
        let mut state = OpenWebUiEvents::default();
        let mut counters = WebSocketCounters::default();
        let mut out = Vec::new();
        let packet = SocketPacket::parse(text).unwrap();
        state.on_packet(
            direction,
            &packet,
            TS,
            &WebSocketLimits::default(),
            &mut counters,
            &mut out,
        );
        (out, counters)
    }

    #[test]
    fn connect_sid() {
        let (out, _) = run(Direction::Response, "0{\"sid\":\"ra3UWfHOjscDF_mPAAAH\"}");
        assert_eq!(
            out,
            [SocketEvent::Connected {
                sid: "ra3UWfHOjscDF_mPAAAH".into(),
                ts: TS
            }]
        );
        // The client's own connect packet carries no sid of interest.
        assert_eq!(run(Direction::Request, "0{}").0, []);
        assert_eq!(run(Direction::Request, "0").0, []);
    }

    #[test]
    fn client_connect_with_token() {
        match run(Direction::Request, "0{\"token\":\"eyJ.c.d\"}")
            .0
            .as_slice()
        {
            [SocketEvent::UserJoin { token, .. }] => assert_eq!(token.expose(), b"eyJ.c.d"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(run(Direction::Request, "0{\"token\":\"\"}").0, []);
    }

    #[test]
    fn user_join() {
        let (out, _) = run(
            Direction::Request,
            "2[\"user-join\",{\"auth\":{\"token\":\"eyJ.a.b\"}}]",
        );
        match out.as_slice() {
            [SocketEvent::UserJoin { token, ts }] => {
                assert_eq!(token.expose(), b"eyJ.a.b");
                assert_eq!(*ts, TS);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Never from the server, never from another event.
        assert_eq!(
            run(
                Direction::Response,
                "2[\"user-join\",{\"auth\":{\"token\":\"x\"}}]"
            )
            .0,
            []
        );
    }

    #[test]
    fn usage_and_done() {
        let usage = "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"m\",\"data\":{\"type\":\"chat:completion\",\"data\":{\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":19,\"total_tokens\":25,\"input_tokens\":6,\"output_tokens\":19}}}}]";
        let expected_usage = Usage::io(6, 19);
        assert_eq!(
            run(Direction::Response, usage).0,
            [SocketEvent::Usage {
                chat_id: Some("c".into()),
                message_id: "m".into(),
                usage: expected_usage,
                done: false,
                ts: TS
            }]
        );
        let done = "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"m\",\"data\":{\"type\":\"chat:completion\",\"data\":{\"done\":true,\"output\":[{\"content\":[{\"text\":\"secret answer\"}]}],\"title\":\"t\",\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":19,\"total_tokens\":25}}}}]";
        assert_eq!(
            run(Direction::Response, done).0,
            [
                SocketEvent::Usage {
                    chat_id: Some("c".into()),
                    message_id: "m".into(),
                    usage: expected_usage,
                    done: true,
                    ts: TS
                },
                SocketEvent::Done {
                    chat_id: Some("c".into()),
                    message_id: "m".into(),
                    ts: TS
                }
            ]
        );
        // Responses-style names only, no total.
        let alt = "2[\"events\",{\"message_id\":\"m\",\"data\":{\"type\":\"chat:completion\",\"data\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}}]";
        assert_eq!(
            run(Direction::Response, alt).0,
            [SocketEvent::Usage {
                chat_id: None,
                message_id: "m".into(),
                usage: Usage::io(3, 4),
                done: false,
                ts: TS
            }]
        );
    }

    /// Open WebUI's merged usage of a reply with a tool call: the reply sums (`input_tokens`,
    /// `output_tokens`) win over the last call's counts; details go through the normaliser.
    #[test]
    fn reply_sums_and_details() {
        let text = "2[\"events\",{\"message_id\":\"m\",\"data\":{\"type\":\"chat:completion\",\"data\":{\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":9,\"input_tokens\":90,\"output_tokens\":21,\"prompt_tokens_details\":{\"cached_tokens\":16},\"completion_tokens_details\":{\"reasoning_tokens\":4}}}}}]";
        assert_eq!(
            run(Direction::Response, text).0,
            [SocketEvent::Usage {
                chat_id: None,
                message_id: "m".into(),
                usage: Usage {
                    input: 90,
                    output: 21,
                    cached_input: 16,
                    reasoning: 4,
                    cache_write_input: 0,
                },
                done: false,
                ts: TS
            }]
        );
    }

    #[test]
    fn first_delta_once_per_message() {
        let mut state = OpenWebUiEvents::default();
        let mut counters = WebSocketCounters::default();
        let limits = WebSocketLimits::default();
        let mut out = Vec::new();
        let texts = [
            // Role chunk: empty content is not a delta.
            "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"m\",\"data\":{\"type\":\"response:completion\",\"data\":{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}}}]",
            "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"m\",\"data\":{\"type\":\"response:completion\",\"data\":{\"type\":\"response.output_text.delta\",\"delta\":\"Mock \"}}}]",
            "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"m\",\"data\":{\"type\":\"response:completion\",\"data\":{\"type\":\"response.output_text.delta\",\"delta\":\"reply \"}}}]",
            "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"n\",\"data\":{\"type\":\"chat:completion\",\"data\":{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}}}]",
            "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"o\",\"data\":{\"type\":\"chat:completion\",\"data\":{\"content\":\"legacy\"}}}]",
            "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"m\",\"data\":{\"type\":\"chat:title\",\"data\":\"Mock chat\"}}]",
            "2[\"events\",{\"chat_id\":\"c\",\"message_id\":\"m\",\"data\":{\"type\":\"chat:tags\",\"data\":[\"a\"]}}]",
        ];
        for (i, text) in texts.iter().enumerate() {
            let packet = SocketPacket::parse(text).unwrap();
            state.on_packet(
                Direction::Response,
                &packet,
                Timestamp::from_secs(i as u64),
                &limits,
                &mut counters,
                &mut out,
            );
        }
        let firsts: Vec<(String, u64)> = out
            .iter()
            .map(|e| match e {
                SocketEvent::FirstDelta { message_id, ts, .. } => {
                    (message_id.clone(), ts.as_secs())
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            firsts,
            [
                ("m".to_string(), 1),
                ("n".to_string(), 3),
                ("o".to_string(), 4)
            ]
        );
        assert_eq!(counters.json_errors, 0);
    }

    #[test]
    fn malformed_and_capped() {
        let (out, counters) = run(Direction::Response, "2[\"events\",{\"data\":");
        assert_eq!((out, counters.json_errors), (vec![], 1));
        let long = format!(
            "2[\"user-join\",{{\"auth\":{{\"token\":\"{}\"}}}}]",
            "a".repeat(WebSocketLimits::default().max_token_bytes + 1)
        );
        let (out, counters) = run(Direction::Request, &long);
        assert_eq!((out, counters.tokens_too_long), (vec![], 1));
        let (out, counters) = run(Direction::Response, "2[17,{}]");
        assert_eq!((out, counters.json_errors), (vec![], 1));
        let (out, counters) = run(Direction::Response, "2[]");
        assert_eq!((out, counters.json_errors), (vec![], 0));
    }
}
