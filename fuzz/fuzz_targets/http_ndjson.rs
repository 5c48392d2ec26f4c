//! The NDJSON parser on any bytes: split position must not change the result.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webui_monitor_core::{
    fuzzing::{JsonLimits, NdjsonParser},
    segment::Timestamp,
};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let mut whole = NdjsonParser::new(JsonLimits::default());
    whole.feed(body, Timestamp(0));
    whole.finish();
    let mut split = NdjsonParser::new(JsonLimits::default());
    let at = usize::from(cut).min(body.len());
    split.feed(&body[..at], Timestamp(0));
    split.feed(&body[at..], Timestamp(0));
    split.finish();
    assert_eq!(whole.summary(), split.summary());
    assert_eq!(whole.usage(), split.usage());
    assert_eq!(whole.truncated(), split.truncated());
});
