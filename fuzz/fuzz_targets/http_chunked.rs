//! The chunked decoder on any bytes, fed whole and byte by byte: both must agree.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webui_monitor_core::fuzzing::ChunkedDecoder;

fn decode(data: &[u8], step: usize) -> (Vec<u8>, Result<(usize, bool), usize>) {
    let mut d = ChunkedDecoder::new(256);
    let mut out = Vec::new();
    let mut consumed = 0;
    for part in data.chunks(step) {
        let fed = d.feed(part, |b| out.extend_from_slice(b));
        consumed += fed.consumed;
        if fed.error.is_some() {
            return (out, Err(consumed));
        }
        if fed.done {
            return (out, Ok((consumed, true)));
        }
    }
    (out, Ok((consumed, false)))
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(data, data.len().max(1));
    let bytewise = decode(data, 1);
    // Same verdict at the same offset, same data, whatever the split.
    assert_eq!(whole, bytewise);
    assert!(whole.0.len() <= data.len());
});
