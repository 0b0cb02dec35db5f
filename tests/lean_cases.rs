//! The boundary cases exported next to the Lean spec (`examples/cases.json`,
//! format `{"version":1,"cases":[{"diode","payload_hex","holds","note"}]}`)
//! hold everywhere: for every case, `eval` on `examples/<diode>.json`, the
//! Rust reference diode and the compiled diode in the kernel (IPv4 and
//! IPv6, with and without options) all agree with `holds`. The kernel
//! passes an empty payload whatever `holds` says (n == 0 passes).

use std::collections::BTreeMap;

use lagic_frames::IpVersion;
use lagic_loader::Verdict;
use lagic_testkit::require_bpf;
use lagic_tests::{compile_example, load, repo_root, show_payload, FrameShape, SEED_DIODES};
use serde_json::Value;

struct Case {
    diode: String,
    payload: Vec<u8>,
    holds: bool,
    note: String,
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn cases() -> Vec<Case> {
    let path = repo_root().join("examples").join("cases.json");
    let text = std::fs::read_to_string(&path).expect("examples/cases.json");
    let doc: Value = serde_json::from_str(&text).expect("cases.json is JSON");
    assert_eq!(doc["version"], 1, "cases.json format version");
    doc["cases"]
        .as_array()
        .expect("a cases array")
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let field = |key: &str| c.get(key).unwrap_or_else(|| panic!("case {i}: no {key}"));
            Case {
                diode: field("diode")
                    .as_str()
                    .expect("diode is a string")
                    .to_owned(),
                payload: hex(field("payload_hex")
                    .as_str()
                    .expect("payload_hex is a string")),
                holds: field("holds").as_bool().expect("holds is a boolean"),
                note: c
                    .get("note")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect()
}

/// Every case names a seed diode, and every seed diode has cases.
#[test]
fn cases_cover_every_seed_diode() {
    let mut per_diode: BTreeMap<String, usize> = BTreeMap::new();
    for case in cases() {
        assert!(
            SEED_DIODES.contains(&case.diode.as_str()),
            "unknown diode {} ({})",
            case.diode,
            case.note
        );
        *per_diode.entry(case.diode).or_default() += 1;
    }
    for name in SEED_DIODES {
        assert!(per_diode.contains_key(name), "no case for {name}");
    }
}

#[test]
fn eval_and_reference_diodes_agree_with_every_case() {
    let mut failures = Vec::new();
    let all = cases();
    for name in SEED_DIODES {
        let spec = lagic_tests::example_spec(name);
        let reference = reference_diodes::by_name(name).expect("a reference diode per seed");
        for case in all.iter().filter(|c| c.diode == name) {
            let by_eval = predicate_ir::eval(&spec.predicate, &case.payload);
            let by_reference = reference(&case.payload);
            if by_eval != case.holds || by_reference != case.holds {
                failures.push(format!(
                    "{name} {} ({}): holds {}, eval {by_eval}, reference {by_reference}",
                    show_payload(&case.payload),
                    case.note,
                    case.holds
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kernel_agrees_with_every_case() {
    if !require_bpf() {
        return;
    }
    let all = cases();
    let mut shapes = vec![
        FrameShape::plain(IpVersion::V4),
        FrameShape::plain(IpVersion::V6),
    ];
    let mut with_options = FrameShape::plain(IpVersion::V4);
    with_options.ip_options = vec![1, 1, 1, 0];
    with_options.tcp_options = vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7];
    shapes.push(with_options);
    // Short payloads ride in frames padded to 60 bytes with junk that must
    // not be judged.
    let mut padded = FrameShape::plain(IpVersion::V4);
    padded.padding = Some(b"\x01hate".to_vec());
    shapes.push(padded);
    let mut failures = Vec::new();
    let mut runs = 0;
    for name in SEED_DIODES {
        let program = load(&compile_example(name));
        for case in all.iter().filter(|c| c.diode == name) {
            let want = Verdict::from_bool(case.payload.is_empty() || case.holds);
            for shape in &shapes {
                let got = program
                    .run(&shape.frame(&case.payload))
                    .unwrap_or_else(|e| panic!("{name} ({}): {e}", case.note))
                    .verdict;
                runs += 1;
                if got != want {
                    failures.push(format!(
                        "{name} {} ({}) in {:?}: kernel {got}, want {want}",
                        show_payload(&case.payload),
                        case.note,
                        shape
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} cases, {runs} kernel runs agree", all.len());
}
