//! The chunked decoder on any bytes, fed whole and byte by byte: both must agree.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webui_monitor::http::chunked::ChunkedDecoder;

fn decode(data: &[u8], step: usize) -> (Vec<u8>, Result<(usize, bool), ()>) {
    let mut d = ChunkedDecoder::new(256);
    let mut out = Vec::new();
    let mut consumed = 0;
    for part in data.chunks(step) {
        match d.feed(part, |b| out.extend_from_slice(b)) {
            Ok(fed) => {
                consumed += fed.consumed;
                if fed.done {
                    return (out, Ok((consumed, true)));
                }
            }
            Err(_) => return (out, Err(())),
        }
    }
    (out, Ok((consumed, false)))
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(data, data.len().max(1));
    let bytewise = decode(data, 1);
    assert_eq!(whole.1, bytewise.1);
    if whole.1.is_ok() {
        assert_eq!(whole.0, bytewise.0);
        assert!(whole.0.len() <= data.len());
    }
});
