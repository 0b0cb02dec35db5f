//! The reference diodes agree with the boundary cases exported next to the Lean spec
//! (`examples/cases.json`): each case names a diode, a payload in hex and whether the
//! predicate holds. The file is read with a small scanner rather than a JSON library, because
//! this crate has no dependencies at all.

const CASES: &str = include_str!("../../examples/cases.json");

struct Case {
    diode: String,
    payload: Vec<u8>,
    holds: bool,
}

/// The string value after the next `"key": "` at or after `*at`, advancing `*at`.
fn next_string(text: &str, at: &mut usize, key: &str) -> Option<String> {
    let marker = format!("\"{key}\": \"");
    let start = text[*at..].find(&marker)? + *at + marker.len();
    let end = text[start..].find('"')? + start;
    *at = end + 1;
    Some(text[start..end].to_owned())
}

fn next_bool(text: &str, at: &mut usize, key: &str) -> Option<bool> {
    let marker = format!("\"{key}\": ");
    let start = text[*at..].find(&marker)? + *at + marker.len();
    let rest = &text[start..];
    let value = if rest.starts_with("true") {
        true
    } else if rest.starts_with("false") {
        false
    } else {
        panic!("`{key}` at byte {start} is neither true nor false");
    };
    *at = start;
    Some(value)
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn cases() -> Vec<Case> {
    let mut at = 0;
    let mut out = Vec::new();
    while let Some(diode) = next_string(CASES, &mut at, "diode") {
        let payload = next_string(CASES, &mut at, "payload_hex").expect("payload_hex after diode");
        let holds = next_bool(CASES, &mut at, "holds").expect("holds after payload_hex");
        out.push(Case {
            diode,
            payload: hex(&payload),
            holds,
        });
    }
    out
}

#[test]
fn reference_diodes_agree_with_the_lean_cases() {
    let cases = cases();
    assert_eq!(cases.len(), CASES.matches("\"diode\":").count());
    assert!(cases.len() >= 100, "only {} cases read", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let diode = reference_diodes::by_name(&case.diode)
            .unwrap_or_else(|| panic!("unknown diode `{}` in cases.json", case.diode));
        if diode(&case.payload) != case.holds {
            failures.push(format!(
                "{}({:02x?}) should be {}",
                case.diode, case.payload, case.holds
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for (name, _) in reference_diodes::ALL {
        assert!(cases.iter().any(|c| c.diode == name), "no case for {name}");
    }
}
