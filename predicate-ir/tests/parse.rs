//! Reading spec format v1: the seven seed examples, canonical writing, and
//! one test per kind of bad input with the exact JSON path it reports.

use predicate_ir::spec::{MAX_PRED_DEPTH, MAX_SPEC_BYTES};
use predicate_ir::{parse, Action, ByteClass, Cmp, Policy, Pred, Spec, SpecErrorKind, Window};
use std::path::PathBuf;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

const EXAMPLES: [&str; 7] = reference_diodes::SEED_NAMES;

fn read_example(name: &str) -> String {
    std::fs::read_to_string(examples_dir().join(format!("{name}.json"))).unwrap()
}

#[test]
fn seven_examples_parse_and_round_trip() {
    for name in EXAMPLES {
        let text = read_example(name);
        let spec = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(spec.name, name);
        let file_value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(spec.to_json(), file_value, "{name}: canonical form differs");
        // The writer's text reads back to the same spec.
        assert_eq!(parse(&spec.to_json_string()).unwrap(), spec, "{name}");
        assert_eq!(Spec::from_json(&file_value).unwrap(), spec, "{name}");
    }
}

#[test]
fn examples_mean_what_design_says() {
    let text = ByteClass::text();
    let hateless = parse(&read_example("hateless")).unwrap();
    let Pred::Not(inner) = &hateless.predicate else {
        panic!("hateless is not a `not`")
    };
    let Pred::Contains { window, pattern } = &**inner else {
        panic!("hateless does not negate a contains")
    };
    assert_eq!(*window, Window::ALL);
    assert_eq!(pattern.len(), 4);
    assert_eq!(pattern[0], ByteClass::from_bytes(*b"hH"));

    let p16 = parse(&read_example("printable16")).unwrap();
    assert_eq!(
        p16.predicate,
        Pred::All {
            window: Window {
                start: 0,
                end: Some(16)
            },
            class: text
        }
    );
    let start = parse(&read_example("json_start")).unwrap();
    assert_eq!(
        start.predicate,
        Pred::And(vec![
            Pred::Len {
                cmp: Cmp::Lt,
                value: 1400
            },
            Pred::Prefix {
                pattern: vec![ByteClass::from_bytes(*b"{")]
            }
        ])
    );
    assert_eq!(start.policy, Policy::default());
}

#[test]
fn defaults_and_sugar_are_accepted_and_written_canonically() {
    let spec = parse(
        r#"{"version": 1, "name": "_x9",
            "policy": {"arp": "drop"},
            "predicate": {"op": "and", "args": [
              {"op": "all", "window": {"start": 0, "end": null}, "class": "text"},
              {"op": "any", "window": {"start": 2, "end": 2}, "class": "any"},
              {"op": "byte", "index": 0, "class": "printable"},
              {"op": "byte", "index": 1, "class": [[100, 120], [0, 0], [90, 101], [121, 121]]},
              {"op": "byte", "index": 2, "class": []}]}}"#,
    )
    .unwrap();
    assert_eq!(spec.description, "");
    assert_eq!(
        spec.policy,
        Policy {
            arp: Action::Drop,
            ..Policy::default()
        }
    );
    let json = spec.to_json();
    assert_eq!(json["description"], "");
    assert_eq!(json["policy"]["other_ip"], "drop");
    let args = &json["predicate"]["args"];
    assert_eq!(
        args[0]["class"],
        serde_json::json!([[9, 10], [13, 13], [32, 126]])
    );
    assert_eq!(args[1]["class"], serde_json::json!([[0, 255]]));
    assert_eq!(args[2]["class"], serde_json::json!([[32, 126]]));
    assert_eq!(args[3]["class"], serde_json::json!([[0, 0], [90, 121]]));
    assert_eq!(args[4]["class"], serde_json::json!([]));
    assert_eq!(parse(&spec.to_json_string()).unwrap(), spec);
}

/// Wraps a predicate in an otherwise valid spec.
fn with_pred(pred: &str) -> String {
    format!(r#"{{"version": 1, "name": "t", "predicate": {pred}}}"#)
}

/// Parses `text`, expects an error, checks its path and returns its one-line rendering.
fn error_at(text: &str, path: &str) -> String {
    let e = parse(text).expect_err("spec should be rejected");
    let line = e.to_string();
    assert_eq!(e.path, path, "wrong path in: {line}");
    assert!(!line.contains('\n'), "multi-line error: {line}");
    line
}

#[test]
fn bad_cmp_names_path_expected_and_found() {
    let line = error_at(
        &with_pred(
            r#"{"op": "and", "args": [{"op": "true"}, {"op": "len", "cmp": "=<", "value": 3}]}"#,
        ),
        "$.predicate.args[1].cmp",
    );
    assert_eq!(
        line,
        r#"$.predicate.args[1].cmp: expected one of "<", "<=", "==", "!=", ">=", ">", found "=<""#
    );
}

#[test]
fn window_end_before_start() {
    let line = error_at(
        &with_pred(
            r#"{"op": "or", "args": [{"op": "false"}, {"op": "all", "window": {"start": 9, "end": 3}, "class": "text"}]}"#,
        ),
        "$.predicate.args[1].window.end",
    );
    assert!(line.contains("window end before start"), "{line}");
}

#[test]
fn numbers_out_of_range_or_not_integers() {
    let cases = [
        (
            r#"{"op": "len", "cmp": "<", "value": 65536}"#,
            "$.predicate.value",
            "65536",
        ),
        (
            r#"{"op": "len", "cmp": "<", "value": -1}"#,
            "$.predicate.value",
            "-1",
        ),
        (
            r#"{"op": "len", "cmp": "<", "value": 1.5}"#,
            "$.predicate.value",
            "1.5",
        ),
        (
            r#"{"op": "len", "cmp": "<", "value": 16.0}"#,
            "$.predicate.value",
            "16.0",
        ),
        (
            r#"{"op": "len", "cmp": "<", "value": "3"}"#,
            "$.predicate.value",
            "\"3\"",
        ),
        (
            r#"{"op": "byte", "index": 99999999999999999999, "class": "any"}"#,
            "$.predicate.index",
            "1e20",
        ),
        (
            r#"{"op": "byte", "index": 1, "class": [[0, 256]]}"#,
            "$.predicate.class[0][1]",
            "256",
        ),
        (
            r#"{"op": "byte", "index": 1, "class": [[-3, 2]]}"#,
            "$.predicate.class[0][0]",
            "-3",
        ),
        (
            r#"{"op": "depth_le", "window": {"start": 0, "end": null}, "max": 70000, "open": [], "close": [], "strings": false}"#,
            "$.predicate.max",
            "70000",
        ),
        (
            r#"{"op": "all", "window": {"start": 0, "end": 65536}, "class": []}"#,
            "$.predicate.window.end",
            "65536",
        ),
        (
            r#"{"op": "all", "window": {"start": null, "end": 5}, "class": []}"#,
            "$.predicate.window.start",
            "null",
        ),
    ];
    for (pred, path, found) in cases {
        let line = error_at(&with_pred(pred), path);
        assert!(line.ends_with(&format!("found {found}")), "{line}");
    }
}

#[test]
fn bad_classes_and_patterns() {
    let reversed = error_at(
        &with_pred(r#"{"op": "byte", "index": 0, "class": [[1, 2], [9, 4]]}"#),
        "$.predicate.class[1]",
    );
    assert!(reversed.contains("[9, 4] has lo above hi"), "{reversed}");
    let bad_name = error_at(
        &with_pred(r#"{"op": "byte", "index": 0, "class": "digits"}"#),
        "$.predicate.class",
    );
    assert!(bad_name.ends_with(r#"found "digits""#), "{bad_name}");
    let not_pair = error_at(
        &with_pred(r#"{"op": "byte", "index": 0, "class": [[1, 2, 3]]}"#),
        "$.predicate.class[0]",
    );
    assert!(
        not_pair.ends_with("found an array of 3 elements"),
        "{not_pair}"
    );
    error_at(
        &with_pred(r#"{"op": "byte", "index": 0, "class": [5]}"#),
        "$.predicate.class[0]",
    );
    let empty = error_at(
        &with_pred(r#"{"op": "prefix", "pattern": []}"#),
        "$.predicate.pattern",
    );
    assert!(empty.contains("1 to 64 byte classes"), "{empty}");
    assert!(empty.ends_with("found an empty array"), "{empty}");
    let long = format!(
        r#"{{"op": "prefix", "pattern": [{}]}}"#,
        vec!["\"any\""; 65].join(",")
    );
    let long = error_at(&with_pred(&long), "$.predicate.pattern");
    assert!(long.ends_with("found an array of 65 elements"), "{long}");
    let ok = format!(
        r#"{{"op": "prefix", "pattern": [{}]}}"#,
        vec!["\"any\""; 64].join(",")
    );
    assert!(parse(&with_pred(&ok)).is_ok());
    error_at(
        &with_pred(
            r#"{"op": "contains", "window": {"start": 0, "end": null}, "pattern": ["text", 7]}"#,
        ),
        "$.predicate.pattern[1]",
    );
}

#[test]
fn malformed_json_reports_line_and_column() {
    let e = parse("{\n  \"version\": 1,\n  \"name\": \"x\",,\n}").unwrap_err();
    assert_eq!(e.path, "$");
    match &e.kind {
        SpecErrorKind::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 15)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("$: malformed JSON at line 3 column 15: "),
        "{e}"
    );
    let eof = parse("{\"version\": 1").unwrap_err();
    assert!(matches!(eof.kind, SpecErrorKind::Syntax { .. }), "{eof}");
    let trailing = parse(&format!("{} x", with_pred(r#"{"op": "true"}"#))).unwrap_err();
    assert!(
        matches!(trailing.kind, SpecErrorKind::Syntax { .. }),
        "{trailing}"
    );
    assert!(matches!(
        parse("").unwrap_err().kind,
        SpecErrorKind::Syntax { .. }
    ));
}

#[test]
fn version_missing_wrong_or_unsupported() {
    let line = error_at(
        r#"{"version": 3, "name": "t", "predicate": {"op": "true"}, "extra": 1}"#,
        "$.version",
    );
    assert_eq!(
        line,
        "$.version: unsupported spec format version 3; this lagic reads versions 1 and 2"
    );
    let missing = error_at(r#"{"name": "t", "predicate": {"op": "true"}}"#, "$.version");
    assert!(missing.contains("missing field"), "{missing}");
    let string = error_at(
        r#"{"version": "1", "name": "t", "predicate": {"op": "true"}}"#,
        "$.version",
    );
    assert!(string.ends_with(r#"found "1""#), "{string}");
}

#[test]
fn unknown_missing_and_duplicate_fields() {
    let unknown = error_at(
        r#"{"version": 1, "name": "t", "predicate": {"op": "true"}, "comment": "x"}"#,
        "$.comment",
    );
    assert!(unknown.contains(r#"unknown field "comment""#), "{unknown}");
    let unknown_in_pred = error_at(
        &with_pred(r#"{"op": "not", "arg": {"op": "true"}, "args": []}"#),
        "$.predicate.args",
    );
    assert!(
        unknown_in_pred.contains(r#"expected one of "op", "arg""#),
        "{unknown_in_pred}"
    );
    error_at(
        &with_pred(r#"{"op": "all", "window": {"start": 0, "end": 4, "step": 1}, "class": []}"#),
        "$.predicate.window.step",
    );
    error_at(
        r#"{"version": 1, "name": "t", "policy": {"icmp": "pass"}, "predicate": {"op": "true"}}"#,
        "$.policy.icmp",
    );
    let odd_key = error_at(
        r#"{"version": 1, "name": "t", "predicate": {"op": "true"}, "a b": 1}"#,
        r#"$["a b"]"#,
    );
    assert!(odd_key.contains("unknown field"), "{odd_key}");
    let missing = error_at(&with_pred(r#"{"op": "not"}"#), "$.predicate.arg");
    assert!(missing.contains("missing field"), "{missing}");
    error_at(&with_pred(r#"{"arg": {"op": "true"}}"#), "$.predicate.op");
    error_at(r#"{"version": 1, "name": "t"}"#, "$.predicate");
    error_at(
        &with_pred(
            r#"{"op": "depth_le", "window": {"start": 0, "end": null}, "max": 2, "open": [], "close": []}"#,
        ),
        "$.predicate.strings",
    );
    let dup = error_at(
        &with_pred(r#"{"op": "true", "op": "false"}"#),
        "$.predicate.op",
    );
    assert!(dup.contains(r#"duplicate field "op""#), "{dup}");
    error_at(
        r#"{"version": 1, "version": 1, "name": "t", "predicate": {"op": "true"}}"#,
        "$.version",
    );
}

#[test]
fn unknown_op_and_wrong_types() {
    let op = error_at(&with_pred(r#"{"op": "xor", "args": []}"#), "$.predicate.op");
    assert!(
        op.starts_with(r#"$.predicate.op: unknown op "xor"; expected one of "true", "false""#),
        "{op}"
    );
    error_at(&with_pred(r#"{"op": 3}"#), "$.predicate.op");
    error_at(&with_pred(r#"[{"op": "true"}]"#), "$.predicate");
    error_at(
        &with_pred(r#"{"op": "and", "args": {"op": "true"}}"#),
        "$.predicate.args",
    );
    error_at(
        &with_pred(r#"{"op": "and", "args": [true]}"#),
        "$.predicate.args[0]",
    );
    error_at(
        &with_pred(
            r#"{"op": "depth_le", "window": {"start": 0, "end": null}, "max": 2, "open": [], "close": [], "strings": 1}"#,
        ),
        "$.predicate.strings",
    );
    error_at(
        &with_pred(r#"{"op": "any", "window": [0, 4], "class": []}"#),
        "$.predicate.window",
    );
    error_at("[1, 2]", "$");
    error_at("null", "$");
    let policy = error_at(
        r#"{"version": 1, "name": "t", "policy": {"arp": "allow"}, "predicate": {"op": "true"}}"#,
        "$.policy.arp",
    );
    assert!(
        policy.ends_with(r#"expected "pass" or "drop", found "allow""#),
        "{policy}"
    );
    error_at(
        r#"{"version": 1, "name": "t", "description": 5, "predicate": {"op": "true"}}"#,
        "$.description",
    );
}

#[test]
fn names_are_checked() {
    for bad in [
        "",
        "9lives",
        "has-dash",
        "has space",
        "ünï",
        &"a".repeat(64),
    ] {
        let text = format!(
            r#"{{"version": 1, "name": {}, "predicate": {{"op": "true"}}}}"#,
            serde_json::Value::String(bad.to_string())
        );
        error_at(&text, "$.name");
    }
    for good in ["a", "_", "A_9", &"a".repeat(63)] {
        let text = format!(r#"{{"version": 1, "name": "{good}", "predicate": {{"op": "true"}}}}"#);
        assert!(parse(&text).is_ok(), "{good}");
    }
}

fn nested_nots(levels: usize) -> String {
    let mut text = String::new();
    for _ in 0..levels {
        text.push_str(r#"{"op":"not","arg":"#);
    }
    text.push_str(r#"{"op":"true"}"#);
    text.push_str(&"}".repeat(levels));
    with_pred(&text)
}

#[test]
fn predicate_nesting_limit_names_the_path() {
    // MAX_PRED_DEPTH levels are fine (the innermost `true` is the last level).
    assert!(parse(&nested_nots(MAX_PRED_DEPTH - 1)).is_ok());
    let e = parse(&nested_nots(MAX_PRED_DEPTH)).unwrap_err();
    assert_eq!(
        e.kind,
        SpecErrorKind::PredicateTooDeep {
            limit: MAX_PRED_DEPTH
        }
    );
    assert_eq!(
        e.path,
        format!("$.predicate{}", ".arg".repeat(MAX_PRED_DEPTH))
    );
    // The deepest valid `and` chain, ending in a pattern, stays inside
    // serde_json's JSON nesting limit, so the error (if any) is ours.
    let mut and_chain = String::new();
    for _ in 0..MAX_PRED_DEPTH - 1 {
        and_chain.push_str(r#"{"op":"and","args":["#);
    }
    and_chain.push_str(r#"{"op":"prefix","pattern":[[[1,2]]]}"#);
    and_chain.push_str(&"]}".repeat(MAX_PRED_DEPTH - 1));
    assert!(parse(&with_pred(&and_chain)).is_ok());
}

#[test]
fn hundred_thousand_nested_nots_is_a_clean_error() {
    let e = parse(&nested_nots(100_000)).unwrap_err();
    assert_eq!(e.path, "$");
    assert!(matches!(e.kind, SpecErrorKind::JsonTooDeep { .. }), "{e}");
}

#[test]
fn hundred_thousand_nested_arrays_is_a_clean_error() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = parse(&text).unwrap_err();
    assert!(matches!(e.kind, SpecErrorKind::JsonTooDeep { .. }), "{e}");
    let inside = with_pred(&format!(
        r#"{{"op":"byte","index":0,"class":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    let e = parse(&inside).unwrap_err();
    assert!(matches!(e.kind, SpecErrorKind::JsonTooDeep { .. }), "{e}");
}

#[test]
fn huge_input_is_refused_before_parsing() {
    let text = format!(
        "{}{}",
        with_pred(r#"{"op":"true"}"#),
        " ".repeat(MAX_SPEC_BYTES)
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.path, "$");
    assert!(matches!(e.kind, SpecErrorKind::TooLarge { .. }), "{e}");
    // Just under the limit, whitespace padding is fine.
    let pad = MAX_SPEC_BYTES - with_pred(r#"{"op":"true"}"#).len();
    assert!(parse(&format!(
        "{}{}",
        with_pred(r#"{"op":"true"}"#),
        " ".repeat(pad)
    ))
    .is_ok());
}

/// Wide inputs within the size limit are handled in (near) linear time:
/// one object with 200,000 fields, one `and` with 100,000 distinct arguments.
#[test]
fn wide_inputs_are_not_quadratic() {
    let start = std::time::Instant::now();
    let fields: Vec<String> = (0..200_000).map(|i| format!("\"f{i}\": 0")).collect();
    let text = format!(
        r#"{{"version": 1, "name": "t", "predicate": {{"op": "true", {}}}}}"#,
        fields.join(",")
    );
    assert!(text.len() < MAX_SPEC_BYTES);
    let e = parse(&text).unwrap_err();
    assert_eq!(e.path, "$.predicate.f0");
    let args: Vec<String> = (0..100_000)
        .map(|i| format!(r#"{{"op":"len","cmp":"!=","value":{}}}"#, i % 65_536))
        .collect();
    let text = with_pred(&format!(r#"{{"op": "and", "args": [{}]}}"#, args.join(",")));
    assert!(text.len() < MAX_SPEC_BYTES);
    let spec = parse(&text).unwrap();
    let normalized = predicate_ir::normalize(&spec.predicate);
    let Pred::And(kept) = normalized else {
        panic!("and of len tests normalized to something else")
    };
    assert_eq!(kept.len(), 65_536);
    // Generous even for an unoptimized build on a slow machine; quadratic
    // handling of either input takes minutes.
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}
