//! The Open WebUI fixture captures (`fixtures/openwebui/`), their `<capture>.expected.json`
//! results, and a comparison of Prometheus metrics with them. Shared by the core's unit tests,
//! its integration tests and the daemon's, which all include this file by path, so it depends
//! only on external crates.
#![allow(dead_code)]
use std::collections::HashMap;

use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::Value;

/// Captures with an expected JSON, in `fixtures/openwebui/`.
pub const CAPTURES: [&str; 5] = [
    "setup",
    "setup_model_access",
    "browser",
    "script_jwt",
    "script_apikey",
];

pub fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui")
}

pub fn expected(name: &str) -> Value {
    let text =
        std::fs::read_to_string(fixture_dir().join(format!("{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

type Sample = (String, Vec<(String, String)>, f64);

/// Samples of the text exposition.
pub struct Samples(Vec<Sample>);

impl Samples {
    pub fn gather(registry: &Registry) -> Self {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        Self::parse(&String::from_utf8(buf).unwrap())
    }

    /// Samples of a text exposition (e.g. what `replay --metrics-out` writes).
    pub fn parse(text: &str) -> Self {
        let mut out = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").unwrap();
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            out.push((name.to_string(), labels, value.parse().unwrap()));
        }
        Self(out)
    }

    /// Sum of `name` over series whose labels include all of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .iter()
            .filter(|(n, _, _)| n == name)
            .flat_map(|(_, labels, _)| {
                labels
                    .iter()
                    .filter(|(k, _)| k == label)
                    .map(|(_, v)| v.clone())
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The `auth` label an expected exchange's effective credential maps to.
pub fn auth_label(effective_credential: &str) -> &'static str {
    match effective_credential {
        "authorization/jwt" | "authorization/other" => "jwt",
        "cookie/jwt" | "cookie/other" => "cookie",
        "authorization/api_key" | "x-api-key/api_key" => "api_key",
        "none/none" => "none",
        other => panic!("unexpected credential {other}"),
    }
}

/// Check `samples` against the totals of a capture's expected JSON.
pub fn assert_matches_expected(name: &str, samples: &Samples) {
    let json = expected(name);
    let totals = &json["totals"];
    // Routes.
    for row in totals["by_method_route_status"].as_array().unwrap() {
        let status = row["status"].to_string();
        let got = samples.sum(
            "openwebui_http_requests_total",
            &[
                ("method", row["method"].as_str().unwrap()),
                ("route", row["route"].as_str().unwrap()),
                ("status", &status),
            ],
        );
        assert_eq!(got, row["count"].as_f64().unwrap(), "{name}: {row}");
    }
    assert_eq!(
        samples.sum("openwebui_http_requests_total", &[]),
        totals["exchanges"].as_f64().unwrap(),
        "{name}: exchanges"
    );
    // Per user.
    let per_user = totals["per_user"].as_object().unwrap();
    let mut users: Vec<&str> = per_user.keys().map(String::as_str).collect();
    users.sort();
    assert_eq!(
        samples.label_values("openwebui_user_requests_total", "user"),
        users,
        "{name}: user label values"
    );
    for (user, t) in per_user {
        let u = [("user", user.as_str())];
        assert_eq!(
            samples.sum("openwebui_user_requests_total", &u),
            t["requests"].as_f64().unwrap(),
            "{name} {user}"
        );
        for (cred, n) in t["by_effective_credential"].as_object().unwrap() {
            let auth = auth_label(cred);
            let mut want = n.as_f64().unwrap();
            // Several credentials can share one auth label.
            want += t["by_effective_credential"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(c, _)| *c != cred && auth_label(c) == auth)
                .map(|(_, n)| n.as_f64().unwrap())
                .sum::<f64>();
            assert_eq!(
                samples.sum(
                    "openwebui_user_requests_total",
                    &[("user", user), ("auth", auth)]
                ),
                want,
                "{name} {user} {cred}"
            );
        }
        for (dir, field) in [("request", "request_bytes"), ("response", "response_bytes")] {
            assert_eq!(
                samples.sum(
                    "openwebui_user_bytes_total",
                    &[("user", user), ("direction", dir)]
                ),
                t[field].as_f64().unwrap(),
                "{name} {user} {field}"
            );
        }
        for c in t["chat_completions"].as_array().unwrap() {
            let status = c["status"].as_u64().unwrap();
            let class = format!("{}xx", status / 100);
            let stream = c["stream"].to_string();
            assert_eq!(
                samples.sum(
                    "openwebui_chat_completions_total",
                    &[
                        ("user", user),
                        ("model", c["model"].as_str().unwrap()),
                        ("auth", c["auth"].as_str().unwrap()),
                        ("client", c["client_kind"].as_str().unwrap()),
                        ("stream", &stream),
                        ("status_class", &class),
                    ]
                ),
                c["count"].as_f64().unwrap(),
                "{name} {user} {c}"
            );
        }
        let completions: f64 = t["chat_completions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_f64().unwrap())
            .sum();
        assert_eq!(
            samples.sum("openwebui_chat_completions_total", &[("user", user)]),
            completions
        );
        for source in ["http", "websocket"] {
            for (dir, field) in [("input", "prompt"), ("output", "completion")] {
                assert_eq!(
                    samples.sum(
                        "openwebui_llm_tokens_total",
                        &[("user", user), ("source", source), ("direction", dir)]
                    ),
                    t["tokens"][source][field].as_f64().unwrap(),
                    "{name} {user} {source} {field}"
                );
            }
        }
    }
    for row in totals["tokens_by_user_model_source"].as_array().unwrap() {
        for (dir, field) in [("input", "prompt"), ("output", "completion")] {
            let f = [
                ("user", row["user"].as_str().unwrap()),
                ("model", row["model"].as_str().unwrap()),
                ("source", row["source"].as_str().unwrap()),
                ("direction", dir),
            ];
            assert_eq!(
                samples.sum("openwebui_llm_tokens_total", &f),
                row[field].as_f64().unwrap(),
                "{name} {row}"
            );
        }
    }
    // Auth results: JWT verdicts as such; no credential → anonymous; known key → verified.
    let mut results: HashMap<&str, f64> = HashMap::new();
    for e in json["exchanges"].as_array().unwrap() {
        let r = match (
            e["jwt_verdict"].as_str().unwrap(),
            e["user"].as_str().unwrap(),
        ) {
            ("n/a", "anonymous") => "anonymous",
            ("n/a", "unknown_api_key") => "unknown_api_key",
            ("n/a", _) => "verified",
            (v, _) => v,
        };
        *results.entry(r).or_default() += 1.0;
    }
    for (r, n) in results {
        assert_eq!(
            samples.sum("openwebui_auth_total", &[("result", r)]),
            n,
            "{name} auth {r}"
        );
    }
}
