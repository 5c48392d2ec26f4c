//! `webui-monitor replay` end to end: configuration, secret file and database through the
//! command, checked on the metrics file it writes.
#[path = "../../webui-monitor-core/tests/support/expected_check.rs"]
mod expected_check;

use expected_check::{CAPTURES, fixture_dir};
use webui_monitor::{
    config::ConfigArgs,
    replay::{self, ReplayArgs},
};

#[test]
fn metrics_out_writes_the_exposition() {
    let dir = std::env::temp_dir().join(format!("webui-monitor-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("metrics.prom");
    replay::run(ReplayArgs {
        file: fixture_dir().join("script_jwt.pcap"),
        json: false,
        metrics_out: Some(out.clone()),
        audit_out: None,
        config: ConfigArgs {
            config: Some("/dev/null".into()),
            ..ConfigArgs::default()
        },
    })
    .expect("replay");
    let text = std::fs::read_to_string(&out).expect("metrics file");
    std::fs::remove_dir_all(&dir).ok();
    for line in [
        "webui_monitor_pcap_packets_total 120",
        "webui_monitor_reassembly_connections_opened_total 3",
        "webui_monitor_reassembly_connections_closed_total{reason=\"fin\"} 3",
        "webui_monitor_reassembly_gaps_total 0",
        "webui_monitor_reassembly_connections_active 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

/// What `replay --metrics-out` writes, with the secret, the database and personal data on,
/// carries no credential, no secret and no body text either (user names and e-mails are the
/// opted-in personal data and may appear).
#[test]
fn metrics_file_carries_no_secret() {
    let forbidden = [
        "sk-b2f36db1e8f4423697d7fa73f0ac0987",
        "b2f36db1e8f4423697d7fa73f0ac0987",
        "owui-test-secret-key-0123456789abcdef",
        "eyJ",
        "Hello from the browser",
        "Second browser message",
        "Mock reply",
        "password",
    ];
    let dir = std::env::temp_dir().join(format!("wm-replay-privacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let secret = dir.join("secret");
    std::fs::write(&secret, "owui-test-secret-key-0123456789abcdef").expect("secret file");
    for name in CAPTURES {
        let out = dir.join(format!("{name}.prom"));
        replay::run(ReplayArgs {
            file: fixture_dir().join(format!("{name}.pcap")),
            json: false,
            metrics_out: Some(out.clone()),
            audit_out: None,
            config: ConfigArgs {
                config: Some("/dev/null".into()),
                webui_secret_file: Some(secret.clone()),
                openwebui_db: Some(fixture_dir().join("webui.db")),
                personal_data: true,
                ..ConfigArgs::default()
            },
        })
        .expect("replay");
        let text = std::fs::read_to_string(&out).expect("metrics file");
        assert!(text.contains("openwebui_user_requests_total"), "{name}");
        for secret in forbidden {
            assert!(
                !text.contains(secret),
                "{name}: {secret:?} in the metrics file"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
