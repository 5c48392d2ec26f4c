//! The price table: `[pricing.models]` and `[pricing.aliases]` over LiteLLM's price map, read
//! from `pricing.litellm_file` at start and on SIGHUP.
use webui_monitor_core::pricing::Prices;

use super::{ConfigError, schema::PricingConfig};

impl PricingConfig {
    /// The table the monitor prices spend with. The file is read here, not at validation, so
    /// a SIGHUP re-reads a price map updated in place.
    pub fn load(&self) -> Result<Prices, ConfigError> {
        let mut prices = Prices::new(self.currency.clone());
        for (model, price) in &self.models {
            prices.insert(model.clone(), *price);
        }
        if let Some(path) = &self.litellm_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::PricingRead {
                    path: path.clone(),
                    source,
                })?;
            prices
                .add_litellm_json(&text)
                .map_err(|source| ConfigError::Pricing {
                    path: path.clone(),
                    source,
                })?;
        }
        for (alias, priced) in &self.aliases {
            if !prices.contains(priced) {
                return Err(ConfigError::AliasUnpriced {
                    alias: alias.clone(),
                    priced: priced.clone(),
                });
            }
            prices.alias(alias.clone(), priced.clone());
        }
        Ok(prices)
    }
}
