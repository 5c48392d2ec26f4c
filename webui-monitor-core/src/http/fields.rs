//! The JSON fields the Open WebUI semantics need, as [`JsonVisitor`]s over request and response
//! bodies.
use crate::{
    http::exchange::RequestBodyFields,
    json::{JsonValue, JsonVisitor},
    usage::{RawUsage, Usage, UsageField},
};

fn is(path: &[&[u8]], key: &[u8]) -> bool {
    path.len() == 1 && path[0] == key
}

fn owned(value: JsonValue<'_>) -> Option<String> {
    match value {
        JsonValue::String { value, .. } => Some(value.to_owned()),
        JsonValue::Number(n) => Some(n.to_string()),
        JsonValue::Bool(b) => Some(b.to_string()),
        // A non-null value we do not keep (object, array, uncaptured string).
        JsonValue::SkippedString | JsonValue::Object | JsonValue::Array => Some(String::new()),
        JsonValue::Null => None,
    }
}

/// Top-level fields of a chat completion request.
#[derive(Debug, Default)]
pub struct RequestVisitor {
    pub fields: RequestBodyFields,
    /// The root value is an object.
    pub object: bool,
}

impl JsonVisitor for RequestVisitor {
    fn wants_string(&self, path: &[&[u8]]) -> bool {
        path.len() == 1 && matches!(path[0], b"model" | b"session_id" | b"chat_id" | b"id")
    }

    fn value(&mut self, path: &[&[u8]], value: JsonValue<'_>) {
        if path.is_empty() {
            self.object = value == JsonValue::Object;
            return;
        }
        let f = &mut self.fields;
        if is(path, b"model") {
            f.model = match value {
                JsonValue::String { value, .. } => Some(value.to_owned()),
                _ => None,
            };
        } else if is(path, b"stream") {
            f.stream = match value {
                JsonValue::Bool(b) => Some(b),
                _ => None,
            };
        } else if is(path, b"session_id") {
            f.session_id = Some(owned(value));
        } else if is(path, b"chat_id") {
            f.chat_id = Some(owned(value));
        } else if is(path, b"id") {
            f.id = match value {
                JsonValue::String { value, .. } => Some(value.to_owned()),
                _ => None,
            };
        } else if is(path, b"messages") {
            f.has_messages = true;
        }
    }
}

/// `usage` and `task_ids` of a JSON response, of one SSE event or of one NDJSON line.
#[derive(Debug, Default)]
pub struct ResponseVisitor {
    /// The usage fields found: in a non-null `usage` object (top-level: OpenAI chat, Anthropic
    /// answers and `message_delta`, Responses answers; `message.usage`: Anthropic's
    /// `message_start`; `response.usage`: the Responses stream's `response.completed`), and
    /// Ollama's native counts, top-level in its final line (or its one JSON answer):
    /// `prompt_eval_count` and `eval_count`.
    pub raw: RawUsage,
    /// A top-level `"done": true` (Ollama's last line).
    pub done: bool,
    /// A top-level `"done_reason"` of `load` or `unload`: Ollama loaded or unloaded the model
    /// (a request without prompt or messages) and generated nothing.
    pub model_load: bool,
    pub has_task_ids: bool,
    pub object: bool,
}

impl ResponseVisitor {
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The token counts this value reported, normalised ([`RawUsage::normalise`]).
    pub fn token_counts(&self) -> Option<Usage> {
        self.raw.normalise()
    }
}

fn count(value: JsonValue<'_>) -> u64 {
    match value {
        JsonValue::Number(n) if n.is_finite() && n >= 0.0 => n as u64,
        _ => 0,
    }
}

/// The rest of `path` inside a usage object, if `path` is in one.
fn in_usage<'p>(path: &'p [&'p [u8]]) -> Option<&'p [&'p [u8]]> {
    match path {
        [b"usage", rest @ ..] | [b"message" | b"response", b"usage", rest @ ..] => Some(rest),
        _ => None,
    }
}

impl JsonVisitor for ResponseVisitor {
    fn wants_string(&self, path: &[&[u8]]) -> bool {
        path == [b"done_reason".as_slice()]
    }

    fn value(&mut self, path: &[&[u8]], value: JsonValue<'_>) {
        if let Some(rest) = in_usage(path) {
            if rest.is_empty() {
                if value == JsonValue::Object {
                    self.raw.present = true;
                }
            } else if let Some(field) = UsageField::of(rest) {
                self.raw.set(field, Some(count(value)));
            }
            return;
        }
        match path {
            [] => self.object = value == JsonValue::Object,
            [b"task_ids"] => self.has_task_ids = true,
            [b"prompt_eval_count"] => self.raw.prompt_eval_count = Some(count(value)),
            [b"eval_count"] => self.raw.eval_count = Some(count(value)),
            [b"done"] => self.done = value == JsonValue::Bool(true),
            [b"done_reason"] => {
                self.model_load = matches!(
                    value,
                    JsonValue::String {
                        value: "load" | "unload",
                        ..
                    }
                );
            }
            _ => {}
        }
    }
}
