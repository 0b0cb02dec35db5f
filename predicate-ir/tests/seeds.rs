//! The seven seed diodes on hand-picked payloads: the reference evaluator,
//! the normalized predicate and the lowered program must all give the
//! expected verdict. Also the lowered shapes (DFA state counts, passes).

use predicate_ir::{eval, lower, normalize, parse, Machine, Program, Spec};

fn seed(name: &str) -> Spec {
    let path = format!("{}/../examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks `payload` against `expected` three ways.
fn check(spec: &Spec, program: &Program, payload: &[u8], expected: bool) {
    let shown = String::from_utf8_lossy(payload);
    assert_eq!(
        eval(&spec.predicate, payload),
        expected,
        "{}: eval on {shown:?}",
        spec.name
    );
    assert_eq!(
        eval(&normalize(&spec.predicate), payload),
        expected,
        "{}: normalized on {shown:?}",
        spec.name
    );
    assert_eq!(
        program.evaluate(payload),
        expected,
        "{}: program on {shown:?}",
        spec.name
    );
}

fn check_all(name: &str, cases: &[(&[u8], bool)]) -> Program {
    let spec = seed(name);
    let program = lower(&spec).unwrap();
    for &(payload, expected) in cases {
        check(&spec, &program, payload, expected);
    }
    program
}

#[test]
fn hateless() {
    let program = check_all(
        "hateless",
        &[
            (b"I hate bananas", false),
            (b"I love bananas", true),
            (b"HATE", false),
            (b"hAtE at the end", false),
            (b"at the end: haTe", false),
            (b"hat e", true),
            (b"hhate", false),
            (b"hathate", false),
            (b"hat", true),
            (b"", true),
            (b"whatever", false),
            (b"whatnot", true),
            (b"h\x00ate", true),
        ],
    );
    // A 600-byte payload with the word past the hackathon's 512-byte horizon.
    let mut long = vec![b'a'; 600];
    long.extend_from_slice(b"Hate");
    check(&seed("hateless"), &program, &long, false);
    // Minimal DFA for "any bytes, then [hH][aA][tT][eE]": 4 progress states + matched sink.
    assert_eq!(program.scans.len(), 1);
    let Machine::Dfa(dfa) = &program.scans[0].machine else {
        panic!("hateless lowered to a non-DFA")
    };
    assert_eq!(dfa.next.len(), 5);
    assert_eq!(dfa.accepting.iter().filter(|&&a| a).count(), 1);
    assert!(program.scans[0].machine.is_sink(4));
    // "hat" leaves it in state 3, and "e" then completes the match.
    assert_eq!(dfa.run(0, b"hat"), 3);
    assert_eq!(program.run_scan(0, b"xxhate"), 4);
}

#[test]
fn json_depth() {
    let program = check_all(
        "json_depth",
        &[
            (b"{\"a\":[1]}", true),
            (b"[[[1]]]", false),
            (b"[[1]]", true),
            (b"\"[[[[\"", true),
            (b"{\"a\":\"[[[[\"}", true),
            (b"{\"a\":\"\\\"[[[[\"}", true),
            (b"{\"a\":\"\\\\\"[[[}", false),
            (b"]]]]]][[", true),
            (b"[]{}[]{}[][]", true),
            (b"[{[", false),
            (b"{}", true),
            (b"", true),
            (b"\"", true),
            (b"\"\\", true),
        ],
    );
    assert_eq!(program.scans.len(), 1);
    let Machine::Depth(counter) = &program.scans[0].machine else {
        panic!("json_depth lowered to a non-counter")
    };
    assert_eq!(counter.max, 2);
    assert!(counter.strings);
    assert_eq!(program.scans[0].machine.state_count(), 10);
}

#[test]
fn json_prefix_and_json_start() {
    let prefix = check_all(
        "json_prefix",
        &[
            (b"{", true),
            (b"[1]", true),
            (b" {", false),
            (b"", false),
            (b"x", false),
        ],
    );
    assert!(prefix.scans.is_empty());
    let mut big = vec![b'{'];
    big.resize(1400, b' ');
    let start = check_all(
        "json_start",
        &[
            (b"{}", true),
            (b"[]", false),
            (&big[..1399], true),
            (&big, false),
            (b"", false),
        ],
    );
    assert!(start.scans.is_empty());
}

#[test]
fn printable_windows() {
    let program = check_all(
        "printable16",
        &[
            (b"GET / HTTP/1.1\r\n", true),
            (b"0123456789abcde\x01", false),
            (b"0123456789abcdef\x01", true),
            (b"\x7f", false),
            (b"tab\there", true),
            (b"", true),
        ],
    );
    let Machine::Dfa(dfa) = &program.scans[0].machine else {
        panic!("printable16 lowered to a non-DFA")
    };
    assert_eq!(dfa.next.len(), 2);
    assert_eq!(dfa.accepting, vec![true, false]);
    let mut p64 = vec![b'x'; 64];
    p64.push(0);
    check_all("printable64", &[(&p64, true), (&p64[1..], false)]);
    check_all("minimal", &[(b"\x00", false), (b"hello\r\n", true)]);
}

#[test]
fn summaries_name_scans_passes_and_formula() {
    let hateless = lower(&seed("hateless")).unwrap().summary();
    assert_eq!(
        hateless,
        "program hateless: 1 scan, 1 pass, formula of 1 atom\n  \
         scan0: [0, inf) dfa, 5 states\n  \
         pass0: [0, inf) runs scan0\n  \
         formula: not scan0\n"
    );
    let start = lower(&seed("json_start")).unwrap().summary();
    assert!(
        start.contains("formula: and(len < 1400, byte 0 ['{'])"),
        "{start}"
    );
    let depth = lower(&seed("json_depth")).unwrap().summary();
    assert!(
        depth.contains(
            "scan0: [0, inf) depth counter <= 2 open ['[' '{'] close [']' '}'] strings, 10 states"
        ),
        "{depth}"
    );
}
