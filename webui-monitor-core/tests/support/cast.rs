//! The users of the hostile-traffic tests (`hostile_http.rs`, `hostile_tcp.rs`): two honest
//! users and an attacker, each with an API key in one Open WebUI directory, and the messages
//! they exchange with Open WebUI.
#![allow(dead_code)]
use std::sync::Arc;

use webui_monitor_core::openwebui::{Directory, UserRecord};

pub const ALICE: &str = "aaaaaaaa-1111-4111-8111-111111111111";
pub const BOB: &str = "bbbbbbbb-2222-4222-8222-222222222222";
pub const MALLORY: &str = "cccccccc-3333-4333-8333-333333333333";
pub const ALICE_KEY: &str = "sk-alice0000000000000000000000001";
pub const BOB_KEY: &str = "sk-bob000000000000000000000000002";
pub const MALLORY_KEY: &str = "sk-mallory0000000000000000000003";

/// Open WebUI's users and keys: Alice, Bob and Mallory.
pub fn directory() -> Arc<Directory> {
    let mut d = Directory::default();
    for (id, key, name) in [
        (ALICE, ALICE_KEY, "Alice"),
        (BOB, BOB_KEY, "Bob"),
        (MALLORY, MALLORY_KEY, "Mallory"),
    ] {
        d.insert_key(key.as_bytes(), id);
        d.insert_user(
            id,
            UserRecord {
                name: name.into(),
                email: format!("{name}@example.com"),
                role: "user".into(),
            },
        );
    }
    Arc::new(d)
}

/// A completion request with API key `key`; `extra` header lines go before Content-Length.
pub fn completion_with(key: &str, extra: &str) -> Vec<u8> {
    let body = r#"{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}"#;
    format!(
        "POST /api/chat/completions HTTP/1.1\r\nHost: owui\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Open WebUI's answer to a completion, with its token counts.
pub fn answer(prompt: u64, completion: u64) -> Vec<u8> {
    let body = format!(
        r#"{{"id":"c","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}}}}],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}}}"#,
        prompt + completion
    );
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
