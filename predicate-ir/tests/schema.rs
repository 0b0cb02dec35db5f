//! schema/spec-v1.schema.json against the reader: the seven examples and
//! the canonical writer's output validate; specs the schema can judge and
//! the reader rejects are rejected by both; and the checks the schema
//! cannot express (docs/spec-format.md lists them) are caught by the reader.

use predicate_ir::arbitrary::arb_spec;
use predicate_ir::parse;
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
