//! What tokens cost: per-model prices in one currency, and the cost of one answer's [`Usage`].
//!
//! Prices are per million tokens, as providers publish them. A model's cached-input,
//! cache-write and reasoning prices are optional: cached and cache-written input cost the input
//! price unless given, reasoning the output price (how OpenAI and Anthropic bill them). Models
//! are found by their exact name (the `model` label), directly or through an alias; a model
//! without a price costs nothing here and is counted as unpriced by the metrics sink, never
//! guessed from a similar name.
//!
//! [`Prices::from_litellm_json`] reads the model-price map LiteLLM publishes
//! (`model_prices_and_context_window.json`: USD per token, keys `input_cost_per_token`,
//! `output_cost_per_token`, `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
//! `output_cost_per_reasoning_token`).
use std::collections::HashMap;

use serde::Deserialize;

use crate::usage::Usage;

/// The prices of one model, in the table's currency per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Input tokens not read from or written to a cache.
    pub input: f64,
    /// Output tokens (reasoning included unless `reasoning` is given).
    pub output: f64,
    /// Input read from a prompt cache (default: `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Input written to a prompt cache (default: `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input: Option<f64>,
    /// Output spent reasoning (default: `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

impl ModelPrice {
    /// What `usage` costs. Each part of the input and output is priced once: the cached and
    /// cache-written parts of `input` and the reasoning part of `output` at their own prices,
    /// the rest at the plain ones.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input.min(usage.input);
        let written = usage.cache_write_input.min(usage.input - cached);
        let plain_input = usage.input - cached - written;
        let reasoning = usage.reasoning.min(usage.output);
        let plain_output = usage.output - reasoning;
        let per_million = plain_input as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + written as f64 * self.cache_write_input.unwrap_or(self.input)
            + plain_output as f64 * self.output
            + reasoning as f64 * self.reasoning.unwrap_or(self.output);
        per_million / 1e6
    }

    /// Every price is a finite number ≥ 0.
    pub fn is_valid(&self) -> bool {
        [
            Some(self.input),
            Some(self.output),
            self.cached_input,
            self.cache_write_input,
            self.reasoning,
        ]
        .into_iter()
        .flatten()
        .all(|p| p.is_finite() && p >= 0.0)
    }
}

/// The price table: models by exact name, and aliases naming another model's prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    /// ISO 4217 code of every price (`USD`).
    pub currency: String,
    models: HashMap<String, ModelPrice>,
    aliases: HashMap<String, String>,
}

/// Why a LiteLLM price map was refused.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error(
        "not LiteLLM's model-price map ({0}): expected a JSON object of models, each with input_cost_per_token and output_cost_per_token"
    )]
    Json(#[from] serde_json::Error),
    #[error(
        "model {model:?} has a negative or non-finite price: correct it in the price map or override it in [pricing.models]"
    )]
    BadPrice { model: String },
}

/// One entry of LiteLLM's map (USD per token). Entries without both base prices (such as
/// `sample_spec`, or image models priced per image) are skipped.
#[derive(Debug, Deserialize)]
struct LiteLlmEntry {
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
    cache_read_input_token_cost: Option<f64>,
    cache_creation_input_token_cost: Option<f64>,
    output_cost_per_reasoning_token: Option<f64>,
}

impl Prices {
    /// An empty table in `currency`.
    pub fn new(currency: impl Into<String>) -> Self {
        Self {
            currency: currency.into(),
            ..Self::default()
        }
    }

    /// Sets `model`'s prices (replacing any).
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.models.insert(model.into(), price);
    }

    /// Prices `model` as `priced` (a model of the table).
    pub fn alias(&mut self, model: impl Into<String>, priced: impl Into<String>) {
        self.aliases.insert(model.into(), priced.into());
    }

    /// Models with a price of their own.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Whether `model` has prices of its own.
    pub fn contains(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// `model`'s prices: its own, else its alias's.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models
            .get(model)
            .or_else(|| self.models.get(self.aliases.get(model)?))
    }

    /// Adds every model of LiteLLM's price map `json` (USD per token) that has no price yet,
    /// converted to USD per million tokens. Returns how many were added.
    pub fn add_litellm_json(&mut self, json: &str) -> Result<usize, PricingError> {
        let map: HashMap<String, serde_json::Value> = serde_json::from_str(json)?;
        let mut added = 0;
        for (model, value) in map {
            // Entries of other shapes (`sample_spec`'s strings) are not prices.
            let Ok(entry) = serde_json::from_value::<LiteLlmEntry>(value) else {
                continue;
            };
            let (Some(input), Some(output)) =
                (entry.input_cost_per_token, entry.output_cost_per_token)
            else {
                continue;
            };
            let per_million = |p: f64| p * 1e6;
            let price = ModelPrice {
                input: per_million(input),
                output: per_million(output),
                cached_input: entry.cache_read_input_token_cost.map(per_million),
                cache_write_input: entry.cache_creation_input_token_cost.map(per_million),
                reasoning: entry.output_cost_per_reasoning_token.map(per_million),
            };
            if !price.is_valid() {
                return Err(PricingError::BadPrice { model });
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = self.models.entry(model) {
                slot.insert(price);
                added += 1;
            }
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, written: u64, output: u64, reasoning: u64) -> Usage {
        Usage {
            input,
            output,
            cached_input: cached,
            reasoning,
            cache_write_input: written,
        }
    }

    #[test]
    fn each_part_is_priced_once() {
        let p = ModelPrice {
            input: 3.0,
            output: 15.0,
            cached_input: Some(0.3),
            cache_write_input: Some(3.75),
            reasoning: None,
        };
        // 1M input of which 200k cached and 100k written; 500k output of which 100k reasoning.
        let cost = p.cost(&usage(1_000_000, 200_000, 100_000, 500_000, 100_000));
        let want = 0.7 * 3.0 + 0.2 * 0.3 + 0.1 * 3.75 + 0.5 * 15.0;
        assert!((cost - want).abs() < 1e-9, "{cost} vs {want}");
        // Without part prices, the parts cost the plain prices.
        let plain = ModelPrice {
            input: 2.0,
            output: 8.0,
            ..ModelPrice::default()
        };
        assert_eq!(
            plain.cost(&usage(500_000, 100_000, 0, 250_000, 50_000)),
            3.0
        );
        // A hostile answer's parts larger than its totals are clamped, never negative.
        assert_eq!(
            plain.cost(&usage(10, 50, 50, 10, 99)),
            (10.0 * 2.0 + 10.0 * 8.0) / 1e6
        );
        assert_eq!(plain.cost(&Usage::default()), 0.0);
    }

    #[test]
    fn litellm_map_converts_per_token_prices_and_keeps_configured_ones() {
        let json = r#"{
            "sample_spec": {"input_cost_per_token": "0.0", "mode": "one of chat, embedding"},
            "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                       "cache_read_input_token_cost": 1.25e-06, "mode": "chat"},
            "claude-sonnet-4-5": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                       "cache_creation_input_token_cost": 3.75e-06, "cache_read_input_token_cost": 3e-07},
            "o3": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
                   "output_cost_per_reasoning_token": 8e-06},
            "dall-e-3": {"output_cost_per_image": 0.04},
            "mine": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}
        }"#;
        let mut prices = Prices::new("USD");
        let mine = ModelPrice {
            input: 9.0,
            output: 9.0,
            ..ModelPrice::default()
        };
        prices.insert("mine", mine);
        prices.alias("gpt-4o-team", "gpt-4o");
        assert_eq!(prices.add_litellm_json(json).unwrap(), 3);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let gpt = prices.get("gpt-4o").unwrap();
        assert!(close(gpt.input, 2.5) && close(gpt.output, 10.0));
        assert!(close(gpt.cached_input.unwrap(), 1.25));
        assert_eq!(gpt.cache_write_input, None);
        assert_eq!(prices.get("gpt-4o-team"), Some(gpt));
        let claude = prices.get("claude-sonnet-4-5").unwrap();
        assert!(close(claude.cache_write_input.unwrap(), 3.75));
        assert!(close(prices.get("o3").unwrap().reasoning.unwrap(), 8.0));
        assert_eq!(prices.get("mine"), Some(&mine), "configured prices win");
        assert_eq!(prices.get("dall-e-3"), None);
        assert_eq!(prices.get("gpt-4o-mini"), None, "no guessing from a prefix");
        assert_eq!(prices.len(), 4);
    }

    #[test]
    fn litellm_map_errors_say_what_is_wrong() {
        let mut prices = Prices::new("USD");
        let e = prices.add_litellm_json("[1, 2]").unwrap_err();
        assert!(
            e.to_string().starts_with("not LiteLLM's model-price map"),
            "{e}"
        );
        let e = prices
            .add_litellm_json(r#"{"m": {"input_cost_per_token": -1, "output_cost_per_token": 0}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "model \"m\" has a negative or non-finite price: correct it in the price map or override it in [pricing.models]"
        );
    }
}
