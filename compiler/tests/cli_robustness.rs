//! The `lagic` binary on mutated seed specs (the front-end property test in
//! tests/frontend_robustness.rs runs the library on thousands; here a
//! deterministic sample goes through the real binary): truncations, byte
//! flips, invalid UTF-8, deleted, duplicated and renamed fields, type swaps
//! and huge numbers. Each must exit 2 with `lagic: error:` and a JSON path
//! (`$...`) or a JSON syntax position on stderr, never panic, and never
//! create the `-o` file; `lagic check` must refuse it the same way.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

fn lagic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lagic"))
}

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(format!("{name}.json"));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Replaces the first occurrence of `from` (which must exist) with `to`.
fn edit(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "{from:?} not in the example");
    text.replacen(from, to, 1).into_bytes()
}

/// Mutations of the seed specs, each invalid, named for the failure message.
fn mutations() -> Vec<(String, Vec<u8>)> {
    let hateless = example("hateless");
    let depth = example("json_depth");
    let start = example("json_start");
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    // Truncations at a spread of lengths (every length runs in the library test).
    for (name, text) in [("hateless", &hateless), ("json_depth", &depth)] {
        let len = text.trim_end().len();
        for cut in [
            0,
            1,
            len / 7,
            len / 3,
            len / 2,
            2 * len / 3,
            len - 2,
            len - 1,
        ] {
            out.push((
                format!("{name} cut to {cut} bytes"),
                text.as_bytes()[..cut].to_vec(),
            ));
        }
    }
    // Byte flips that break the syntax or a value.
    for (what, from, to) in [
        ("brace flipped", "{", "}"),
        ("quote dropped", "\"op\"", "op\""),
        ("colon flipped", ":", ";"),
        ("comma dropped", "\"version\": 1,", "\"version\": 1"),
    ] {
        out.push((format!("hateless: {what}"), edit(&hateless, from, to)));
    }
    let mut invalid_utf8 = hateless.clone().into_bytes();
    let at = hateless.find("hateless").expect("the name");
    invalid_utf8[at] = 0xff;
    out.push(("hateless: invalid UTF-8 in the name".into(), invalid_utf8));
    // Field deletions, duplications and renames.
    out.push((
        "json_depth without max".into(),
        edit(&depth, "\"max\": 2,", ""),
    ));
    out.push((
        "hateless with version twice".into(),
        edit(
            &hateless,
            "\"version\": 1,",
            "\"version\": 1, \"version\": 1,",
        ),
    ));
    out.push((
        "json_depth with strings twice".into(),
        edit(
            &depth,
            "\"strings\": true",
            "\"strings\": true, \"strings\": false",
        ),
    ));
    out.push((
        "hateless with an unknown field".into(),
        edit(
            &hateless,
            "\"op\": \"not\"",
            "\"op\": \"not\", \"negate\": true",
        ),
    ));
    out.push((
        "hateless with arg renamed".into(),
        edit(&hateless, "\"arg\"", "\"args\""),
    ));
    // Type swaps and huge numbers.
    for (what, from, to) in [
        (
            "version as a string",
            "\"version\": 1",
            "\"version\": \"1\"",
        ),
        (
            "version huge",
            "\"version\": 1",
            "\"version\": 18446744073709551616",
        ),
        ("window start 1e400", "\"start\": 0", "\"start\": 1e400"),
        ("window start -0.5", "\"start\": 0", "\"start\": -0.5"),
        (
            "window end past the range",
            "\"end\": null",
            "\"end\": 4294967296",
        ),
        (
            "pattern as an object",
            "\"pattern\": [",
            "\"pattern\": {\"x\": [",
        ),
        (
            "policy value misspelt",
            "\"arp\": \"pass\"",
            "\"arp\": \"Pass\"",
        ),
        ("policy as an array", "\"policy\": {", "\"policy\": [{"),
    ] {
        out.push((format!("hateless: {what}"), edit(&hateless, from, to)));
    }
    for (what, from, to) in [
        ("max negative", "\"max\": 2", "\"max\": -2"),
        (
            "max past the range",
            "\"max\": 2",
            "\"max\": 123456789012345678901234567890",
        ),
        ("strings as a number", "\"strings\": true", "\"strings\": 1"),
        (
            "open class as a string",
            "\"open\": [",
            "\"open\": \"brackets\", \"x\": [",
        ),
    ] {
        out.push((format!("json_depth: {what}"), edit(&depth, from, to)));
    }
    out.push((
        "json_start: len value as a string".into(),
        edit(&start, "\"value\": 1400", "\"value\": \"1400\""),
    ));
    out
}

#[test]
fn mutated_specs_exit_2_without_creating_the_output() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mutations = mutations();
    assert!(mutations.len() >= 30, "{} mutations", mutations.len());
    for (what, bytes) in &mutations {
        let spec = dir.path().join("spec.json");
        fs::write(&spec, bytes).expect("write spec");
        let out_path = dir.path().join("out.o");
        let out = lagic()
            .arg("compile")
            .arg(&spec)
            .arg("-o")
            .arg(&out_path)
            .output()
            .expect("run lagic");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.starts_with("lagic: error: "), "{what}: {err}");
        assert!(
            err.contains('$') || err.contains("UTF-8") || err.contains("malformed JSON"),
            "{what}: the message names no JSON path: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(
            !out_path.exists(),
            "{what}: lagic created {}",
            out_path.display()
        );
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["spec.json"], "{what}: files left behind");

        let out = lagic().arg("check").arg(&spec).output().expect("run lagic");
        assert_eq!(
            out.status.code(),
            Some(2),
            "check, {what}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).starts_with("lagic: error: "), "check, {what}");
    }
}

/// The unmutated examples do compile (so the failures above are the
/// mutations' doing).
#[test]
fn the_unmutated_examples_compile() {
    let dir = tempfile::tempdir().expect("temporary directory");
    for name in ["hateless", "json_depth", "json_start"] {
        let spec = dir.path().join("spec.json");
        fs::write(&spec, example(name)).expect("write spec");
        let out_path = dir.path().join("out.o");
        let out = lagic()
            .arg("compile")
            .arg(&spec)
            .arg("-o")
            .arg(&out_path)
            .output()
            .expect("run lagic");
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert!(fs::read(&out_path).expect("object").starts_with(b"\x7fELF"));
        fs::remove_file(&out_path).expect("remove");
    }
}
