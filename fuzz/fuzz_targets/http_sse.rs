//! The event-stream parser on any bytes: split position must not change the result.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webui_monitor_core::{
    fuzzing::{JsonLimits, SseParser},
    segment::Timestamp,
};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let mut whole = SseParser::new(JsonLimits::default());
    whole.feed(body, Timestamp(0));
    let mut split = SseParser::new(JsonLimits::default());
    let at = usize::from(cut).min(body.len());
    split.feed(&body[..at], Timestamp(0));
    split.feed(&body[at..], Timestamp(0));
    assert_eq!(whole.summary(), split.summary());
    assert_eq!(whole.usage(), split.usage());
});
