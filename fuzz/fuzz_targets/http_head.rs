//! Request and response head parsing, and the resynchronisation scanners, on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webui_monitor_core::fuzzing::{
    FramingHeaders, HeadLimits, find_request_line, find_status_line, framing_line, parse_request,
    parse_response, plausible_request_line, plausible_status_line, refused_request_framing,
};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_headers: 16,
        max_path_bytes: 64,
        max_value_bytes: 64,
        api_key_header: "x-api-key",
    };
    if let Ok(h) = parse_request(data, &limits) {
        assert!(h.path.len() <= 64 * 3, "path cap (lossy UTF-8 may expand)");
        let _ = h.body_framing();
    }
    if let Ok(h) = parse_response(data, &limits) {
        assert!((100..=999).contains(&h.status));
        let _ = h.body_framing("GET");
        let _ = h.body_framing("HEAD");
    }
    // The framing of heads that are refused or skipped over a cap.
    let _ = refused_request_framing(data);
    let mut framing = FramingHeaders::default();
    for line in data.split(|&b| b == b'\n') {
        let _ = framing_line(&mut framing, line);
    }
    let _ = framing.request_body_framing();
    let _ = plausible_request_line(data);
    let _ = plausible_status_line(data);
    if let Some(at) = find_request_line(data) {
        assert!(plausible_request_line(&data[at..]));
    }
    if let Some(at) = find_status_line(data) {
        assert!(plausible_status_line(&data[at..]));
    }
});
