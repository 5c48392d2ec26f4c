//! The JSON fields the Open WebUI semantics need, as [`JsonVisitor`]s over request and response
//! bodies.
use crate::{
    http::exchange::RequestBodyFields,
    json::{JsonValue, JsonVisitor},
    usage::Usage,
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
    /// A non-null `usage` object, with the counts found in it.
    pub usage: Option<Usage>,
    /// Ollama's native counts, top-level in its final line (or its one JSON answer):
    /// `prompt_eval_count` and `eval_count`.
    pub prompt_eval_count: Option<u64>,
    pub eval_count: Option<u64>,
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

    /// The token counts this value reported: its `usage` object, else Ollama's counts.
    ///
    /// Open WebUI's own endpoints answer Ollama models in OpenAI's shape, with the Ollama
    /// counts copied *inside* `usage` (`convert_ollama_usage_to_openai()`); only the
    /// `/ollama/api/*` proxy passes Ollama's top-level fields through. So a value never has
    /// both at the top level, and neither is counted twice.
    pub fn token_counts(&self) -> Option<Usage> {
        self.usage.or_else(|| {
            if self.prompt_eval_count.is_none() && self.eval_count.is_none() {
                return None;
            }
            let prompt_tokens = self.prompt_eval_count.unwrap_or(0);
            let completion_tokens = self.eval_count.unwrap_or(0);
            Some(Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens.saturating_add(completion_tokens),
            })
        })
    }
}

fn count(value: JsonValue<'_>) -> u64 {
    match value {
        JsonValue::Number(n) if n.is_finite() && n >= 0.0 => n as u64,
        _ => 0,
    }
}

impl JsonVisitor for ResponseVisitor {
    fn wants_string(&self, path: &[&[u8]]) -> bool {
        path == [b"done_reason".as_slice()]
    }

    fn value(&mut self, path: &[&[u8]], value: JsonValue<'_>) {
        match path {
            [] => self.object = value == JsonValue::Object,
            [b"usage"] => {
                self.usage = (value == JsonValue::Object).then(Usage::default);
            }
            [b"task_ids"] => self.has_task_ids = true,
            [b"prompt_eval_count"] => self.prompt_eval_count = Some(count(value)),
            [b"eval_count"] => self.eval_count = Some(count(value)),
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
            [b"usage", field] => {
                if let Some(u) = self.usage.as_mut() {
                    match *field {
                        b"prompt_tokens" => u.prompt_tokens = count(value),
                        b"completion_tokens" => u.completion_tokens = count(value),
                        b"total_tokens" => u.total_tokens = count(value),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}
