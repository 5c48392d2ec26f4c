//! The audit trail's `journal` output (`webui_monitor::audit::Output::Journal`) against a
//! datagram socket at the journal's path, in a mount namespace of this test's own (a tmpfs on
//! `/run/systemd`), so no journald is needed and the host's is never touched. The datagram is
//! read back in the journal's native protocol: one entry per event, the JSON line as `MESSAGE`.
//! Needs root (CAP_SYS_ADMIN for the mount namespace).
use std::{collections::BTreeMap, ffi::CString, os::unix::net::UnixDatagram, path::Path};

use anyhow::{Context as _, ensure};
use webui_monitor::{
    audit::{JOURNAL_IDENTIFIER, JOURNAL_SOCKET, Output},
    config::{AuditConfig, AuditOutput},
};
use webui_monitor_core::audit::{AddressSource, AuditEvent, AuditTokens};

/// Moves this thread into a new mount namespace with a private tmpfs on `/run/systemd`.
fn private_run_systemd() -> anyhow::Result<()> {
    let c = |s: &str| CString::new(s).expect("no NUL");
    // SAFETY: unshare(2) with CLONE_NEWNS changes only this thread's mount namespace (it
    // implies CLONE_FS, giving the thread its own filesystem context); no memory is shared.
    ensure!(
        unsafe { libc::unshare(libc::CLONE_NEWNS) } == 0,
        "unshare(CLONE_NEWNS): {} (run as root)",
        std::io::Error::last_os_error()
    );
    let (root, tmpfs, target) = (c("/"), c("tmpfs"), c("/run/systemd"));
    // SAFETY: valid NUL-terminated strings; making every mount private first keeps the tmpfs
    // below from propagating to the host's namespace.
    let private = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    ensure!(
        private == 0,
        "making / private: {}",
        std::io::Error::last_os_error()
    );
    std::fs::create_dir_all("/run/systemd")?;
    // SAFETY: as above.
    let mounted = unsafe {
        libc::mount(
            tmpfs.as_ptr(),
            target.as_ptr(),
            tmpfs.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    ensure!(
        mounted == 0,
        "tmpfs on /run/systemd: {}",
        std::io::Error::last_os_error()
    );
    std::fs::create_dir_all("/run/systemd/journal")?;
    Ok(())
}

/// The fields of one native-protocol datagram: `KEY=value\n`, or `KEY\n`, a little-endian u64
/// length, the value and `\n` for values with newlines.
fn fields(mut datagram: &[u8]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    while !datagram.is_empty() {
        let line_end = datagram
            .iter()
            .position(|&b| b == b'\n')
            .context("field without newline")?;
        let line = &datagram[..line_end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.insert(
                String::from_utf8(line[..eq].to_vec())?,
                String::from_utf8(line[eq + 1..].to_vec())?,
            );
            datagram = &datagram[line_end + 1..];
        } else {
            let rest = &datagram[line_end + 1..];
            let len = u64::from_le_bytes(rest.get(..8).context("length")?.try_into()?) as usize;
            let value = rest.get(8..8 + len).context("value")?;
            out.insert(
                String::from_utf8(line.to_vec())?,
                String::from_utf8(value.to_vec())?,
            );
            datagram = rest.get(8 + len + 1..).unwrap_or_default();
        }
    }
    Ok(out)
}

#[test]
fn journal_output_sends_one_entry_per_event() -> anyhow::Result<()> {
    private_run_systemd()?;
    let config = AuditConfig {
        output: AuditOutput::Journal,
        ..AuditConfig::default()
    };
    // No socket yet: the error says what to do.
    let error = Output::open(&config)
        .expect_err("no journal socket")
        .to_string();
    assert!(
        error.contains("no journal socket at /run/systemd/journal/socket"),
        "{error}"
    );

    let journal = UnixDatagram::bind(JOURNAL_SOCKET)?;
    assert!(Path::new(JOURNAL_SOCKET).exists());
    let mut output = Output::open(&config)?;
    let event = AuditEvent {
        time: "2026-12-07T11:19:15.78485Z".into(),
        user: "deff4022-ea99-4571-be21-9d8b3e2279ee".into(),
        auth: "jwt",
        auth_result: "verified",
        route: "/api/v1/messages",
        api: "messages",
        model: "mock-gpt".into(),
        status: Some(200),
        tokens: Some(AuditTokens {
            input: 40,
            output: 12,
            cached_input: 8,
            reasoning: 0,
        }),
        user_agent: Some("Anthropic/Python 0.86.0".into()),
        client_address: "203.0.113.7".parse()?,
        client_address_source: AddressSource::XForwardedFor,
        client_address_from_header: true,
        peer: "10.213.0.1".parse()?,
    };
    for _ in 0..2 {
        output.write(&event)?;
    }
    let mut buf = vec![0u8; 1 << 16];
    // Opening the output probes the socket with an empty datagram (systemd-journal-logger).
    assert_eq!(journal.recv(&mut buf)?, 0);
    for _ in 0..2 {
        let n = journal.recv(&mut buf)?;
        let entry = fields(&buf[..n])?;
        assert_eq!(
            entry.get("MESSAGE").map(String::as_str),
            Some(serde_json::to_string(&event)?.as_str())
        );
        assert_eq!(
            entry.get("SYSLOG_IDENTIFIER").map(String::as_str),
            Some(JOURNAL_IDENTIFIER)
        );
        // Notice (5), what systemd-journal-logger makes of `log::Level::Info`: an audit
        // record, not a warning.
        assert_eq!(entry.get("PRIORITY").map(String::as_str), Some("5"));
    }
    Ok(())
}
