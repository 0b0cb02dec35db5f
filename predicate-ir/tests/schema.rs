//! schema/spec-v1.schema.json against the reader: the seven examples and
//! the canonical writer's output validate; specs the schema can judge and
//! the reader rejects are rejected by both; and the checks the schema
//! cannot express (docs/spec-format.md lists them) are caught by the reader.

use predicate_ir::arbitrary::{arb_spec, arb_stream_spec};
use predicate_ir::parse;
use proptest::prelude::prop_oneof;
use serde_json::{json, Value};

mod common;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schema/spec-v1.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema compiles")
}

#[test]
fn seven_examples_validate() {
    let v = validator();
    for name in reference_diodes::SEED_NAMES {
        let text = std::fs::read_to_string(root().join(format!("examples/{name}.json"))).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn canonical_output_of_random_specs_validates() {
    let v = validator();
    let mut runner = common::runner("canonical-output-validates", 300);
    runner
        .run(&arb_spec(), |spec| {
            let value = spec.to_json();
            let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}\n{value:#}");
            Ok(())
        })
        .unwrap();
}

fn spec_with(pred: Value) -> Value {
    json!({"version": 1, "name": "t", "predicate": pred})
}

#[test]
fn schema_and_reader_both_reject() {
    let v = validator();
    let window = json!({"start": 0, "end": null});
    let bad = [
        json!({"version": 2, "name": "t", "predicate": {"op": "true"}}),
        json!({"name": "t", "predicate": {"op": "true"}}),
        json!({"version": 1, "name": "9t", "predicate": {"op": "true"}}),
        json!({"version": 1, "name": "t", "predicate": {"op": "true"}, "x": 1}),
        json!({"version": 1, "name": "t", "policy": {"arp": "allow"}, "predicate": {"op": "true"}}),
        spec_with(json!({"op": "xor", "args": []})),
        spec_with(json!({"op": "true", "arg": {"op": "true"}})),
        spec_with(json!({"op": "not"})),
        spec_with(json!({"op": "len", "cmp": "=<", "value": 3})),
        spec_with(json!({"op": "len", "cmp": "<", "value": 65536})),
        spec_with(json!({"op": "byte", "index": -1, "class": "any"})),
        spec_with(json!({"op": "byte", "index": 0, "class": "digits"})),
        spec_with(json!({"op": "byte", "index": 0, "class": [[0, 256]]})),
        spec_with(json!({"op": "byte", "index": 0, "class": [[0, 1, 2]]})),
        spec_with(json!({"op": "all", "window": {"start": 0}, "class": []})),
        spec_with(json!({"op": "prefix", "pattern": []})),
        spec_with(json!({"op": "prefix", "pattern": vec!["any"; 65]})),
        spec_with(json!({"op": "contains", "window": window, "pattern": ["text"], "x": 1})),
        spec_with(
            json!({"op": "depth_le", "window": window, "max": 2, "open": [], "close": [], "strings": "yes"}),
        ),
    ];
    for value in bad {
        assert!(!v.is_valid(&value), "schema accepted {value}");
        assert!(
            parse(&value.to_string()).is_err(),
            "reader accepted {value}"
        );
    }
}

/// What the schema cannot say, the reader still checks.
#[test]
fn reader_checks_what_the_schema_cannot() {
    let v = validator();
    let beyond_schema = [
        spec_with(json!({"op": "all", "window": {"start": 9, "end": 3}, "class": []})),
        spec_with(json!({"op": "byte", "index": 0, "class": [[9, 4]]})),
        spec_with(json!({"op": "len", "cmp": "<", "value": 16.0})),
    ];
    for value in beyond_schema {
        assert!(
            v.is_valid(&value),
            "schema now rejects {value}: update the docs"
        );
        assert!(
            parse(&value.to_string()).is_err(),
            "reader accepted {value}"
        );
    }
    let duplicate = r#"{"version": 1, "name": "t", "predicate": {"op": "true", "op": "false"}}"#;
    assert!(parse(duplicate).is_err());
}

// ---------------------------------------------------------------------------
// schema/spec-v2.schema.json: versions 1 and 2.

fn validator_v2() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schema/spec-v2.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).expect("the v2 schema compiles")
}

#[test]
fn v2_schema_accepts_every_example_of_both_versions() {
    let v = validator_v2();
    let mut files: Vec<std::path::PathBuf> = reference_diodes::SEED_NAMES
        .iter()
        .map(|name| root().join(format!("examples/{name}.json")))
        .collect();
    let stream_dir = root().join("examples/stream");
    files.extend(
        std::fs::read_dir(&stream_dir)
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    assert!(files.len() >= 17, "{files:?}");
    for path in files {
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

#[test]
fn v2_schema_accepts_canonical_output_of_random_specs() {
    let v = validator_v2();
    let mut runner = common::runner("canonical-output-validates-v2", 200);
    runner
        .run(&prop_oneof![arb_spec(), arb_stream_spec()], |spec| {
            let value = spec.to_json();
            let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}\n{value:#}");
            // And the reader reads it back to the same spec.
            assert_eq!(parse(&spec.to_json_string()).unwrap(), spec);
            Ok(())
        })
        .unwrap();
}

#[test]
fn v2_schema_and_reader_both_reject() {
    let v = validator_v2();
    let t = json!({"op": "true"});
    let view = json!({"http_response": {"headers": t, "body": t}});
    let bad = [
        json!({"version": 2, "name": "t", "predicate": t}),
        json!({"version": 2, "name": "t", "mode": "flow", "predicate": t}),
        json!({"version": 3, "name": "t", "mode": "stream", "predicate": t}),
        json!({"version": 1, "name": "t", "mode": "stream", "predicate": t}),
        json!({"version": 2, "name": "t", "mode": "packet", "view": view}),
        json!({"version": 2, "name": "t", "mode": "stream", "view": view, "predicate": t}),
        json!({"version": 2, "name": "t", "mode": "stream", "view": {"http_response": {"body": t}}}),
        json!({"version": 2, "name": "t", "mode": "stream", "view": {"http_request": {"headers": t, "body": t}}}),
        json!({"version": 2, "name": "t", "mode": "stream"}),
    ];
    for value in bad {
        assert!(!v.is_valid(&value), "schema accepted {value}");
        assert!(
            parse(&value.to_string()).is_err(),
            "reader accepted {value}"
        );
    }
    // Prefix-closure is beyond the schema: only the reader refuses this.
    let not_closed = json!({"version": 2, "name": "t", "mode": "stream",
        "predicate": {"op": "len", "cmp": ">", "value": 3}});
    assert!(v.is_valid(&not_closed));
    assert!(parse(&not_closed.to_string()).is_err());
}
