use proptest::prelude::*;

use super::*;

/// Records every reported value as `path=value` text.
#[derive(Default)]
struct Recorder {
    wanted: Vec<&'static str>,
    seen: Vec<String>,
}

impl JsonVisitor for Recorder {
    fn wants_string(&self, path: &[&[u8]]) -> bool {
        let p = join(path);
        self.wanted.iter().any(|w| *w == p)
    }
    fn value(&mut self, path: &[&[u8]], value: JsonValue<'_>) {
        let v = match value {
            JsonValue::Null => "null".to_string(),
            JsonValue::Bool(b) => b.to_string(),
            JsonValue::Number(n) => n.to_string(),
            JsonValue::String { value, truncated } => {
                format!("{value:?}{}", if truncated { "…" } else { "" })
            }
            JsonValue::SkippedString => "str".to_string(),
            JsonValue::Object => "{".to_string(),
            JsonValue::Array => "[".to_string(),
        };
        self.seen.push(format!("{}={v}", join(path)));
    }
}

fn join(path: &[&[u8]]) -> String {
    path.iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

fn scan(doc: &[u8], wanted: &[&'static str]) -> (Vec<String>, Result<(), JsonError>, bool) {
    let mut r = Recorder {
        wanted: wanted.to_vec(),
        ..Default::default()
    };
    let mut s = JsonScanner::new(JsonLimits {
        max_depth: 8,
        max_string_bytes: 8,
    });
    s.feed(doc, &mut r);
    let res = s.finish(&mut r);
    (r.seen, res, s.truncated())
}

#[test]
fn reports_shallow_object_paths_only() {
    let doc = br#"{"model":"mock-gpt","stream":true,"n":-1.5e2,"usage":{"prompt_tokens":4,"deep":{"x":{"y":{"z":1}}}},"arr":[{"model":"no"}],"z":null}"#;
    let (seen, res, truncated) = scan(doc, &["model"]);
    assert_eq!(res, Ok(()));
    assert!(!truncated);
    assert_eq!(
        seen,
        vec![
            "={",
            "model=\"mock-gpt\"",
            "stream=true",
            "n=-150",
            "usage={",
            "usage.prompt_tokens=4",
            "usage.deep={",
            "usage.deep.x={",
            "usage.deep.x.y={",
            "arr=[",
            "z=null",
        ]
    );
}

#[test]
fn strings_are_capped_and_escapes_decoded() {
    let (seen, res, truncated) = scan(
        br#"{"a":"x\"\u00e9\ud83d\ude00","b":"0123456789"}"#,
        &["a", "b"],
    );
    assert_eq!(res, Ok(()));
    assert!(truncated);
    assert_eq!(seen, vec!["={", "a=\"x\\\"é😀\"", "b=\"01234567\"…"]);
}

#[test]
fn errors_are_reported() {
    assert_eq!(scan(b"{\"a\":}", &[]).1, Err(JsonError::Syntax));
    assert_eq!(scan(b"{\"a\":1", &[]).1, Err(JsonError::Incomplete));
    assert_eq!(scan(b"{} x", &[]).1, Err(JsonError::Syntax));
    assert_eq!(
        scan(b"[[[[[[[[[[1]]]]]]]]]]", &[]).1,
        Err(JsonError::TooDeep)
    );
    assert_eq!(scan(b"{\"a\":[1,2}", &[]).1, Err(JsonError::Syntax));
    assert_eq!(scan(b"{\"a\":tru}", &[]).1, Err(JsonError::Syntax));
    assert_eq!(scan(b"  42  ", &[]).1, Ok(()));
}

#[test]
fn long_keys_never_match() {
    let doc = br#"{"modelmodelmodelmodelmodelmodelmodel":"x","model":"y"}"#;
    let (seen, res, _) = scan(doc, &["model"]);
    assert_eq!(res, Ok(()));
    assert_eq!(seen, vec!["={", "model=\"y\""]);
}

#[test]
fn nesting_beyond_64_levels_is_tracked() {
    let limits = JsonLimits {
        max_depth: 200,
        max_string_bytes: 8,
    };
    // Objects and arrays alternate down to 150 levels; the paths stay reportable only while
    // every level is an object.
    let mut doc = Vec::new();
    for level in 0..150 {
        doc.extend_from_slice(if level % 2 == 0 { b"{\"k\":" } else { b"[" });
    }
    doc.push(b'1');
    for level in (0..150).rev() {
        doc.push(if level % 2 == 0 { b'}' } else { b']' });
    }
    let mut r = Recorder::default();
    let mut s = JsonScanner::new(limits);
    s.feed(&doc, &mut r);
    assert_eq!(s.finish(&mut r), Ok(()));
    assert_eq!(r.seen, vec!["={", "k=["]);

    // A closing bracket of the wrong kind at level 100 is caught.
    let at = doc.len() - 100;
    doc[at] = if doc[at] == b'}' { b']' } else { b'}' };
    let mut s = JsonScanner::new(limits);
    s.feed(&doc, &mut Recorder::default());
    assert_eq!(s.finish(&mut Recorder::default()), Err(JsonError::Syntax));
}

#[test]
fn numbers_are_read_as_the_float_parser_reads_them() {
    for literal in [
        "0",
        "-0",
        "7",
        "-12",
        "007",
        "123456789012345",
        "-999999999999999",
        "1234567890123456",
        "99999999999999999999",
        "1.5",
        "-1.5e2",
        "3e0",
        "1E+2",
    ] {
        let expected: f64 = literal.parse().unwrap();
        let got = number_value(literal.as_bytes());
        assert_eq!(
            (got.to_bits(), got),
            (expected.to_bits(), expected),
            "{literal}"
        );
    }
    for not_a_number in ["-", "1e", "--1", "1-", "1.5.5"] {
        assert!(
            number_value(not_a_number.as_bytes()).is_nan(),
            "{not_a_number}"
        );
    }
}

proptest! {
    #[test]
    fn string_runs_end_at_the_first_delimiter_or_control_byte(
        data in proptest::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => any::<u8>()], 0..300)
    ) {
        let naive = data
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .unwrap_or(data.len());
        prop_assert_eq!(string_end(&data), naive);
    }

    #[test]
    fn long_string_runs_end_at_the_first_delimiter_or_control_byte(
        data in proptest::collection::vec(prop_oneof![200 => 0x20u8..0xff, 1 => any::<u8>()], 0..300)
    ) {
        let naive = data
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .unwrap_or(data.len());
        prop_assert_eq!(string_end(&data), naive);
    }

    #[test]
    fn integers_are_read_as_the_float_parser_reads_them(n in any::<i64>()) {
        let literal = n.to_string();
        let expected: f64 = literal.parse().unwrap();
        prop_assert_eq!(number_value(literal.as_bytes()).to_bits(), expected.to_bits());
    }

    #[test]
    fn any_split_gives_the_same_values(split in proptest::collection::vec(0usize..200, 0..8)) {
        let doc: &[u8] = br#"{"model":"m\u00e9del","stream":false,"usage":{"prompt_tokens":12,"completion_tokens":3e0},"images":["aGVsbG8=","d29ybGQ="],"id":"abc","x":[true,false,null,{"y":"z"}]}"#;
        let whole = scan(doc, &["model", "id"]);
        let mut r = Recorder { wanted: vec!["model", "id"], ..Default::default() };
        let mut s = JsonScanner::new(JsonLimits { max_depth: 8, max_string_bytes: 8 });
        let mut cuts: Vec<usize> = split.into_iter().map(|c| c % (doc.len() + 1)).collect();
        cuts.sort_unstable();
        let mut prev = 0;
        for c in cuts.into_iter().chain([doc.len()]) {
            s.feed(&doc[prev..c], &mut r);
            prev = c;
        }
        let res = s.finish(&mut r);
        prop_assert_eq!(whole.0, r.seen);
        prop_assert_eq!(whole.1, res);
    }

    #[test]
    fn captured_values_are_the_same_whole_or_split(split in proptest::collection::vec(0usize..80, 0..6)) {
        // Over the cap (8), a character cut by the cap, invalid UTF-8, an escape, at the end.
        let doc = [
            "{\"a\":\"abcdefghijkl\",\"b\":\"abcdefg\u{e9}\",\"c\":\"x".as_bytes(),
            &[0xff],
            br#"y","d":"a\"b","e":12,"f":"z"}"#,
        ]
        .concat();
        let wanted = ["a", "b", "c", "d", "f"];
        let whole = scan(&doc, &wanted);
        prop_assert_eq!(
            &whole.0,
            &[
                "={", "a=\"abcdefgh\"…", "b=\"abcdefg\"…", "c=\"x\"…", "d=\"a\\\"b\"",
                "e=12", "f=\"z\"",
            ]
        );
        prop_assert_eq!(whole.1, Ok(()));
        let mut r = Recorder { wanted: wanted.to_vec(), ..Default::default() };
        let mut s = JsonScanner::new(JsonLimits { max_depth: 8, max_string_bytes: 8 });
        let mut cuts: Vec<usize> = split.into_iter().map(|c| c % (doc.len() + 1)).collect();
        cuts.sort_unstable();
        let mut prev = 0;
        for c in cuts.into_iter().chain([doc.len()]) {
            s.feed(&doc[prev..c], &mut r);
            prev = c;
        }
        prop_assert_eq!(s.finish(&mut r), Ok(()));
        prop_assert_eq!(whole.0, r.seen);
        prop_assert_eq!(whole.2, s.truncated());
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = scan(&data, &["a"]);
    }
}
