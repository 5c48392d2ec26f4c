//! Hostile neighbours on the production-shaped stack (`webui_monitor_tests::stack`): while two
//! honest users (Alice and the admin, session JWTs) make completions through nginx, whose
//! upstream keep-alive pool mixes every client's requests on the same few connections to
//! Open WebUI, an attacker sends — through the same nginx and straight to Open WebUI —
//! header blocks over the monitor's cap, compressed bombs to a route whose body is read and to
//! one whose body is not, a stream of completions naming junk models without a credential,
//! requests of 10,000 header fields and garbage that is no HTTP straight to Open WebUI, 100,000 spoofed TCP segments (SYNs and mid-stream requests from
//! random addresses), and half the metrics port's connections held open mid-header. Every
//! honest completion and token must stay with its user, the junk must not enter the model
//! label set, every cut must be counted, and the monitor must stay small and keep answering.
use std::{io::Write as _, time::Duration};

use webui_monitor_tests::{
    net::{ChildGuard, wait_for},
    stack::{
        ADMIN, ADMIN_PASSWORD, ALICE, ALICE_PASSWORD, APP_ADDR, METRICS_PORT, Stack, repo_root,
        sample,
    },
};

/// Completions each honest user makes, interleaved with the attack.
const ROUNDS: usize = 12;
/// Completions naming a junk model, without a credential.
const JUNK_MODELS: usize = 200;
/// Spoofed segments (half SYNs, half mid-stream requests), each from its own 4-tuple.
const SPOOFED: usize = 100_000;
/// Connections to the metrics port held open mid-header (its cap is 64).
const SLOW_CLIENTS: usize = 32;

/// `curl` from the proxy namespace with raw arguments; returns the HTTP status.
fn curl(stack: &Stack, args: &[&str]) -> anyhow::Result<u16> {
    let mut full = vec!["-sk", "-o", "/dev/null", "-w", "%{http_code}"];
    full.extend_from_slice(args);
    Ok(stack.proxy.run("curl", &full)?.trim().parse()?)
}

const NGINX: &str = "https://127.0.0.1:8443";

/// The prompt of round `i` of `who`: its word count is the input tokens the server reports.
fn prompt(who: &str, i: usize) -> String {
    format!("{who} honest question number {i}")
}

fn words(text: &str) -> f64 {
    text.split_whitespace().count() as f64
}

#[test]
fn hostile_neighbours_leave_honest_users_exact() -> anyhow::Result<()> {
    // A small header cap, so that heads nginx passes (its limit is 8 KiB per line) are over the
    // monitor's: each such request must still take its answer.
    let stack = Stack::start(
        "adv",
        &[
            "--set",
            "http.max_header_bytes=4096",
            "--set",
            "http.max_decoded_body_bytes=1048576",
        ],
    )?;
    let alice = stack.signin("alice@example.com", ALICE_PASSWORD)?;
    let admin = stack.signin("admin@example.com", ADMIN_PASSWORD)?;

    let scratch = stack.dir.path();
    let bomb = zstd::stream::encode_all(&vec![b' '; 64 << 20][..], 19)?;
    let bomb_file = scratch.join("bomb.zst");
    std::fs::File::create(&bomb_file)?.write_all(&bomb)?;
    let bomb_path = format!("@{}", bomb_file.display());
    let pad = format!("X-Pad: {}", "p".repeat(6000));
    let garbage = scratch.join("garbage");
    std::fs::write(
        &garbage,
        b"\x16\x03\x01\x02\x00GET /api/chat/completions HTTP/1.1\r\n\r\n",
    )?;

    // Slowloris on the metrics port for the whole attack: half its connection cap.
    let slow = format!(
        "import socket,time\ncs=[socket.create_connection(('{APP_ADDR}',{METRICS_PORT})) for _ in range({SLOW_CLIENTS})]\n\
         [c.send(b'GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n') for c in cs]\ntime.sleep(60)\n"
    );
    let _slowloris = ChildGuard(stack.proxy.command("python3", &["-c", &slow]).spawn()?);
    let flood = repo_root().join("tests/support/tcp_flood.py");

    std::thread::scope(|s| -> anyhow::Result<()> {
        let honest = |who: &'static str, token: &str, stream: bool| {
            let token = token.to_owned();
            let stack = &stack;
            s.spawn(move || -> anyhow::Result<()> {
                for i in 0..ROUNDS {
                    let body = format!(
                        r#"{{"model":"mock-gpt","stream":{stream},"messages":[{{"role":"user","content":"{}"}}]}}"#,
                        prompt(who, i)
                    );
                    let auth = format!("Authorization: Bearer {token}");
                    let (status, _) =
                        stack.curl("POST", "/api/chat/completions", &[&auth], Some(&body))?;
                    anyhow::ensure!(status == 200, "{who} round {i}: {status}");
                }
                Ok(())
            })
        };
        let a = honest("alice", &alice, false);
        let b = honest("admin", &admin, true);
        let attack = s.spawn(|| -> anyhow::Result<()> {
            for i in 0..ROUNDS {
                // A head over the monitor's cap, through nginx, to a completion route.
                let url = format!("{NGINX}/api/chat/completions");
                let body = format!(r#"{{"model":"pad-{i}","messages":[]}}"#);
                curl(
                    &stack,
                    &[
                        "-H",
                        &pad,
                        "-H",
                        "Content-Type: application/json",
                        "--data-binary",
                        &body,
                        &url,
                    ],
                )?;
                // Bombs: to a route whose body is read, and to one whose body is not.
                for path in ["/api/chat/completions", "/api/v1/files/"] {
                    let url = format!("{NGINX}{path}");
                    curl(
                        &stack,
                        &[
                            "-H",
                            "Content-Type: application/json",
                            "-H",
                            "Content-Encoding: zstd",
                            "--data-binary",
                            &bomb_path,
                            &url,
                        ],
                    )?;
                }
                // 10,000 header fields straight to Open WebUI's port (nginx would refuse them),
                // then a request on the same connection.
                let send = format!(
                    "timeout 5 python3 -c \"import socket;c=socket.create_connection(('{APP_ADDR}',8080));\
                     c.sendall(b'GET /api/config HTTP/1.1\\r\\nHost: x\\r\\n'+b'a: b\\r\\n'*10000+b'\\r\\n');\
                     c.sendall(b'GET /api/config HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');c.recv(65536)\" || true"
                );
                stack.proxy.run("bash", &["-c", &send])?;
                // Garbage straight to Open WebUI's port, past nginx.
                let send = format!(
                    "timeout 2 bash -c 'cat {} > /dev/tcp/{APP_ADDR}/8080' || true",
                    garbage.display()
                );
                stack.proxy.run("bash", &["-c", &send])?;
            }
            // Spoofed 4-tuples straight at Open WebUI's port (XDP sees them before the kernel
            // drops them), while the honest users' pooled connections carry their completions.
            stack.proxy.run(
                "python3",
                &[
                    flood.to_str().unwrap_or_default(),
                    APP_ADDR,
                    "8080",
                    &SPOOFED.to_string(),
                ],
            )?;
            for i in 0..JUNK_MODELS {
                let url = format!("{NGINX}/api/chat/completions");
                let body = format!(r#"{{"model":"junk-{i}","messages":[]}}"#);
                let status = curl(
                    &stack,
                    &[
                        "-H",
                        "Content-Type: application/json",
                        "--data-binary",
                        &body,
                        &url,
                    ],
                )?;
                anyhow::ensure!(status == 401, "junk completion {i}: {status}");
            }
            Ok(())
        });
        for handle in [a, b, attack] {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })?;

    // Everything has been answered; the monitor sees the last responses within a stats tick.
    let junk_counted = || -> anyhow::Result<bool> {
        let m = stack.metrics()?;
        Ok(sample(
            &m,
            "webui_monitor_openwebui_limit_hits_total",
            &[("limit", "untrusted_model")],
        )
        .is_some_and(|n| n >= JUNK_MODELS as f64))
    };
    wait_for(
        "the junk completions to be counted",
        Duration::from_secs(20),
        || junk_counted().unwrap_or(false),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    // The slow clients still hold their connections: a scrape gets through all the same.
    let m = stack.proxy.run(
        "curl",
        &[
            "-sf",
            "--max-time",
            "5",
            &format!("http://{APP_ADDR}:{METRICS_PORT}/metrics"),
        ],
    )?;
    let get = |name: &str, labels: &[(&str, &str)]| sample(&m, name, labels);

    // The honest users' completions and tokens, exactly.
    for (user, who, stream) in [(ALICE, "alice", "false"), (ADMIN, "admin", "true")] {
        let labels = [
            ("user", user),
            ("model", "mock-gpt"),
            ("api", "chat"),
            ("auth", "jwt"),
            ("client", "api"),
            ("stream", stream),
            ("status_class", "2xx"),
        ];
        assert_eq!(
            get("openwebui_chat_completions_total", &labels),
            Some(ROUNDS as f64),
            "{who}"
        );
        let input: f64 = (0..ROUNDS).map(|i| words(&prompt(who, i))).sum();
        let tokens = [
            ("user", user),
            ("model", "mock-gpt"),
            ("direction", "input"),
            ("source", "http"),
        ];
        assert_eq!(
            get("openwebui_llm_tokens_total", &tokens),
            Some(input),
            "{who}"
        );
    }
    // Nobody else made a successful completion; the refused ones count as anonymous.
    let ok_total: f64 = m
        .lines()
        .filter(|l| {
            l.starts_with("openwebui_chat_completions_total{") && l.contains("status_class=\"2xx\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(ok_total, 2.0 * ROUNDS as f64);
    // The junk and padded models never became labels.
    let mut models: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("openwebui_chat_completions_total{"))
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    models.sort();
    models.dedup();
    // `unknown`: the bombs' bodies name no model before the cap.
    assert_eq!(models, ["mock-gpt", "other", "unknown"]);
    // Every cut counted: each padded head once; each bomb to the read route cut at the body
    // cap, each to the other route never decoded.
    let event =
        |e: &str| get("webui_monitor_http_parse_events_total", &[("event", e)]).unwrap_or(-1.0);
    // Each padded head through nginx; and each 10,000-field head straight to Open WebUI that
    // reached the hop whole — the stand-in refuses it after 100 fields and closes, and its
    // reset may cut the rest of the head off the wire (an incomplete head is no message).
    let too_large = event("headers_too_large");
    assert!(
        (ROUNDS as f64..=2.0 * ROUNDS as f64).contains(&too_large),
        "{too_large}"
    );
    assert_eq!(event("decode_capped"), ROUNDS as f64);
    // Unread: the bombs to the files route and the two sign-ins.
    assert_eq!(event("request_bodies_unread"), ROUNDS as f64 + 2.0);
    // The spoofed tuples took table slots from each other, never from established
    // connections (the honest counts above), and no request of theirs was reported.
    let trust = |e: &str| {
        get(
            "webui_monitor_reassembly_trust_events_total",
            &[("event", e)],
        )
        .unwrap_or(-1.0)
    };
    assert!(trust("unconfirmed_evicted") > 0.0, "no eviction");
    assert!(!m.contains("flood-model"));
    // The slow clients held their connections until the header-read timeout cut them, or
    // still hold them: either way the scrape above got through.
    let open = get("webui_monitor_http_server_connections_open", &[]).unwrap_or(0.0);
    let cut = get(
        "webui_monitor_http_server_connections_closed_total",
        &[("reason", "header_timeout")],
    )
    .unwrap_or(0.0);
    assert!(open + cut >= SLOW_CLIENTS as f64, "open {open}, cut {cut}");
    // Small and alive: RSS well under the unit's MemoryMax (1 GiB), /metrics answering.
    let pid = stack.monitor.child.0.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(rss_kib < 256 << 10, "RSS {rss_kib} KiB");
    Ok(())
}
