//! Layering: the file, then `WEBUI_MONITOR_*` variables, then flags, each a list of
//! `section.key` overrides applied to one TOML table, which serde then types as [`Config`].
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{
    CONFIG_PATH_ENV, Config, ConfigArgs, ConfigError, DEFAULT_CONFIG_PATH, ENV_PREFIX,
    WEBUI_SECRET_ENV,
};

/// The config file as read: its path and text (I/O stays in [`load`]).
#[derive(Debug, Clone, Copy)]
pub struct FileSource<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

/// A resolved configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Environment variables and flags applied, lowest precedence first (names only).
    pub overrides: Vec<String>,
}

/// The sections of the file; also the first word after [`ENV_PREFIX`] in a variable's name.
const SECTIONS: [&str; 10] = [
    "capture",
    "reassembly",
    "http",
    "websocket",
    "memory",
    "openwebui",
    "pricing",
    "log",
    "server",
    "audit",
];

/// The environment variable that sets `section.key`: `WEBUI_MONITOR_SECTION_KEY`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// A value given outside the file, not yet typed.
enum OverrideValue {
    /// Typed by a dedicated flag.
    Typed(toml::Value),
    /// From the environment or `--set`: typed by what the key accepts.
    Raw(String),
}

struct Override {
    section: String,
    key: String,
    value: OverrideValue,
    origin: String,
}

impl Config {
    /// Builds the configuration from the file (if any), `WEBUI_MONITOR_*` variables of `env`
    /// and the flags, in that order of increasing precedence, then validates it.
    pub fn resolve(
        file: Option<FileSource<'_>>,
        env: &[(String, String)],
        args: &ConfigArgs,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut table = match file {
            Some(file) => parse_file(file)?,
            None => toml::Table::new(),
        };
        let mut overrides = env_overrides(env)?;
        overrides.extend(flag_overrides(args)?);
        let mut origins = Vec::with_capacity(overrides.len());
        for o in overrides {
            apply(&mut table, &o)?;
            origins.push(o.origin);
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Override {
                    origin: "configuration".to_owned(),
                    message: e.message().to_owned(),
                })?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok((config, origins))
    }
}

/// Reads the configuration the way the daemon does: file, process environment, `args`.
pub fn load(args: &ConfigArgs) -> Result<Loaded, ConfigError> {
    // Variables that are not UTF-8 cannot be configuration; they are not ours.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(args, &env)
}

/// [`load`] with an explicit environment (the file is still read from disk).
pub fn load_with_env(args: &ConfigArgs, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let env_path = env
        .iter()
        .find(|(k, _)| k == CONFIG_PATH_ENV)
        .map(|(_, v)| PathBuf::from(v));
    let (path, explicit) = match (&args.config, env_path) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(p)) => (p, true),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let file = text.as_deref().map(|text| FileSource { path: &path, text });
    let (config, overrides) = Config::resolve(file, env, args)?;
    Ok(Loaded {
        config,
        file: text.map(|_| path),
        overrides,
    })
}

fn parse_file(file: FileSource<'_>) -> Result<toml::Table, ConfigError> {
    // Not `e.to_string()`: toml quotes the offending line, and a secret pasted into the file
    // by mistake (an unknown key) would then reach stderr and the journal.
    let err = |e: toml::de::Error| ConfigError::File {
        path: file.path.to_owned(),
        message: match e.span() {
            Some(span) => {
                let before = &file.text[..span.start.min(file.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |nl| nl + 1) + 1;
                format!("line {line}, column {column}: {}\n", e.message())
            }
            None => format!("{}\n", e.message()),
        },
    };
    // Deserializing the text (not just the table) gives line/column spans for unknown keys and
    // wrong types, which the merged table no longer has.
    toml::from_str::<Config>(file.text).map_err(err)?;
    toml::from_str::<toml::Table>(file.text).map_err(err)
}

fn env_overrides(env: &[(String, String)]) -> Result<Vec<Override>, ConfigError> {
    // Sorted so the result does not depend on the process environment's order.
    let vars: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k != CONFIG_PATH_ENV)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::new();
    for (name, value) in vars {
        let rest = name[ENV_PREFIX.len()..].to_ascii_lowercase();
        let Some((section, key)) = rest
            .split_once('_')
            .filter(|(s, k)| SECTIONS.contains(s) && !k.is_empty())
        else {
            // The value is not echoed: someone may have put a secret in a misnamed variable.
            let hint = if rest.contains("secret") {
                format!(
                    "the JWT secret is read from {WEBUI_SECRET_ENV} or the file named by {}",
                    env_var("openwebui.webui_secret_file")
                )
            } else {
                format!(
                    "variables are named {ENV_PREFIX}<SECTION>_<KEY> with SECTION one of {}; unset it or fix the name",
                    SECTIONS.join(", ")
                )
            };
            return Err(ConfigError::Override {
                origin: format!("environment variable {name}"),
                message: format!("not a configuration key: {hint}"),
            });
        };
        out.push(Override {
            section: section.to_owned(),
            key: key.to_owned(),
            value: OverrideValue::Raw(value.to_owned()),
            origin: name.to_owned(),
        });
    }
    Ok(out)
}

fn flag_overrides(args: &ConfigArgs) -> Result<Vec<Override>, ConfigError> {
    let mut out: Vec<Override> = args
        .given()
        .into_iter()
        .map(|given| {
            let (section, key) = given
                .key
                .split_once('.')
                .expect("config_args! keys are SECTION.KEY");
            Override {
                section: section.to_owned(),
                key: key.to_owned(),
                value: OverrideValue::Typed(given.value),
                origin: given.flag.to_owned(),
            }
        })
        .collect();
    for set in &args.set {
        // Errors name the key, never the value: a misplaced secret must not be echoed.
        let (name, value) = set.split_once('=').ok_or_else(|| ConfigError::Override {
            origin: "--set".to_owned(),
            message: "expected SECTION.KEY=VALUE, e.g. --set http.max_headers=64".into(),
        })?;
        let bad = |message: String| ConfigError::Override {
            origin: format!("--set {name}"),
            message,
        };
        let (section, key) = name
            .trim()
            .split_once('.')
            .filter(|(s, k)| SECTIONS.contains(s) && !k.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "{name:?} is not SECTION.KEY with SECTION one of {}",
                    SECTIONS.join(", ")
                ))
            })?;
        out.push(Override {
            section: section.to_owned(),
            key: key.to_owned(),
            value: OverrideValue::Raw(value.to_owned()),
            origin: format!("--set {name}"),
        });
    }
    Ok(out)
}

/// Sets `section.key` in `table` to the first reading of the override's value that the
/// configuration accepts; reports the most telling error when none does.
fn apply(table: &mut toml::Table, o: &Override) -> Result<(), ConfigError> {
    let candidates = match &o.value {
        OverrideValue::Typed(v) => vec![v.clone()],
        OverrideValue::Raw(raw) => raw_candidates(raw),
    };
    // The error worth showing is the one of the reading whose shape (list or scalar) fits the
    // key: "expected u16" beats "expected a sequence" for `ports=http`. The shape is known from
    // the defaults where they serialize; otherwise guessed from the error text.
    let wants_list = expects_list(&o.section, &o.key);
    let mut shown: Option<String> = None;
    let mut last_error = String::new();
    for value in &candidates {
        let mut trial = table.clone();
        let section = trial
            .entry(o.section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            return Err(ConfigError::Override {
                origin: o.origin.clone(),
                message: format!("[{}] in the config file is not a table", o.section),
            });
        };
        section.insert(o.key.clone(), value.clone());
        match toml::Value::Table(trial.clone()).try_into::<Config>() {
            Ok(_) => {
                *table = trial;
                return Ok(());
            }
            Err(e) => {
                let message = e.message().trim_end().to_owned();
                let fits = match wants_list {
                    Some(list) => list == value.is_array(),
                    None => {
                        !(message.contains("invalid type: sequence")
                            || message.contains("expected a sequence"))
                    }
                };
                if fits && shown.is_none() {
                    shown = Some(message.clone());
                }
                last_error = message;
            }
        }
    }
    let last_error = shown.unwrap_or(last_error);
    Err(ConfigError::Override {
        origin: o.origin.clone(),
        message: format!(
            "{} (for {}.{}; see deploy/config.toml for the accepted values)",
            last_error, o.section, o.key
        ),
    })
}

/// Whether `section.key` takes a list, when its default says so.
fn expects_list(section: &str, key: &str) -> Option<bool> {
    let defaults = toml::Table::try_from(Config::default()).ok()?;
    Some(defaults.get(section)?.get(key)?.is_array())
}

/// Readings of an untyped value, most specific first: a TOML value, a comma-separated list of
/// TOML values or strings, a plain string.
pub(super) fn raw_candidates(raw: &str) -> Vec<toml::Value> {
    let literal = |s: &str| -> Option<toml::Value> {
        let mut t: toml::Table = toml::from_str(&format!("v = {s}")).ok()?;
        t.remove("v")
    };
    let mut out = Vec::with_capacity(3);
    if let Some(v) = literal(raw) {
        out.push(v);
    }
    let items: Vec<toml::Value> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| literal(s).unwrap_or_else(|| toml::Value::String(s.to_owned())))
        .collect();
    out.push(toml::Value::Array(items));
    out.push(toml::Value::String(raw.to_owned()));
    out
}
