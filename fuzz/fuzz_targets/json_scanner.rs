//! The streaming JSON scanner on any bytes: split position must not change what it reports.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webui_monitor_core::fuzzing::{JsonLimits, JsonScanner, JsonValue, JsonVisitor};

#[derive(Default)]
struct Record(Vec<String>);

impl JsonVisitor for Record {
    fn wants_string(&self, path: &[&[u8]]) -> bool {
        path.len() == 1
    }
    fn value(&mut self, path: &[&[u8]], value: JsonValue<'_>) {
        self.0.push(format!("{path:?}={value:?}"));
    }
}

fn scan(parts: &[&[u8]]) -> (Vec<String>, bool) {
    let limits = JsonLimits {
        max_depth: 16,
        max_string_bytes: 16,
    };
    let mut s = JsonScanner::new(limits);
    let mut r = Record::default();
    for p in parts {
        s.feed(p, &mut r);
    }
    let ok = s.finish(&mut r).is_ok();
    (r.0, ok)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, doc)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut).min(doc.len());
    let whole = scan(&[doc]);
    let split = scan(&[&doc[..at], &doc[at..]]);
    // Values are compared as text (NaN never equals itself).
    assert_eq!(whole, split);
});
