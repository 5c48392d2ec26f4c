//! `cargo xtask bench-replay`: webui-monitor's replay against tshark on one large synthetic
//! capture of Open WebUI-shaped traffic.
//!
//! The capture (classic pcap, Ethernet, µs) holds ≥ 200,000 HTTP/1.1 exchanges over keep-alive
//! connections: small JSON, gzip-compressed chunked assets, two-chunks-per-event SSE streams,
//! JSON completions with usage, 304s, uploads, and a multi-megabyte body every few thousand
//! exchanges in each direction. Both tools read the same file from the page cache (one warm-up
//! read first); the request counts must agree. Times are CPU seconds (user + system) of each
//! child, which stay meaningful on a busy machine; wall time is printed next to them. Then
//! `examples/bench_attribution.rs` replays the same capture in one process with attribution off
//! and on (the fixtures' secret and database; the traffic carries Alice's real JWT and API key)
//! and prints exchanges/s of both. Not a timed test: it prints tables.
use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, bail, ensure};
use flate2::{Compression, write::GzEncoder};

/// Alice's session JWT and API key from the fixture captures (`fixtures/openwebui/`, secret
/// [`FIXTURE_SECRET`], valid at the capture's timestamps), so that attribution does its real
/// work: verify a JWT, resolve a key through the fixture database, count per user.
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjcwMGMxNTU2LTlkODYtNDUyYS04ODBmLWVkYmM4YTc0ZWFkOCIsInR5cCI6InNlc3Npb24iLCJhdXRoX21ldGhvZCI6InBhc3N3b3JkIiwiYXV0aF90aW1lIjoxNzk1NzY2ODI3LCJzZXNzaW9uX3N0YW1wIjoiODhmMmIyOTMtZDZhMy00Zjg0LTk0YmItYWQyMmU5MmMyN2MwIiwibWZhX3ZlcmlmaWVkIjpmYWxzZSwiZXhwIjoxNzk4MTg2MDI3LCJqdGkiOiIzZDJkMTQ2Yi03OGRlLTQxYzYtYjNlZC01NTAzOGI1NWQyMmIiLCJpYXQiOjE3OTU3NjY4Mjd9.qs52nIFrcrxH7rZv1eEyGvUj45DyB23achqSjN-L44I";
const API_KEY_AUTH: &str = "Authorization: Bearer sk-b2f36db1e8f4423697d7fa73f0ac0987\r\n";
const FIXTURE_SECRET: &str = "owui-test-secret-key-0123456789abcdef";

/// Exchanges in the capture.
const EXCHANGES: u64 = 200_000;
/// Requests per keep-alive connection (Chromium reuses one for ~60; scripts use one each).
const PER_CONNECTION: u64 = 25;
/// TCP payload per frame (loopback-like large segments, but well under the 64 KiB IP limit).
const MSS: usize = 16 * 1024;
/// A multi-megabyte body (alternately response and request) every this many exchanges.
const HUGE_EVERY: u64 = 4_000;
const HUGE_BYTES: usize = 3 << 20;

pub fn run() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("bench-replay");
    std::fs::create_dir_all(&dir)?;
    let pcap = dir.join("bench.pcap");

    eprintln!("generating {} ...", pcap.display());
    let started = Instant::now();
    let generated = generate(&pcap)?;
    eprintln!(
        "  {} exchanges, {} connections, {} packets, {:.1} MB in {:.1} s",
        generated.exchanges,
        generated.connections,
        generated.packets,
        generated.file_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    eprintln!("building webui-monitor (release) ...");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "webui-monitor",
            "--bin",
            "webui-monitor",
        ])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "cargo build failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release/webui-monitor");

    // Warm the page cache so neither tool pays for the disk.
    let mut sink = vec![0u8; 1 << 20];
    let mut f = File::open(&pcap)?;
    while f.read(&mut sink)? > 0 {}

    eprintln!("running webui-monitor replay ...");
    let t = Instant::now();
    let cpu = children_cpu_secs();
    let out = Command::new(&bin)
        .arg("replay")
        .arg(&pcap)
        .args(["--port", "8080"])
        .stderr(Stdio::inherit())
        .output()
        .context("running webui-monitor replay")?;
    let monitor_secs = children_cpu_secs() - cpu;
    let monitor_wall = t.elapsed().as_secs_f64();
    ensure!(out.status.success(), "webui-monitor replay failed");
    let summary = String::from_utf8_lossy(&out.stdout);
    let monitor_requests = exchanges_from_summary(&summary)
        .with_context(|| format!("no exchange count in the replay summary:\n{summary}"))?;

    eprintln!("running tshark ...");
    let t = Instant::now();
    let cpu = children_cpu_secs();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        ])
        .stderr(Stdio::null())
        .output()
        .context("running tshark (apt-get install tshark)")?;
    let tshark_secs = children_cpu_secs() - cpu;
    let tshark_wall = t.elapsed().as_secs_f64();
    ensure!(out.status.success(), "tshark failed");
    let tshark_requests = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;

    let gbits = |bytes: u64| bytes as f64 * 8.0 / monitor_secs / 1e9;
    println!(
        "| capture | {} exchanges, {} connections, {} packets, {:.1} MB (TCP payload {:.1} MB) |",
        generated.exchanges,
        generated.connections,
        generated.packets,
        generated.file_bytes as f64 / 1e6,
        generated.payload_bytes as f64 / 1e6
    );
    println!("|---|---|");
    println!(
        "| webui-monitor replay | {monitor_secs:.2} s CPU ({monitor_wall:.2} s wall), {monitor_requests} requests |"
    );
    println!(
        "| tshark -Y http.request | {tshark_secs:.2} s CPU ({tshark_wall:.2} s wall), {tshark_requests} requests |"
    );
    println!(
        "| speed-up (CPU time) | {:.1}x |",
        tshark_secs / monitor_secs
    );
    println!(
        "| webui-monitor throughput (1 core) | {:.2} Gbit/s of capture file, {:.2} Gbit/s of TCP payload |",
        gbits(generated.file_bytes),
        gbits(generated.payload_bytes)
    );
    if monitor_requests != tshark_requests || monitor_requests != generated.exchanges {
        bail!(
            "request counts differ: generated {}, webui-monitor {monitor_requests}, tshark {tshark_requests}",
            generated.exchanges
        );
    }

    // Attribution off vs on, in one process over the same in-memory capture: the share of the
    // pipeline's exchanges/s that survives attribution.
    eprintln!("running the attribution comparison (examples/bench_attribution.rs) ...");
    let status = Command::new(env!("CARGO"))
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "webui-monitor",
            "--example",
            "bench_attribution",
            "--",
        ])
        .arg(&pcap)
        .arg(root.join("fixtures/openwebui/webui.db"))
        .env("WEBUI_SECRET_KEY", FIXTURE_SECRET)
        .env("BENCH_PORT", "8080")
        .current_dir(&root)
        .status()
        .context("running the bench_attribution example")?;
    ensure!(status.success(), "bench_attribution failed");
    Ok(())
}

/// User + system CPU seconds of all waited-for children so far.
fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

/// The replay summary's "…, N exchanges, …" figure.
fn exchanges_from_summary(summary: &str) -> Option<u64> {
    let at = summary.find(" exchanges,")?;
    let digits: String = summary[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

struct Generated {
    exchanges: u64,
    connections: u64,
    packets: u64,
    file_bytes: u64,
    payload_bytes: u64,
}

/// Writes frames of one TCP connection into a classic pcap.
struct PcapWriter<W: Write> {
    out: W,
    ts_micros: u64,
    packets: u64,
    bytes: u64,
    payload: u64,
    frame: Vec<u8>,
}

struct Tcp {
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    /// Next sequence number per direction (0 client, 1 server).
    seq: [u32; 2],
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

impl<W: Write> PcapWriter<W> {
    fn new(mut out: W) -> anyhow::Result<Self> {
        // Magic (µs), version 2.4, zone, sigfigs, snaplen 262144, Ethernet.
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self {
            out,
            ts_micros: 1_795_766_588_000_000,
            packets: 0,
            bytes: 24,
            payload: 0,
            frame: Vec::with_capacity(MSS + 64),
        })
    }

    fn packet(
        &mut self,
        tcp: &mut Tcp,
        from_server: bool,
        flags: u8,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let d = usize::from(from_server);
        let ((src, sport), (dst, dport)) = if from_server {
            (tcp.server, tcp.client)
        } else {
            (tcp.client, tcp.server)
        };
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = 20 + 20 + payload.len();
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&tcp.seq[d].to_be_bytes());
        f.extend_from_slice(&tcp.seq[1 - d].to_be_bytes());
        f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        let advance = payload.len() as u32 + u32::from(flags & (SYN | 0x01) != 0);
        tcp.seq[d] = tcp.seq[d].wrapping_add(advance);

        self.ts_micros += 7;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((self.ts_micros / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((self.ts_micros % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(f.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(f.len() as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(f)?;
        self.packets += 1;
        self.bytes += 16 + f.len() as u64;
        self.payload += payload.len() as u64;
        Ok(())
    }

    /// One message in MSS-sized segments.
    fn message(&mut self, tcp: &mut Tcp, from_server: bool, data: &[u8]) -> anyhow::Result<()> {
        for chunk in data.chunks(MSS) {
            self.packet(tcp, from_server, PSH_ACK, chunk)?;
        }
        Ok(())
    }
}

/// Bodies built once and reused.
struct Bodies {
    json: Vec<u8>,
    gzip_js: Vec<u8>,
    sse: Vec<u8>,
    completion: Vec<u8>,
    upload: Vec<u8>,
    huge: Vec<u8>,
}

impl Bodies {
    fn new() -> anyhow::Result<Self> {
        let json = br#"{"id":"35ae9654-1c0a-4a3e-9f7b-0123456789ab","title":"Benchmark chat","models":["mock-gpt"],"messages":[],"tags":[],"archived":false,"pinned":false,"folder_id":null,"meta":{}}"#.repeat(3);
        let mut js = Vec::new();
        for i in 0..600 {
            js.extend_from_slice(
                format!("export function f{i}(a,b){{return a*{i}+b;/* svelte chunk */}}\n")
                    .as_bytes(),
            );
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&js)?;
        let gzip_js = gz.finish()?;
        let mut sse = Vec::new();
        let mut push_event = |event: &str| {
            let line = format!("data: {event}\n");
            sse.extend_from_slice(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes());
            sse.extend_from_slice(b"1\r\n\n\r\n");
        };
        push_event(
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
        );
        for word in
            "Mock reply from mock-gpt . This is a deterministic test answer for the benchmark"
                .split(' ')
        {
            push_event(&format!(
                r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{word} "}}}}]}}"#
            ));
        }
        push_event(
            r#"{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":14,"total_tokens":18}}"#,
        );
        push_event("[DONE]");
        sse.extend_from_slice(b"0\r\n\r\n");
        let completion = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"mock-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"Mock reply"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":17,"total_tokens":21}}"#.to_vec();
        let upload = b"x".repeat(8 * 1024);
        let mut huge = Vec::with_capacity(HUGE_BYTES);
        huge.extend_from_slice(br#"{"model":"mock-gpt","stream":false,"messages":[{"role":"user","content":"data:image/png;base64,"#);
        while huge.len() < HUGE_BYTES - 8 {
            huge.extend_from_slice(b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=");
        }
        huge.extend_from_slice(b"\"}]}");
        Ok(Self {
            json,
            gzip_js,
            sse,
            completion,
            upload,
            huge,
        })
    }
}

fn request(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench/1.0\r\nAccept-Encoding: gzip\r\n\
         Cookie: token={JWT}\r\n{extra}"
    );
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\ndate: Fri, 27 Nov 2026 09:00:00 GMT\r\nserver: uvicorn\r\n{headers}\r\n").into_bytes();
    r.extend_from_slice(body);
    r
}

fn generate(path: &Path) -> anyhow::Result<Generated> {
    let bodies = Bodies::new()?;
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(8 << 20, file))?;
    let mut exchanges = 0u64;
    let mut connections = 0u64;
    while exchanges < EXCHANGES {
        let c = connections;
        connections += 1;
        let mut tcp = Tcp {
            client: (
                [10, 1, (c >> 8) as u8, c as u8],
                20_000 + (c % 40_000) as u16,
            ),
            server: ([10, 0, 0, 1], 8080),
            seq: [
                (c as u32).wrapping_mul(2_654_435_761),
                (c as u32).wrapping_mul(40_503),
            ],
        };
        w.packet(&mut tcp, false, SYN, &[])?;
        w.packet(&mut tcp, true, SYN | ACK, &[])?;
        w.packet(&mut tcp, false, ACK, &[])?;
        for _ in 0..PER_CONNECTION {
            if exchanges >= EXCHANGES {
                break;
            }
            let n = exchanges;
            exchanges += 1;
            let (req, rsp) = if n % HUGE_EVERY == HUGE_EVERY - 1 {
                if (n / HUGE_EVERY).is_multiple_of(2) {
                    (
                        request(
                            "GET",
                            "/api/v1/files/35ae9654-1c0a-4a3e-9f7b-0123456789ab/content",
                            "",
                            &[],
                        ),
                        response(
                            "200 OK",
                            &format!(
                                "content-type: application/octet-stream\r\ncontent-length: {}\r\n",
                                bodies.huge.len()
                            ),
                            &bodies.huge,
                        ),
                    )
                } else {
                    (
                        request("POST", "/api/chat/completions", API_KEY_AUTH, &bodies.huge),
                        response(
                            "200 OK",
                            &format!(
                                "content-type: application/json\r\ncontent-length: {}\r\n",
                                bodies.completion.len()
                            ),
                            &bodies.completion,
                        ),
                    )
                }
            } else {
                match n % 10 {
                    0..=3 => (
                        request("GET", &format!("/api/v1/chats/35ae9654-1c0a-4a3e-9f7b-{:012x}", n), "", &[]),
                        response("200 OK", &format!("content-type: application/json\r\ncontent-length: {}\r\n", bodies.json.len()), &bodies.json),
                    ),
                    4 | 5 => {
                        let mut chunked = Vec::new();
                        for part in bodies.gzip_js.chunks(4096) {
                            chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                            chunked.extend_from_slice(part);
                            chunked.extend_from_slice(b"\r\n");
                        }
                        chunked.extend_from_slice(b"0\r\n\r\n");
                        (
                            request("GET", &format!("/_app/immutable/chunks/{n}.js"), "", &[]),
                            response("200 OK", "content-type: text/javascript\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n", &chunked),
                        )
                    }
                    6 => (
                        request("POST", "/api/chat/completions", API_KEY_AUTH, br#"{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}"#),
                        response("200 OK", "content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n", &bodies.sse),
                    ),
                    7 => (
                        request("POST", "/api/chat/completions", API_KEY_AUTH, br#"{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}"#),
                        response("200 OK", &format!("content-type: application/json\r\ncontent-length: {}\r\n", bodies.completion.len()), &bodies.completion),
                    ),
                    8 => (
                        request("GET", "/static/favicon.png", "If-None-Match: \"abc\"\r\n", &[]),
                        response("304 Not Modified", "etag: \"abc\"\r\n", &[]),
                    ),
                    _ => (
                        request("POST", "/api/v1/files/", "", &bodies.upload),
                        response("200 OK", &format!("content-type: application/json\r\ncontent-length: {}\r\n", bodies.json.len()), &bodies.json),
                    ),
                }
            };
            w.message(&mut tcp, false, &req)?;
            w.message(&mut tcp, true, &rsp)?;
        }
        w.packet(&mut tcp, false, FIN_ACK, &[])?;
        w.packet(&mut tcp, true, FIN_ACK, &[])?;
        w.packet(&mut tcp, false, ACK, &[])?;
    }
    w.out.flush()?;
    Ok(Generated {
        exchanges,
        connections,
        packets: w.packets,
        file_bytes: w.bytes,
        payload_bytes: w.payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_parsing() {
        let s = "GET / 200 1\n\n10 packets (0 skipped), 9 segments, 5 payload bytes; 2 connections (0 mid-stream), 1234 exchanges, 0 WebSocket events";
        assert_eq!(exchanges_from_summary(s), Some(1234));
        assert_eq!(exchanges_from_summary("nothing"), None);
    }
}
