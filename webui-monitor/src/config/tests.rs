use super::*;

const SHIPPED: &str = include_str!("../../../deploy/config.toml");

fn file(text: &str) -> Option<FileSource<'_>> {
    Some(FileSource {
        path: Path::new("/etc/webui-monitor/config.toml"),
        text,
    })
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn resolve(
    text: Option<&str>,
    vars: &[(&str, &str)],
    args: &ConfigArgs,
) -> Result<Config, ConfigError> {
    Config::resolve(text.and_then(file), &env(vars), args).map(|(c, _)| c)
}

fn err(text: Option<&str>, vars: &[(&str, &str)], args: &ConfigArgs) -> String {
    match resolve(text, vars, args) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// A scratch file unique to this test process and name.
fn scratch(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "webui-monitor-config-{}-{name}",
        std::process::id()
    ));
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

#[test]
fn nothing_given_yields_documented_defaults() {
    let c = resolve(None, &[], &ConfigArgs::default()).expect("defaults are valid");
    assert_eq!(c.capture.interfaces, ["lo"]);
    assert_eq!(c.capture.ports, [8080]);
    assert_eq!(c.capture.listen, "127.0.0.1:9741".parse().unwrap());
    assert_eq!(c.capture.ring_bytes, 16 << 20);
    assert_eq!(c.capture.max_connections, 65_536);
    assert_eq!(c.openwebui.max_users, 1_000);
    assert_eq!(c.openwebui.api_key_header, "x-api-key");
    assert_eq!(c.openwebui.user_ttl, Duration::from_secs(86_400));
    assert!(!c.openwebui.personal_data);
    assert_eq!(
        c.log,
        LogConfig {
            format: LogFormat::Human,
            level: LogLevel::Info
        }
    );
}

#[test]
fn shipped_config_parses_to_the_defaults() {
    let c =
        resolve(Some(SHIPPED), &[], &ConfigArgs::default()).expect("deploy/config.toml is valid");
    assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
}

/// Every `#key = value` line of deploy/config.toml, uncommented, must restate the built-in
/// default: the documentation cannot drift from the code.
#[test]
fn shipped_config_documents_the_real_defaults() {
    let uncommented: String = SHIPPED
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        uncommented.matches(" = ").count() >= 20,
        "options were uncommented"
    );
    let c = resolve(Some(&uncommented), &[], &ConfigArgs::default())
        .unwrap_or_else(|e| panic!("uncommented deploy/config.toml: {e}"));
    assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let text = "[capture]\nports = [1000]\nring_bytes = 8192\nmax_connections = 10\n[log]\nlevel = \"warn\"\n";
    let vars = [
        ("WEBUI_MONITOR_CAPTURE_PORTS", "2000"),
        ("WEBUI_MONITOR_CAPTURE_RING_BYTES", "65536"),
        ("WEBUI_MONITOR_LOG_FORMAT", "json"),
    ];
    let args = ConfigArgs {
        ports: vec![3000],
        set: vec!["log.format=human".into()],
        ..ConfigArgs::default()
    };
    let (c, origins) = Config::resolve(file(text), &env(&vars), &args).unwrap();
    assert_eq!(c.capture.ports, [3000], "flag beats env and file");
    assert_eq!(c.capture.ring_bytes, 65_536, "env beats file");
    assert_eq!(c.capture.max_connections, 10, "file beats default");
    assert_eq!(c.capture.interfaces, ["lo"], "default where nothing is set");
    assert_eq!(c.log.level, LogLevel::Warn);
    assert_eq!(c.log.format, LogFormat::Human, "--set beats env");
    assert_eq!(
        origins,
        [
            "WEBUI_MONITOR_CAPTURE_PORTS",
            "WEBUI_MONITOR_CAPTURE_RING_BYTES",
            "WEBUI_MONITOR_LOG_FORMAT",
            "--port",
            "--set log.format"
        ]
    );
}

#[test]
fn lists_are_replaced_not_merged() {
    let text = "[capture]\ninterfaces = [\"eth0\", \"eth1\"]\n";
    let args = ConfigArgs {
        interfaces: vec!["lo".into()],
        ..ConfigArgs::default()
    };
    assert_eq!(
        resolve(Some(text), &[], &args).unwrap().capture.interfaces,
        ["lo"]
    );
}

#[test]
fn environment_values_are_typed_by_their_key() {
    let vars = [
        ("WEBUI_MONITOR_CAPTURE_INTERFACES", "eth0, veth1"),
        ("WEBUI_MONITOR_CAPTURE_PORTS", "8080,8081"),
        ("WEBUI_MONITOR_CAPTURE_LISTEN", "[::]:9741"),
        ("WEBUI_MONITOR_OPENWEBUI_API_KEY_HEADER", "x-token"),
        ("WEBUI_MONITOR_OPENWEBUI_DB", "/var/lib/open-webui/webui.db"),
        ("WEBUI_MONITOR_OPENWEBUI_PERSONAL_DATA", "true"),
        ("WEBUI_MONITOR_OPENWEBUI_USER_TTL", "1h30m"),
        ("WEBUI_MONITOR_HTTP_MAX_HEADERS", "64"),
        ("UNRELATED", "ignored"),
        (CONFIG_PATH_ENV, "/elsewhere.toml"),
    ];
    let c = resolve(None, &vars, &ConfigArgs::default()).unwrap();
    assert_eq!(c.capture.interfaces, ["eth0", "veth1"]);
    assert_eq!(c.capture.ports, [8080, 8081]);
    assert_eq!(c.capture.listen, "[::]:9741".parse().unwrap());
    assert_eq!(c.openwebui.api_key_header, "x-token");
    assert_eq!(
        c.openwebui.db.as_deref(),
        Some(Path::new("/var/lib/open-webui/webui.db"))
    );
    assert!(c.openwebui.personal_data);
    assert_eq!(c.openwebui.user_ttl, Duration::from_secs(5400));
    assert_eq!(c.http.max_headers, 64);
}

#[test]
fn dedicated_flags_set_their_keys() {
    let args = ConfigArgs {
        listen: Some("0.0.0.0:9000".parse().unwrap()),
        webui_secret_file: Some("/run/secret".into()),
        openwebui_db: Some("webui.db".into()),
        max_users: Some(5),
        personal_data: true,
        log_format: Some(LogFormat::Json),
        log_level: Some(LogLevel::Debug),
        ..ConfigArgs::default()
    };
    let c = resolve(None, &[], &args).unwrap();
    assert_eq!(c.capture.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(
        c.openwebui.webui_secret_file.as_deref(),
        Some(Path::new("/run/secret"))
    );
    assert_eq!(c.openwebui.db.as_deref(), Some(Path::new("webui.db")));
    assert_eq!(c.openwebui.max_users, 5);
    assert!(c.openwebui.personal_data);
    assert_eq!(
        c.log,
        LogConfig {
            format: LogFormat::Json,
            level: LogLevel::Debug
        }
    );
}

#[test]
fn unknown_file_key_names_line_and_accepted_keys() {
    let e = err(
        Some("[capture]\nportz = [8080]\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(e.contains("/etc/webui-monitor/config.toml"), "{e}");
    assert!(e.contains("line 2"), "{e}");
    assert!(e.contains("unknown field `portz`"), "{e}");
    assert!(e.contains("`ports`"), "{e}");
}

#[test]
fn wrong_type_in_file_is_reported_with_its_line() {
    let e = err(
        Some("[openwebui]\nmax_users = \"many\"\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(e.contains("line 2"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn bad_duration_says_how_to_write_one() {
    let e = err(
        Some("[openwebui]\nuser_ttl = \"1 week\"\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(e.contains("\"30s\", \"15m\", \"24h\""), "{e}");
}

#[test]
fn unknown_environment_variable_is_an_error_without_its_value() {
    let e = err(
        None,
        &[("WEBUI_MONITOR_CAPTUR_PORTS", "s3cr3t-value")],
        &ConfigArgs::default(),
    );
    assert!(e.contains("WEBUI_MONITOR_CAPTUR_PORTS"), "{e}");
    assert!(e.contains("<SECTION>_<KEY>"), "{e}");
    assert!(!e.contains("s3cr3t-value"), "{e}");
    let e = err(
        None,
        &[("WEBUI_MONITOR_CAPTURE_PORTZ", "8080")],
        &ConfigArgs::default(),
    );
    assert!(e.contains("WEBUI_MONITOR_CAPTURE_PORTZ"), "{e}");
    assert!(e.contains("unknown field `portz`"), "{e}");
}

#[test]
fn misplaced_secret_variable_points_to_the_right_one() {
    let e = err(
        None,
        &[("WEBUI_MONITOR_WEBUI_SECRET_KEY", "k3y-material")],
        &ConfigArgs::default(),
    );
    assert!(e.contains(WEBUI_SECRET_ENV), "{e}");
    assert!(!e.contains("k3y-material"), "{e}");
}

#[test]
fn environment_type_error_names_variable_and_key() {
    let e = err(
        None,
        &[("WEBUI_MONITOR_CAPTURE_PORTS", "http")],
        &ConfigArgs::default(),
    );
    assert!(e.starts_with("WEBUI_MONITOR_CAPTURE_PORTS: "), "{e}");
    assert!(e.contains("capture.ports"), "{e}");
    assert!(e.contains("expected u16"), "{e}");
    let e = err(
        None,
        &[("WEBUI_MONITOR_OPENWEBUI_MAX_USERS", "lots")],
        &ConfigArgs::default(),
    );
    assert!(e.contains("invalid type: string \"lots\""), "{e}");
}

#[test]
fn malformed_set_flag_shows_the_expected_form() {
    let args = |s: &str| ConfigArgs {
        set: vec![s.into()],
        ..ConfigArgs::default()
    };
    assert!(err(None, &[], &args("log.level")).contains("SECTION.KEY=VALUE"));
    assert!(err(None, &[], &args("loglevel=info")).contains("not SECTION.KEY"));
    let e = err(None, &[], &args("log.level=loud"));
    assert!(e.contains("--set log.level"), "{e}");
    assert!(e.contains("unknown variant `loud`"), "{e}");
}

#[test]
fn validation_reports_every_problem_with_a_fix() {
    let text = r#"
[capture]
interfaces = ["eth0", "a/b", "eth0"]
ports = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
ring_bytes = 10000
max_connections = 0
listen = "127.0.0.1:0"
[openwebui]
max_users = 0
user_ttl = "0s"
api_key_header = "x api key"
"#;
    let Err(ConfigError::Invalid(problems)) = resolve(Some(text), &[], &ConfigArgs::default())
    else {
        panic!("expected validation problems");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "capture.interfaces",
            "capture.interfaces",
            "capture.ports",
            "capture.ports",
            "capture.listen",
            "capture.ring_bytes",
            "capture.max_connections",
            "openwebui.max_users",
            "openwebui.user_ttl",
            "openwebui.api_key_header",
        ]
    );
    let text = ConfigError::Invalid(problems).to_string();
    assert!(
        text.contains("\"a/b\" is not a valid interface name"),
        "{text}"
    );
    assert!(
        text.contains("17 ports given, the kernel program watches at most 16"),
        "{text}"
    );
    assert!(
        text.contains("10000 is not a power of two of at least 4096"),
        "{text}"
    );
    assert!(text.contains("use e.g. 16384"), "{text}");
}

#[test]
fn authorization_is_not_an_extra_api_key_header() {
    let e = err(
        Some("[openwebui]\napi_key_header = \"Authorization\"\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(e.contains("always examined"), "{e}");
}

#[test]
fn secret_from_both_sources_is_refused() {
    let c = resolve(
        None,
        &[],
        &ConfigArgs {
            webui_secret_file: Some("/etc/webui-monitor/webui-secret".into()),
            ..ConfigArgs::default()
        },
    )
    .unwrap();
    let e = c.secret_source(true).unwrap_err().to_string();
    assert!(
        e.contains("configured twice") && e.contains("keep one"),
        "{e}"
    );
    assert_eq!(
        c.secret_source(false).unwrap(),
        SecretSource::File("/etc/webui-monitor/webui-secret".into())
    );
    assert_eq!(
        Config::default().secret_source(true).unwrap(),
        SecretSource::Environment
    );
    assert_eq!(
        Config::default().secret_source(false).unwrap(),
        SecretSource::None
    );
}

#[test]
fn secret_file_loses_its_trailing_newline() {
    let path = scratch("secret-nl", b"t0p-s3cret\r\n");
    let mut c = Config::default();
    c.openwebui.webui_secret_file = Some(path.clone());
    // Only meaningful when the test process has no WEBUI_SECRET_KEY of its own.
    if std::env::var_os(WEBUI_SECRET_ENV).is_none() {
        let secret = c.load_webui_secret().unwrap().expect("a secret");
        assert_eq!(secret.expose(), b"t0p-s3cret");
    }
    std::fs::write(&path, b"\n").unwrap();
    if std::env::var_os(WEBUI_SECRET_ENV).is_none() {
        let e = c.load_webui_secret().unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn check_prints_effective_config_with_secret_masked() {
    if std::env::vars().any(|(k, _)| k.starts_with(ENV_PREFIX) || k == WEBUI_SECRET_ENV) {
        return; // the process environment would change the expected output
    }
    let secret = scratch("check-secret", b"very-secret-signing-key\n");
    let config = scratch(
        "check.toml",
        format!(
            "[capture]\nports = [3000]\n[openwebui]\nwebui_secret_file = {:?}\n",
            secret.display().to_string()
        )
        .as_bytes(),
    );
    let out = check(Some(&config)).unwrap();
    let _ = std::fs::remove_file(&secret);
    let _ = std::fs::remove_file(&config);
    assert!(!out.contains("very-secret-signing-key"), "{out}");
    assert!(out.contains("23 bytes, value masked"), "{out}");
    assert!(out.contains("ports = [3000]"), "{out}");
    assert!(out.contains("listen = \"127.0.0.1:9741\""), "{out}");
    assert!(out.contains("user_ttl = \"1d\""), "{out}");
    assert!(out.contains("[http.json]\nmax_depth = 64"), "{out}");
    // The output is itself a valid config file (the commented sections aside).
    let reparsed = resolve(Some(&out), &[], &ConfigArgs::default()).unwrap();
    assert_eq!(reparsed.capture.ports, [3000]);
}

#[test]
fn check_of_a_missing_named_file_says_how_to_fix_it() {
    let e = check(Some(Path::new("/nonexistent/webui-monitor.toml")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read config file /nonexistent/webui-monitor.toml"),
        "{e}"
    );
    assert!(e.contains("--config"), "{e}");
}

#[test]
fn durations_parse_and_format_in_prometheus_style() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    for bad in ["", "5", "m", "5 m", "1w", "-1s", "99999999999999999999s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::from_secs(86_461)), "1d1m1s");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn env_candidates_read_toml_then_list_then_string() {
    assert_eq!(raw_candidates("8080")[0], toml::Value::Integer(8080));
    assert_eq!(
        raw_candidates("a,b")[0],
        toml::Value::Array(vec![
            toml::Value::String("a".into()),
            toml::Value::String("b".into())
        ])
    );
    assert_eq!(
        raw_candidates("x").last(),
        Some(&toml::Value::String("x".into()))
    );
}

#[test]
fn config_command_parses_like_the_cli_will() {
    use clap::{Parser, Subcommand};
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }
    #[derive(Subcommand)]
    enum Command {
        Config {
            #[command(subcommand)]
            command: ConfigCommand,
        },
    }
    let cli = Cli::try_parse_from([
        "webui-monitor",
        "config",
        "check",
        "--config",
        "/tmp/x.toml",
        "--port",
        "8080",
        "--port",
        "3000",
        "--log-format",
        "json",
        "--set",
        "http.max_headers=64",
    ])
    .unwrap();
    let Command::Config {
        command: ConfigCommand::Check(args),
    } = cli.command;
    assert_eq!(args.config.as_deref(), Some(Path::new("/tmp/x.toml")));
    assert_eq!(args.ports, [8080, 3000]);
    assert_eq!(args.log_format, Some(LogFormat::Json));
    assert_eq!(args.set, ["http.max_headers=64"]);
}

#[test]
fn config_file_is_chosen_by_flag_then_environment() {
    let from_env = scratch("from-env.toml", b"[capture]\nports = [1111]\n");
    let from_flag = scratch("from-flag.toml", b"[capture]\nports = [2222]\n");
    let vars = env(&[(CONFIG_PATH_ENV, &from_env.display().to_string())]);
    let loaded = load_with_env(&ConfigArgs::default(), &vars).unwrap();
    assert_eq!(loaded.config.capture.ports, [1111]);
    assert_eq!(loaded.file.as_deref(), Some(from_env.as_path()));
    let args = ConfigArgs {
        config: Some(from_flag.clone()),
        ..ConfigArgs::default()
    };
    assert_eq!(
        load_with_env(&args, &vars).unwrap().config.capture.ports,
        [2222]
    );
    // A file named explicitly must exist, even through the environment.
    let missing = env(&[(CONFIG_PATH_ENV, "/nonexistent/config.toml")]);
    let e = load_with_env(&ConfigArgs::default(), &missing)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read config file /nonexistent/config.toml"),
        "{e}"
    );
    let _ = std::fs::remove_file(from_env);
    let _ = std::fs::remove_file(from_flag);
}

#[test]
fn json_log_lines_escape_everything_json_requires() {
    let line = json_log_line(
        "2026-11-27T09:00:00.123Z",
        log::Level::Warn,
        "webui_monitor::capture",
        "ring \"full\"\\ on\teth0\nnext\u{1}",
    );
    assert_eq!(
        line,
        r#"{"ts":"2026-11-27T09:00:00.123Z","level":"warn","target":"webui_monitor::capture","msg":"ring \"full\"\\ on\teth0\nnext\u0001"}"#
    );
}

#[test]
fn logger_follows_the_configured_level() {
    let logger = LogConfig {
        format: LogFormat::Json,
        level: LogLevel::Warn,
    }
    .logger()
    .build();
    assert_eq!(logger.filter(), log::LevelFilter::Warn);
}

/// Every key the code knows (as far as it serializes) is documented in deploy/config.toml.
#[test]
fn shipped_config_lists_every_key() {
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    let mut section = "";
    let mut documented = std::collections::BTreeSet::new();
    for line in SHIPPED.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
        } else if let Some((key, _)) = line.trim_start_matches(['#', ' ']).split_once(" = ") {
            documented.insert(format!("{section}.{key}"));
        }
    }
    fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            match value.as_table() {
                Some(nested) => keys(&format!("{prefix}.{key}"), nested, out),
                None => out.push(format!("{prefix}.{key}")),
            }
        }
    }
    let mut known = Vec::new();
    for (name, table) in &defaults {
        keys(
            name,
            table.as_table().expect("sections are tables"),
            &mut known,
        );
    }
    for key in known {
        assert!(
            documented.contains(&key),
            "{key} is not in deploy/config.toml"
        );
    }
    for key in ["openwebui.webui_secret_file", "openwebui.db"] {
        assert!(
            documented.contains(key),
            "{key} is not in deploy/config.toml"
        );
    }
}

/// A value put under a wrong key (a secret pasted into the file) is not quoted back.
#[test]
fn file_errors_do_not_quote_the_file() {
    let e = err(
        Some("[openwebui]\nwebui_secret_key = \"owui-pasted-secret\"\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(e.contains("line 2"), "{e}");
    assert!(e.contains("unknown field `webui_secret_key`"), "{e}");
    assert!(!e.contains("owui-pasted-secret"), "{e}");
}

/// `--set` errors name the key, not the value (a secret typed into the wrong flag).
#[test]
fn set_flag_errors_do_not_echo_the_value() {
    let args = |s: &str| ConfigArgs {
        set: vec![s.into()],
        ..ConfigArgs::default()
    };
    let e = err(None, &[], &args("webui_secret=owui-typed-secret"));
    assert!(!e.contains("owui-typed-secret"), "{e}");
    let e = err(None, &[], &args("owui-typed-secret"));
    assert!(!e.contains("owui-typed-secret"), "{e}");
}

#[test]
fn monitor_config_takes_the_engine_caps_and_the_openwebui_settings() {
    let text = "[http]\nmax_headers = 64\n[reassembly]\nmax_connections = 7\n\
                [openwebui]\napi_key_header = \"x-token\"\nmax_users = 5\nuser_ttl = \"2h\"\n\
                personal_data = true\n";
    let m = resolve(Some(text), &[], &ConfigArgs::default())
        .unwrap()
        .monitor_config()
        .unwrap();
    assert_eq!(m.pipeline.http.max_headers, 64);
    assert_eq!(m.pipeline.http.api_key_header, "x-token");
    assert_eq!(m.pipeline.reassembly.max_connections, 7);
    assert_eq!(m.semantics.max_users, 5);
    assert_eq!(m.semantics.user_ttl_secs, 7200);
    assert!(m.semantics.export_user_info);
}

/// Each dedicated flag sets exactly the key its table row names, and every key's environment
/// variable is derived from the key.
#[test]
fn each_flag_is_declared_once_with_its_key() {
    assert_eq!(ConfigArgs::flag_for("capture.ports"), Some("--port"));
    assert_eq!(ConfigArgs::flag_for("http.max_headers"), None);
    assert_eq!(
        layering::env_var("openwebui.webui_secret_file"),
        "WEBUI_MONITOR_OPENWEBUI_WEBUI_SECRET_FILE"
    );
    let args = ConfigArgs {
        interfaces: vec!["eth0".into()],
        max_users: Some(7),
        personal_data: true,
        ..ConfigArgs::default()
    };
    let given: Vec<(&str, &str)> = args.given().iter().map(|g| (g.key, g.flag)).collect();
    assert_eq!(
        given,
        [
            ("capture.interfaces", "--interface"),
            ("openwebui.max_users", "--max-users"),
            ("openwebui.personal_data", "--personal-data"),
        ]
    );
}

#[test]
fn interface_patterns_are_validated_as_patterns() {
    let args = |entries: &[&str]| ConfigArgs {
        interfaces: entries.iter().map(|e| (*e).to_owned()).collect(),
        ..ConfigArgs::default()
    };
    let c = resolve(None, &[], &args(&["eth0", "veth*", "br-*", "cali[0-9]*"])).unwrap();
    assert_eq!(
        c.capture.interfaces,
        ["eth0", "veth*", "br-*", "cali[0-9]*"]
    );
    let e = err(None, &[], &args(&["veth[*"]));
    assert!(
        e.contains("\"veth[*\" is not a valid interface pattern"),
        "{e}"
    );
    let e = err(None, &[], &args(&["a/*"]));
    assert!(e.contains("contains '/', ':' or whitespace"), "{e}");
    let e = err(
        Some("[capture]\ninterfaces = [\"a\", \"b\"]\nmax_interfaces = 1\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(e.contains("capture.max_interfaces"), "{e}");
}

/// `[pricing]`: own prices win over LiteLLM's map, aliases take a priced model's prices, and
/// every mistake says what to write instead.
#[test]
fn pricing_reads_own_prices_the_litellm_map_and_aliases() {
    let map = scratch(
        "litellm.json",
        br#"{"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05},
             "o3": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06}}"#,
    );
    let text = format!(
        "[pricing]\nlitellm_file = \"{}\"\n[pricing.models.\"gpt-4o\"]\ninput = 5.0\noutput = 20.0\n\
         [pricing.aliases]\n\"team-assistant\" = \"o3\"\n",
        map.display()
    );
    let m = resolve(Some(&text), &[], &ConfigArgs::default())
        .unwrap()
        .monitor_config()
        .unwrap();
    assert_eq!(m.prices.currency, "USD");
    assert_eq!(m.prices.get("gpt-4o").map(|p| p.input), Some(5.0));
    let o3 = m.prices.get("o3").copied().unwrap();
    assert!((o3.output - 8.0).abs() < 1e-9);
    assert_eq!(m.prices.get("team-assistant"), Some(&o3));
    assert_eq!(m.prices.get("gpt-4o-mini"), None);

    let e = err(
        Some(
            "[pricing]\ncurrency = \"eur\"\nlitellm_file = \"/x.json\"\n[pricing.models.m]\ninput = -1.0\noutput = 1.0\n[pricing.aliases]\na = \"b\"\n",
        ),
        &[],
        &ConfigArgs::default(),
    );
    for want in [
        "pricing.currency: \"eur\" is not an ISO 4217 code: write e.g. \"USD\" or \"EUR\"",
        "pricing.litellm_file: LiteLLM's prices are in USD but pricing.currency is \"eur\"",
        "pricing.models: model \"m\" has a negative or non-finite price",
    ] {
        assert!(e.contains(want), "{e}");
    }
    let e = err(
        Some("[pricing]\n[pricing.aliases]\na = \"b\"\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(
        e.contains("pricing.aliases: \"a\" takes the prices of \"b\", which [pricing.models] does not price"),
        "{e}"
    );
    let missing = resolve(
        Some("[pricing]\nlitellm_file = \"/nonexistent/prices.json\"\n"),
        &[],
        &ConfigArgs::default(),
    )
    .unwrap()
    .monitor_config()
    .unwrap_err()
    .to_string();
    assert!(
        missing.starts_with("cannot read pricing.litellm_file /nonexistent/prices.json"),
        "{missing}"
    );
    let bad = scratch("bad.json", b"[]");
    let bad = resolve(
        Some(&format!(
            "[pricing]\nlitellm_file = \"{}\"\n",
            bad.display()
        )),
        &[],
        &ConfigArgs::default(),
    )
    .unwrap()
    .monitor_config()
    .unwrap_err()
    .to_string();
    assert!(bad.contains("not LiteLLM's model-price map"), "{bad}");
}

#[test]
fn audit_section_from_file_environment_and_flags() {
    let text = "[audit]\noutput = \"file\"\npath = \"/var/log/wm/audit.jsonl\"\nkeep_files = 2\n";
    let vars = [(
        "WEBUI_MONITOR_AUDIT_TRUSTED_PROXIES",
        "10.213.0.1, fd00::/64",
    )];
    let args = ConfigArgs {
        set: vec!["audit.max_file_bytes=1048576".into()],
        ..ConfigArgs::default()
    };
    let c = resolve(Some(text), &vars, &args).unwrap();
    assert_eq!(c.audit.output, AuditOutput::File);
    assert_eq!(c.audit.path, Path::new("/var/log/wm/audit.jsonl"));
    assert_eq!((c.audit.max_file_bytes, c.audit.keep_files), (1 << 20, 2));
    assert_eq!(c.audit.trusted_proxies, ["10.213.0.1", "fd00::/64"]);
    let core = c.monitor_config().unwrap().audit;
    let nets: Vec<String> = core.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["10.213.0.1/32", "fd00::/64"]);
    assert!(core.enabled);
}

#[test]
fn audit_section_problems_say_what_to_write() {
    let e = err(
        Some(
            "[audit]\noutput = \"file\"\npath = \"/\"\nmax_file_bytes = 10\ntrusted_proxies = [\"10.0.0.300/8\"]\nmax_queue = 0\n",
        ),
        &[],
        &ConfigArgs::default(),
    );
    for part in [
        "audit.trusted_proxies: \"10.0.0.300/8\" is not an address or network",
        "audit.path: \"/\" names no file",
        "audit.max_file_bytes: 10 is less than 4096",
        "audit.max_queue: must be at least 1",
    ] {
        assert!(e.contains(part), "{part} missing in {e}");
    }
    let e = err(
        Some("[audit]\noutput = \"syslog\"\n"),
        &[],
        &ConfigArgs::default(),
    );
    assert!(e.contains("unknown variant `syslog`"), "{e}");
}
