//! The OpenTelemetry GenAI client metrics, in their Prometheus form, so dashboards built for
//! the semantic conventions work on Open WebUI's traffic:
//!
//! | convention | Prometheus family | labels |
//! |---|---|---|
//! | `gen_ai.client.token.usage` (`{token}`) | `gen_ai_client_token_usage` | `gen_ai_operation_name`, `gen_ai_request_model`, `gen_ai_token_type` |
//! | `gen_ai.client.operation.duration` (`s`) | `gen_ai_client_operation_duration_seconds` | `gen_ai_operation_name`, `gen_ai_request_model`, `error_type` |
//!
//! Names, units and bucket boundaries are the conventions' (OpenTelemetry semantic conventions
//! 1.37, "Semantic conventions for generative AI metrics"); an attribute the conventions leave
//! out for a call is an empty label, which Prometheus treats as absent (`error_type` on a
//! successful call). There is no user label: the conventions have none, and the `openwebui_*`
//! families keep theirs.
//!
//! Token usage is observed once per answer and token type (`input`, `output`; an embedding
//! only `input`), web-UI answers included. Operation duration is observed for calls whose
//! answer travelled on their HTTP exchange — a web-UI answer goes to its socket, so its
//! exchange time is not the operation's.
use prometheus::{Histogram, HistogramOpts, HistogramVec, Registry};

use super::util::register;
use crate::openwebui::{
    fact::{Fact, FactSink, Model},
    route::ApiKind,
};

/// `gen_ai.client.token.usage`'s explicit bucket boundaries.
pub const TOKEN_USAGE_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// `gen_ai.client.operation.duration`'s explicit bucket boundaries, in seconds.
pub const OPERATION_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// The `gen_ai.operation.name` of an API: every generating API is `chat`, embeddings are
/// `embeddings`.
fn operation(api: ApiKind) -> &'static str {
    match api {
        ApiKind::Embeddings => "embeddings",
        _ => "chat",
    }
}

/// The two GenAI families.
#[derive(Debug, Clone)]
pub struct GenAiMetrics {
    pub token_usage: HistogramVec,
    pub operation_duration: HistogramVec,
}

impl GenAiMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels,
                )?,
            )
        };
        Ok(Self {
            token_usage: histogram(
                "gen_ai_client_token_usage",
                "OpenTelemetry gen_ai.client.token.usage: tokens of one model call by token type (input|output), request model and operation (chat|embeddings).",
                &[
                    "gen_ai_operation_name",
                    "gen_ai_request_model",
                    "gen_ai_token_type",
                ],
                TOKEN_USAGE_BUCKETS,
            )?,
            operation_duration: histogram(
                "gen_ai_client_operation_duration_seconds",
                "OpenTelemetry gen_ai.client.operation.duration: a model call answered over HTTP, from the request's first byte to the answer's last, by operation, request model and error_type (the HTTP status of a failed call, empty on success).",
                &[
                    "gen_ai_operation_name",
                    "gen_ai_request_model",
                    "error_type",
                ],
                OPERATION_DURATION_BUCKETS,
            )?,
        })
    }
}

/// Handles cached per model id: `[input, output]` token histograms per operation, duration by
/// (operation, error status).
#[derive(Debug, Default)]
struct ModelSeries {
    tokens: [[Option<Histogram>; 2]; 2],
    durations: Vec<((bool, u16), Histogram)>,
}

/// Applies [`Fact::Usage`] and [`Fact::ModelCall`] to the GenAI families. Models arrive
/// bounded from attribution; error statuses are HTTP's (at most 500 values), so the series
/// stay bounded.
#[derive(Debug)]
pub struct GenAiSink {
    metrics: GenAiMetrics,
    models: Vec<ModelSeries>,
}

impl GenAiSink {
    pub fn new(metrics: GenAiMetrics) -> Self {
        Self {
            metrics,
            models: Vec::new(),
        }
    }
}

/// The cached handles of `model` in `models` (indexed by model id).
fn series_of<'m>(models: &'m mut Vec<ModelSeries>, model: Model<'_>) -> &'m mut ModelSeries {
    let i = model.id as usize;
    if models.len() <= i {
        models.resize_with(i + 1, ModelSeries::default);
    }
    &mut models[i]
}

impl FactSink for GenAiSink {
    fn fact(&mut self, fact: Fact<'_>) {
        match fact {
            Fact::Usage {
                model, api, usage, ..
            } => {
                let op = operation(api);
                let embeddings = api == ApiKind::Embeddings;
                let metrics = &self.metrics.token_usage;
                let series =
                    &mut series_of(&mut self.models, model).tokens[usize::from(embeddings)];
                for (i, (kind, count)) in [("input", usage.input), ("output", usage.output)]
                    .into_iter()
                    .enumerate()
                    .take(if embeddings { 1 } else { 2 })
                {
                    series[i]
                        .get_or_insert_with(|| metrics.with_label_values(&[op, model.name, kind]))
                        .observe(count as f64);
                }
            }
            Fact::ModelCall {
                model,
                api,
                status,
                duration: Some(seconds),
                ..
            } => {
                let op = operation(api);
                let embeddings = api == ApiKind::Embeddings;
                let error = match status {
                    Some(200..=299) => 0,
                    Some(s @ 100..=599) => s,
                    _ => 1,
                };
                let metrics = &self.metrics.operation_duration;
                let series = &mut series_of(&mut self.models, model).durations;
                let key = (embeddings, error);
                let histogram = match series.iter().position(|(k, _)| *k == key) {
                    Some(i) => &series[i].1,
                    None => {
                        let mut buf = [0u8; 3];
                        let error_type = match error {
                            0 => "",
                            1 => "no_response",
                            s => status_text(s, &mut buf),
                        };
                        let h = metrics.with_label_values(&[op, model.name, error_type]);
                        series.push((key, h));
                        &series[series.len() - 1].1
                    }
                };
                histogram.observe(seconds);
            }
            Fact::ModelRetired { model } => {
                let Some(series) = self.models.get_mut(model.id as usize) else {
                    return;
                };
                let series = std::mem::take(series);
                let m = &self.metrics;
                for (embeddings, pair) in series.tokens.iter().enumerate() {
                    let op = if embeddings == 1 {
                        "embeddings"
                    } else {
                        "chat"
                    };
                    for (i, h) in pair.iter().enumerate() {
                        if h.is_some() {
                            let kind = ["input", "output"][i];
                            let _ = m.token_usage.remove_label_values(&[op, model.name, kind]);
                        }
                    }
                }
                for ((embeddings, error), _) in series.durations {
                    let op = if embeddings { "embeddings" } else { "chat" };
                    let mut buf = [0u8; 3];
                    let error_type = match error {
                        0 => "",
                        1 => "no_response",
                        s => status_text(s, &mut buf),
                    };
                    let _ = m
                        .operation_duration
                        .remove_label_values(&[op, model.name, error_type]);
                }
            }
            _ => {}
        }
    }
}

/// `status` (100–599) as three ASCII digits in `buf`.
fn status_text(status: u16, buf: &mut [u8; 3]) -> &str {
    buf[0] = b'0' + (status / 100) as u8;
    buf[1] = b'0' + (status / 10 % 10) as u8;
    buf[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buf).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        expected_check::Samples,
        openwebui::{fact::TokenSource, identity::UserRef},
        usage::Usage,
    };

    #[test]
    fn token_usage_and_duration_per_call_with_the_conventions_buckets() {
        let registry = Registry::new();
        let mut sink = GenAiSink::new(GenAiMetrics::register(&registry).unwrap());
        let user = UserRef::Id("u");
        let gpt = Model { id: 1, name: "gpt" };
        let embed = Model {
            id: 3,
            name: "embed",
        };
        let usage = |model, api, usage| Fact::Usage {
            user,
            model,
            api,
            source: TokenSource::Http,
            usage,
        };
        let call = |model, api, status, duration| Fact::ModelCall {
            user,
            model,
            api,
            status,
            duration,
            usage: None,
        };
        sink.fact(usage(gpt, ApiKind::Messages, Usage::io(100, 20)));
        sink.fact(usage(gpt, ApiKind::ChatCompletion, Usage::io(3, 5_000)));
        sink.fact(usage(embed, ApiKind::Embeddings, Usage::io(42, 0)));
        sink.fact(call(gpt, ApiKind::Responses, Some(200), Some(1.5)));
        sink.fact(call(gpt, ApiKind::Responses, Some(502), Some(0.05)));
        sink.fact(call(gpt, ApiKind::Responses, None, Some(0.5)));
        sink.fact(call(gpt, ApiKind::ChatCompletion, Some(200), None));
        sink.fact(call(embed, ApiKind::Embeddings, Some(200), Some(0.01)));

        let s = Samples::gather(&registry);
        let tokens = |model, kind, suffix| {
            s.sum(
                &format!("gen_ai_client_token_usage_{suffix}"),
                &[
                    ("gen_ai_request_model", model),
                    ("gen_ai_token_type", kind),
                    (
                        "gen_ai_operation_name",
                        if model == "embed" {
                            "embeddings"
                        } else {
                            "chat"
                        },
                    ),
                ],
            )
        };
        assert_eq!(tokens("gpt", "input", "sum"), 103.0);
        assert_eq!(tokens("gpt", "output", "sum"), 5_020.0);
        assert_eq!(tokens("gpt", "output", "count"), 2.0);
        assert_eq!(tokens("embed", "input", "count"), 1.0);
        assert_eq!(tokens("embed", "output", "count"), 0.0);
        let duration = |model, error: &str| {
            s.sum(
                "gen_ai_client_operation_duration_seconds_count",
                &[("gen_ai_request_model", model), ("error_type", error)],
            )
        };
        assert_eq!(duration("gpt", ""), 1.0);
        assert_eq!(duration("gpt", "502"), 1.0);
        assert_eq!(duration("gpt", "no_response"), 1.0);
        assert_eq!(duration("embed", ""), 1.0);
        assert_eq!(
            s.sum("gen_ai_client_operation_duration_seconds_count", &[]),
            4.0,
            "the web-UI acknowledgement has no duration"
        );
        let families = registry.gather();
        let buckets = |name: &str| -> Vec<f64> {
            let f = families.iter().find(|f| f.name() == name).unwrap();
            f.get_metric()[0]
                .get_histogram()
                .get_bucket()
                .iter()
                .map(|b| b.upper_bound())
                .collect()
        };
        assert_eq!(buckets("gen_ai_client_token_usage"), TOKEN_USAGE_BUCKETS);
        assert_eq!(
            buckets("gen_ai_client_operation_duration_seconds"),
            OPERATION_DURATION_BUCKETS
        );

        // Retired, gpt's series go; embed's stay.
        sink.fact(Fact::ModelRetired { model: gpt });
        let s = Samples::gather(&registry);
        for family in [
            "gen_ai_client_token_usage_count",
            "gen_ai_client_operation_duration_seconds_count",
        ] {
            assert_eq!(
                s.label_values(family, "gen_ai_request_model"),
                ["embed"],
                "{family}"
            );
        }
    }
}
