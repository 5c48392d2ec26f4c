//! What the replay examples share: a capture read into memory once, the monitored port
//! (`BENCH_PORT`, default 8080), the JWT secret (`WEBUI_SECRET_KEY`), the optional Open WebUI
//! database, and the default monitor configuration.
use std::{path::Path, sync::Arc};

use anyhow::Context;
use webui_monitor::{config::Config, db};
use webui_monitor_core::{MonitorConfig, openwebui::Directory, secret::Secret};

pub struct BenchInput {
    pub capture: Vec<u8>,
    pub port: u16,
    pub secret: Option<Secret>,
    pub directory: Option<Arc<Directory>>,
    pub config: MonitorConfig,
}

impl BenchInput {
    /// Reads `file` whole and the database at `db`, if given.
    pub fn load(file: &Path, db: Option<&Path>) -> anyhow::Result<Self> {
        let port: u16 = std::env::var("BENCH_PORT")
            .ok()
            .map(|p| p.parse())
            .transpose()
            .context("BENCH_PORT is not a port number")?
            .unwrap_or(8080);
        let secret = std::env::var("WEBUI_SECRET_KEY")
            .ok()
            .map(|s| Secret::new(s.as_bytes()));
        let directory = db
            .map(|p| db::load(p).map(Arc::new))
            .transpose()
            .context("reading the Open WebUI database")?;
        let capture = std::fs::read(file).with_context(|| format!("reading {file:?}"))?;
        let config = Config::default()
            .monitor_config()
            .expect("the defaults price nothing");
        Ok(Self {
            capture,
            port,
            secret,
            directory,
            config,
        })
    }
}
