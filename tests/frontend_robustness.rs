//! The front end on hostile spec text: mutated and truncated versions of
//! the seed examples go through `predicate_ir::parse`, `lower` and
//! `emit_bpf::compile_object`. Properties:
//!
//! - nothing panics;
//! - `parse` either returns a spec or an error whose JSON path (and
//!   message) starts with `$`;
//! - a spec that parses re-parses to itself from its canonical JSON;
//! - `lower` either returns a program or an error whose path starts with `$`;
//! - `compile_object` either returns an ELF object or a non-empty error.
//!
//! Mutations work on a JSON tree that keeps duplicate keys and raw number
//! text: delete a field or element, duplicate one, rename a key, replace a
//! value with one of another type (or a huge number, a deep nest, a long
//! string, a different valid construct), then byte flips, insertions,
//! deletions and a truncation on the text. Truncation at every length of
//! every example is checked exhaustively.

use std::cell::RefCell;

use lagic_tests::{proptest_cases, proptest_config, repo_root, SEED_DIODES};
use predicate_ir::Spec;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::TestRunner;
use serde_json::Value;

/// Cases in the default run.
const DEFAULT_CASES: u32 = 10_000;

/// A JSON tree that, unlike `serde_json::Value`, can hold duplicate keys and
/// numbers no Rust type holds.
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    /// The number's text, written verbatim.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn from_value(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Num(n.to_string()),
            Value::String(s) => Json::Str(s.clone()),
            Value::Array(a) => Json::Arr(a.iter().map(Json::from_value).collect()),
            Value::Object(o) => Json::Obj(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => out.push_str(&serde_json::to_string(s).expect("strings serialize")),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).expect("strings serialize"));
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Paths (child indices from the root) of every node, root first.
    fn paths(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new()];
        let mut i = 0;
        while i < out.len() {
            let path = out[i].clone();
            let children = match self.at(&path) {
                Json::Arr(items) => items.len(),
                Json::Obj(fields) => fields.len(),
                _ => 0,
            };
            for c in 0..children {
                let mut child = path.clone();
                child.push(c);
                out.push(child);
            }
            i += 1;
        }
        out
    }

    fn at(&self, path: &[usize]) -> &Json {
        path.iter().fold(self, |node, &i| match node {
            Json::Arr(items) => &items[i],
            Json::Obj(fields) => &fields[i].1,
            _ => unreachable!("paths only lead through containers"),
        })
    }

    fn at_mut(&mut self, path: &[usize]) -> &mut Json {
        path.iter().fold(self, |node, &i| match node {
            Json::Arr(items) => &mut items[i],
            Json::Obj(fields) => &mut fields[i].1,
            _ => unreachable!("paths only lead through containers"),
        })
    }
}

/// What replaces a value.
fn replacements() -> Vec<String> {
    let mut out: Vec<String> = [
        "null",
        "true",
        "false",
        "0",
        "-1",
        "-0",
        "1.5",
        "1e2",
        "1e400",
        "-1e400",
        "255",
        "256",
        "65535",
        "65536",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "\"\"",
        "\"pass\"",
        "\"drop\"",
        "\"text\"",
        "\"printable\"",
        "\"contains\"",
        "\"\\u0000\"",
        "[]",
        "{}",
        "[[0,255]]",
        "[[255,0]]",
        "[[0,256]]",
        "[0,255]",
        "[[[0,255]]]",
        "{\"start\":0,\"end\":null}",
        "{\"start\":5,\"end\":4}",
        "{\"start\":0,\"end\":65536}",
        "{\"op\":\"true\"}",
        "{\"op\":\"and\",\"args\":[]}",
        "{\"op\":\"nope\"}",
        "{\"op\":\"len\",\"cmp\":\"<\",\"value\":1400}",
        "{\"op\":\"prefix\",\"pattern\":[]}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Deep nesting: JSON arrays past serde's limit, predicates past ours.
    out.push(format!("{}{}", "[".repeat(200), "]".repeat(200)));
    let mut not = String::from("{\"op\":\"true\"}");
    for _ in 0..60 {
        not = format!("{{\"op\":\"not\",\"arg\":{not}}}");
    }
    out.push(not);
    out.push(format!("\"{}\"", "x".repeat(10_000)));
    out
}

/// Keys to rename to: unknown ones, and valid ones in the wrong place.
const KEYS: &[&str] = &[
    "",
    "Version",
    "op ",
    "x",
    "version",
    "name",
    "policy",
    "predicate",
    "op",
    "arg",
    "args",
    "window",
    "class",
    "pattern",
    "start",
    "end",
    "max",
    "open",
    "close",
    "strings",
    "cmp",
    "value",
    "index",
    "arp",
    "non_ip",
];

#[derive(Debug, Clone)]
enum TreeEdit {
    Delete(Index),
    Duplicate(Index),
    Rename(Index, &'static str),
    Replace(Index, Index),
}

#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn arb_tree_edit() -> BoxedStrategy<TreeEdit> {
    prop_oneof![
        2 => any::<Index>().prop_map(TreeEdit::Delete),
        2 => any::<Index>().prop_map(TreeEdit::Duplicate),
        1 => (any::<Index>(), select(KEYS)).prop_map(|(i, k)| TreeEdit::Rename(i, k)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(i, r)| TreeEdit::Replace(i, r)),
    ]
    .boxed()
}

fn arb_byte_edit() -> BoxedStrategy<ByteEdit> {
    let byte = prop_oneof![select(&b"{}[]\",:0123456789-e. \\un"[..]), any::<u8>()];
    prop_oneof![
        2 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| ByteEdit::Flip(i, x)),
        1 => (any::<Index>(), byte).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        1 => any::<Index>().prop_map(ByteEdit::Remove),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
    ]
    .boxed()
}

fn apply_tree_edit(tree: &mut Json, edit: &TreeEdit, replacements: &[String]) {
    let paths = tree.paths();
    let pick = |i: &Index| paths[i.index(paths.len())].clone();
    match edit {
        TreeEdit::Delete(i) | TreeEdit::Duplicate(i) | TreeEdit::Rename(i, _) => {
            let path = pick(i);
            let Some((&last, parent)) = path.split_last() else {
                return;
            };
            match (tree.at_mut(parent), edit) {
                (Json::Arr(items), TreeEdit::Delete(_)) => {
                    items.remove(last);
                }
                (Json::Obj(fields), TreeEdit::Delete(_)) => {
                    fields.remove(last);
                }
                (Json::Arr(items), TreeEdit::Duplicate(_)) => {
                    let copy = items[last].clone();
                    items.insert(last + 1, copy);
                }
                (Json::Obj(fields), TreeEdit::Duplicate(_)) => {
                    let copy = fields[last].clone();
                    fields.insert(last + 1, copy);
                }
                (Json::Obj(fields), TreeEdit::Rename(_, key)) => fields[last].0 = key.to_string(),
                _ => {}
            }
        }
        TreeEdit::Replace(i, r) => {
            let path = pick(i);
            let text = &replacements[r.index(replacements.len())];
            // Deeply nested replacements may exceed serde's own limit: keep
            // them as raw text by parsing lazily.
            let value = serde_json::from_str::<Value>(text)
                .map(|v| Json::from_value(&v))
                .unwrap_or_else(|_| Json::Num(text.clone()));
            *tree.at_mut(&path) = value;
        }
    }
}

fn apply_byte_edit(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    if bytes.is_empty() {
        return;
    }
    match edit {
        ByteEdit::Flip(i, x) => {
            let at = i.index(bytes.len());
            bytes[at] ^= x;
        }
        ByteEdit::Insert(i, b) => {
            let at = i.index(bytes.len() + 1);
            bytes.insert(at, *b);
        }
        ByteEdit::Remove(i) => {
            let at = i.index(bytes.len());
            bytes.remove(at);
        }
        ByteEdit::Truncate(i) => {
            let at = i.index(bytes.len());
            bytes.truncate(at);
        }
    }
}

fn example_texts() -> Vec<(&'static str, String)> {
    SEED_DIODES
        .iter()
        .map(|name| {
            let path = repo_root().join("examples").join(format!("{name}.json"));
            (*name, std::fs::read_to_string(path).expect("example"))
        })
        .collect()
}

#[derive(Debug, Default)]
struct Outcomes {
    parse_errors: usize,
    parsed: usize,
    lower_errors: usize,
    compiled: usize,
    compile_errors: usize,
}

/// Runs `text` through the front end and checks every outcome.
fn front_end(text: &str, outcomes: &mut Outcomes) -> Result<(), String> {
    let spec = match predicate_ir::parse(text) {
        Ok(spec) => spec,
        Err(e) => {
            if !e.path.starts_with('$') || !e.to_string().starts_with('$') {
                return Err(format!("parse error without a JSON path: {e}"));
            }
            outcomes.parse_errors += 1;
            return Ok(());
        }
    };
    outcomes.parsed += 1;
    let canonical = spec.to_json_string();
    match predicate_ir::parse(&canonical) {
        Ok(again) if again == spec => {}
        Ok(_) => {
            return Err(format!(
                "canonical form re-parses differently:\n{canonical}"
            ))
        }
        Err(e) => {
            return Err(format!(
                "canonical form does not re-parse: {e}\n{canonical}"
            ))
        }
    }
    compile(&spec, outcomes)
}

fn compile(spec: &Spec, outcomes: &mut Outcomes) -> Result<(), String> {
    let program = match predicate_ir::lower(spec) {
        Ok(program) => program,
        Err(e) => {
            if !e.path().starts_with('$') || !e.to_string().starts_with('$') {
                return Err(format!("lowering error without a JSON path: {e}"));
            }
            outcomes.lower_errors += 1;
            return Ok(());
        }
    };
    match emit_bpf::compile_object(&program) {
        Ok(object) if object.starts_with(b"\x7fELF") => outcomes.compiled += 1,
        Ok(_) => return Err("compile_object returned something other than ELF".into()),
        Err(e) if !e.to_string().trim().is_empty() => outcomes.compile_errors += 1,
        Err(_) => return Err("compile_object failed with an empty message".into()),
    }
    Ok(())
}

#[test]
fn mutated_specs_never_panic_and_errors_name_a_path() {
    let examples = example_texts();
    let trees: Vec<Json> = examples
        .iter()
        .map(|(_, text)| Json::from_value(&serde_json::from_str(text).expect("example JSON")))
        .collect();
    let replacements = replacements();
    let outcomes = RefCell::new(Outcomes::default());
    let strategy = (
        0..trees.len(),
        vec(arb_tree_edit(), 0..4),
        vec(arb_byte_edit(), 0..3),
    );
    let mut runner = TestRunner::new(proptest_config(
        "frontend-robustness",
        proptest_cases(DEFAULT_CASES),
    ));
    let result = runner.run(&strategy, |(example, tree_edits, byte_edits)| {
        let mut tree = trees[example].clone();
        for edit in &tree_edits {
            apply_tree_edit(&mut tree, edit, &replacements);
        }
        let mut bytes = tree.text().into_bytes();
        for edit in &byte_edits {
            apply_byte_edit(&mut bytes, edit);
        }
        let text = String::from_utf8_lossy(&bytes);
        front_end(&text, &mut outcomes.borrow_mut())
            .map_err(|why| TestCaseError::fail(format!("{why}\ninput: {text}")))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let o = outcomes.into_inner();
    eprintln!("mutated specs: {o:?}");
    let total = o.parse_errors + o.parsed;
    assert!(
        o.parse_errors * 10 >= total && o.compiled * 10 >= total,
        "mutations too tame or too wild: {o:?}"
    );
}

/// Every prefix of every example: a parse error naming `$...` (the whole
/// text, or the text without its final newline, parses and compiles).
#[test]
fn every_truncation_of_every_example_is_a_clear_error() {
    let mut outcomes = Outcomes::default();
    for (name, text) in example_texts() {
        for len in 0..=text.len() {
            if !text.is_char_boundary(len) {
                continue;
            }
            let cut = &text[..len];
            front_end(cut, &mut outcomes)
                .unwrap_or_else(|why| panic!("{name} cut to {len}: {why}"));
            if cut.trim_end() != text.trim_end() {
                assert!(
                    predicate_ir::parse(cut).is_err(),
                    "{name} cut to {len} parsed"
                );
            }
        }
    }
    assert!(outcomes.compiled >= SEED_DIODES.len(), "{outcomes:?}");
    eprintln!("truncations: {outcomes:?}");
}
