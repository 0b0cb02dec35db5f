//! Lowering: DFA sizes and minimality, scan sharing, pass grouping, limits
//! (with the path of the offending construct), and normalization results.

use predicate_ir::arbitrary::arb_pattern;
use predicate_ir::dfa::{contains_dfa, minimize_dfa};
use predicate_ir::spec::MAX_OFFSET;
use predicate_ir::{
    eval, lower, lower_with, normalize, ByteClass, Cmp, Dfa, Formula, Limits, LowerError, Machine,
    Pred, Spec, Window,
};

mod common;

fn spec(predicate: Pred) -> Spec {
    Spec {
        name: "t".into(),
        description: String::new(),
        policy: Default::default(),
        predicate,
        mode: predicate_ir::Mode::Packet,
    }
}

fn word(w: &str) -> Vec<ByteClass> {
    w.bytes()
        .map(|b| ByteClass::from_bytes([b.to_ascii_lowercase(), b.to_ascii_uppercase()]))
        .collect()
}

fn window(start: u32, end: Option<u32>) -> Window {
    Window { start, end }
}

fn dfa_of(program_pred: Pred) -> Dfa {
    let program = lower(&spec(program_pred)).unwrap();
    assert_eq!(program.scans.len(), 1);
    match &program.scans[0].machine {
        Machine::Dfa(d) => d.clone(),
        other => panic!("expected a DFA, got {other:?}"),
    }
}

/// Independent minimality check (table filling): every pair of reachable
/// states is distinguished by some suffix, and every state is reachable.
fn assert_minimal(dfa: &Dfa) {
    let n = dfa.next.len();
    let mut reachable = vec![false; n];
    let mut stack = vec![0usize];
    reachable[0] = true;
    while let Some(s) = stack.pop() {
        for &t in dfa.next[s].iter() {
            if !reachable[t as usize] {
                reachable[t as usize] = true;
                stack.push(t as usize);
            }
        }
    }
    assert!(reachable.iter().all(|&r| r), "unreachable states");
    // distinct[a * n + b]: some suffix is accepted from exactly one of a, b.
    let mut distinct: Vec<bool> = (0..n * n)
        .map(|i| dfa.accepting[i / n] != dfa.accepting[i % n])
        .collect();
    loop {
        let mut changed = false;
        for i in 0..n * n {
            let (a, b) = (i / n, i % n);
            if !distinct[i]
                && (0..256).any(|byte| {
                    let (ta, tb) = (dfa.next[a][byte] as usize, dfa.next[b][byte] as usize);
                    distinct[ta * n + tb]
                })
            {
                distinct[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (i, &is_distinct) in distinct.iter().enumerate() {
        let (a, b) = (i / n, i % n);
        assert!(a == b || is_distinct, "states {a} and {b} are equivalent");
    }
}

#[test]
fn dfa_state_counts() {
    let contains = |w: &str| {
        dfa_of(Pred::Contains {
            window: Window::ALL,
            pattern: word(w),
        })
    };
    assert_eq!(contains("hate").next.len(), 5);
    assert_eq!(contains("h").next.len(), 2);
    assert_eq!(contains("aa").next.len(), 3);
    assert_eq!(contains("abab").next.len(), 5);
    let all = dfa_of(Pred::All {
        window: Window::ALL,
        class: ByteClass::text(),
    });
    assert_eq!(all.next.len(), 2);
    assert_eq!(all.accepting, vec![true, false]);
    let any = dfa_of(Pred::Any {
        window: Window::ALL,
        class: ByteClass::from_bytes(*b"x"),
    });
    assert_eq!(any.next.len(), 2);
    assert_eq!(any.accepting, vec![false, true]);
    // "a" followed by 3 arbitrary bytes: only the earliest recent "a"
    // matters, so the minimal DFA has 5 states.
    let mut pattern = vec![ByteClass::from_bytes(*b"a")];
    pattern.extend(vec![ByteClass::full(); 3]);
    let spread = dfa_of(Pred::Contains {
        window: Window::ALL,
        pattern,
    });
    assert_eq!(spread.next.len(), 5);
    for dfa in [contains("hate"), contains("abab"), all, any, spread] {
        assert_minimal(&dfa);
        assert_eq!(minimize_dfa(&dfa), dfa, "not in canonical form");
    }
}

#[test]
fn random_pattern_dfas_are_minimal_and_canonical() {
    let mut runner = common::runner("pattern-dfas-minimal", 150);
    runner
        .run(&arb_pattern(), |pattern| {
            if let Ok(dfa) = contains_dfa(&pattern, 2048) {
                if dfa.next.len() <= 40 {
                    assert_minimal(&dfa);
                }
                assert_eq!(minimize_dfa(&dfa), dfa);
                // State 0 is initial and the matched state is an accepting sink.
                for (s, row) in dfa.next.iter().enumerate() {
                    if dfa.accepting[s] {
                        assert!(row.iter().all(|&t| t as usize == s));
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn identical_scans_are_shared_and_passes_group_by_window() {
    let w16 = window(0, Some(16));
    let text_all = Pred::All {
        window: w16,
        class: ByteClass::text(),
    };
    // An `and`: its positive scan arguments are not combined (see
    // `block_lists_become_one_scan`), so each keeps its own scan.
    let program = lower(&spec(Pred::And(vec![
        text_all.clone(),
        Pred::Contains {
            window: Window::ALL,
            pattern: word("ab"),
        },
        Pred::Not(Box::new(text_all.clone())),
        // Same language as `contains [0,16) <x>`: one DFA, one scan.
        Pred::Any {
            window: w16,
            class: ByteClass::from_bytes(*b"x"),
        },
        Pred::Contains {
            window: w16,
            pattern: vec![ByteClass::from_bytes(*b"x")],
        },
        Pred::DepthLe {
            window: w16,
            max: 3,
            open: ByteClass::from_bytes(*b"("),
            close: ByteClass::from_bytes(*b")"),
            strings: false,
        },
    ])))
    .unwrap();
    assert_eq!(program.scans.len(), 4, "{program}");
    assert_eq!(program.passes.len(), 2);
    assert_eq!(program.passes[0].window, w16);
    assert_eq!(program.passes[0].scans, vec![0, 2, 3]);
    assert_eq!(program.passes[1].window, Window::ALL);
    assert_eq!(program.passes[1].scans, vec![1]);
    let Formula::And(atoms) = &program.formula else {
        panic!("{program}")
    };
    assert_eq!(atoms[0], Formula::Scan(0));
    assert_eq!(atoms[2], Formula::Not(Box::new(Formula::Scan(0))));
    assert_eq!(atoms[3], Formula::Scan(2));
    assert_eq!(atoms[4], Formula::Scan(2));
    assert_eq!(program.formula.atom_count(), 6);
}

#[test]
fn prefix_lowers_to_byte_atoms() {
    let program = lower(&spec(Pred::Prefix {
        pattern: word("ok"),
    }))
    .unwrap();
    assert!(program.scans.is_empty());
    assert_eq!(
        program.formula,
        Formula::And(vec![
            Formula::Byte {
                index: 0,
                class: ByteClass::from_bytes(*b"oO")
            },
            Formula::Byte {
                index: 1,
                class: ByteClass::from_bytes(*b"kK")
            },
        ])
    );
}

#[test]
fn limits_name_the_offending_construct() {
    let hate = Pred::Contains {
        window: Window::ALL,
        pattern: word("hate"),
    };
    let tight = Limits {
        max_dfa_states: 4,
        ..Limits::default()
    };
    let e = lower_with(
        &spec(Pred::And(vec![
            Pred::True,
            Pred::Not(Box::new(hate.clone())),
        ])),
        &tight,
    )
    .unwrap_err();
    assert_eq!(e.path(), "$.predicate.args[1].arg");
    assert_eq!(
        e.to_string(),
        "$.predicate.args[1].arg: contains needs a DFA of 5 states; the limit is 4 states per scan"
    );

    let one_scan = Limits {
        max_scans: 1,
        ..Limits::default()
    };
    let two = spec(Pred::Or(vec![
        hate.clone(),
        hate.clone(),
        Pred::All {
            window: Window::ALL,
            class: ByteClass::text(),
        },
    ]));
    let e = lower_with(&two, &one_scan).unwrap_err();
    assert!(
        matches!(
            e,
            LowerError::TooManyScans {
                count: 2,
                limit: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.path(), "$.predicate.args[2]");

    let few_atoms = Limits {
        max_formula_atoms: 3,
        ..Limits::default()
    };
    let over = Pred::And(vec![
        Pred::Len {
            cmp: Cmp::Lt,
            value: 9,
        },
        Pred::Prefix {
            pattern: word("hate"),
        },
    ]);
    let e = lower_with(&spec(over), &few_atoms).unwrap_err();
    assert_eq!(e.path(), "$.predicate.args[1]");
    assert!(
        matches!(
            e,
            LowerError::TooManyAtoms {
                count: 5,
                limit: 3,
                ..
            }
        ),
        "{e}"
    );

    // "a" then 20 arbitrary bytes: 22 minimal states. A plain subset
    // construction would explore 2^20 sets; dropping covered positions
    // keeps it at 22.
    let mut pattern = vec![ByteClass::from_bytes(*b"a")];
    pattern.extend(vec![ByteClass::full(); 20]);
    let spread = Pred::Contains {
        window: Window::ALL,
        pattern,
    };
    let program = lower(&spec(spread.clone())).unwrap();
    assert_eq!(program.scans[0].machine.state_count(), 22);
    let small_budget = Limits {
        max_construction_states: 10,
        ..Limits::default()
    };
    let either = Pred::Or(vec![
        Pred::Len {
            cmp: Cmp::Eq,
            value: 3,
        },
        spread,
    ]);
    let e = lower_with(&spec(either), &small_budget).unwrap_err();
    assert!(
        matches!(e, LowerError::ConstructionTooLarge { limit: 10, .. }),
        "{e}"
    );
    assert_eq!(e.path(), "$.predicate.args[1]");
}

#[test]
fn normalize_flattens_and_folds() {
    let x = Pred::Byte {
        index: 3,
        class: ByteClass::from_bytes(*b"x"),
    };
    let y = Pred::Any {
        window: Window::ALL,
        class: ByteClass::from_bytes(*b"y"),
    };
    let nested = Pred::And(vec![
        Pred::True,
        Pred::And(vec![x.clone(), Pred::And(vec![y.clone()])]),
        Pred::Not(Box::new(Pred::Not(Box::new(x.clone())))),
        Pred::Or(vec![]),
    ]);
    assert_eq!(normalize(&nested), Pred::False);
    let nested = Pred::And(vec![
        Pred::True,
        Pred::And(vec![x.clone(), Pred::And(vec![y.clone()])]),
        Pred::Not(Box::new(Pred::Not(Box::new(x.clone())))),
        Pred::And(vec![]),
    ]);
    assert_eq!(normalize(&nested), Pred::And(vec![x.clone(), y.clone()]));
    assert_eq!(normalize(&Pred::Or(vec![Pred::Or(vec![y.clone()])])), y);
    assert_eq!(
        normalize(&Pred::Not(Box::new(Pred::Len {
            cmp: Cmp::Lt,
            value: 9
        }))),
        Pred::Len {
            cmp: Cmp::Ge,
            value: 9
        }
    );
    let short = window(10, Some(12));
    let cases = [
        (
            Pred::All {
                window: window(5, Some(5)),
                class: ByteClass::empty(),
            },
            Pred::True,
        ),
        (
            Pred::All {
                window: short,
                class: ByteClass::full(),
            },
            Pred::True,
        ),
        (
            Pred::All {
                window: short,
                class: ByteClass::empty(),
            },
            Pred::Len {
                cmp: Cmp::Le,
                value: 10,
            },
        ),
        (
            Pred::Any {
                window: short,
                class: ByteClass::empty(),
            },
            Pred::False,
        ),
        (
            Pred::Any {
                window: short,
                class: ByteClass::full(),
            },
            Pred::Len {
                cmp: Cmp::Gt,
                value: 10,
            },
        ),
        (
            Pred::Any {
                window: window(MAX_OFFSET, None),
                class: ByteClass::text(),
            },
            Pred::False,
        ),
        (
            Pred::Byte {
                index: 2,
                class: ByteClass::empty(),
            },
            Pred::False,
        ),
        (
            Pred::Byte {
                index: 2,
                class: ByteClass::full(),
            },
            Pred::Len {
                cmp: Cmp::Gt,
                value: 2,
            },
        ),
        (
            Pred::Byte {
                index: MAX_OFFSET,
                class: ByteClass::full(),
            },
            Pred::False,
        ),
        (
            Pred::Contains {
                window: short,
                pattern: word("abc"),
            },
            Pred::False,
        ),
        (
            Pred::Contains {
                window: short,
                pattern: vec![ByteClass::full(); 2],
            },
            Pred::Len {
                cmp: Cmp::Ge,
                value: 12,
            },
        ),
        (
            Pred::Prefix {
                pattern: vec![ByteClass::full(), ByteClass::empty()],
            },
            Pred::False,
        ),
        (
            Pred::Prefix {
                pattern: vec![ByteClass::full(); 3],
            },
            Pred::Len {
                cmp: Cmp::Ge,
                value: 3,
            },
        ),
        (
            Pred::DepthLe {
                window: short,
                max: 2,
                open: ByteClass::full(),
                close: ByteClass::empty(),
                strings: false,
            },
            Pred::True,
        ),
        (
            Pred::DepthLe {
                window: Window::ALL,
                max: 2,
                open: ByteClass::empty(),
                close: ByteClass::full(),
                strings: true,
            },
            Pred::True,
        ),
    ];
    for (pred, expected) in cases {
        assert_eq!(normalize(&pred), expected, "{pred}");
    }
}

/// The `len` folds at both ends of the payload range, checked against the
/// meaning on payloads of exactly those lengths.
#[test]
fn len_folds_hold_at_the_range_ends() {
    let biggest = vec![b'a'; MAX_OFFSET as usize];
    let lengths = [0usize, 1, 2, MAX_OFFSET as usize - 1, MAX_OFFSET as usize];
    for cmp in [Cmp::Lt, Cmp::Le, Cmp::Eq, Cmp::Ne, Cmp::Ge, Cmp::Gt] {
        for value in [0, 1, MAX_OFFSET - 1, MAX_OFFSET] {
            let pred = Pred::Len { cmp, value };
            let folded = normalize(&pred);
            for &n in &lengths {
                assert_eq!(
                    eval(&folded, &biggest[..n]),
                    eval(&pred, &biggest[..n]),
                    "{pred} at n={n}"
                );
            }
        }
    }
    assert_eq!(
        normalize(&Pred::Len {
            cmp: Cmp::Le,
            value: MAX_OFFSET
        }),
        Pred::True
    );
    assert_eq!(
        normalize(&Pred::Len {
            cmp: Cmp::Gt,
            value: MAX_OFFSET
        }),
        Pred::False
    );
    assert_eq!(
        normalize(&Pred::Len {
            cmp: Cmp::Lt,
            value: 0
        }),
        Pred::False
    );
    assert_eq!(
        normalize(&Pred::Len {
            cmp: Cmp::Ge,
            value: 0
        }),
        Pred::True
    );
}

#[test]
fn depth_counter_order_rule() {
    // `"` in the open class: with `strings`, string handling sees it first.
    let quote_opens = |strings| Pred::DepthLe {
        window: Window::ALL,
        max: 0,
        open: ByteClass::from_bytes(*b"\"{"),
        close: ByteClass::from_bytes(*b"}"),
        strings,
    };
    let program = lower(&spec(quote_opens(true))).unwrap();
    assert!(program.evaluate(b"\"abc\""));
    assert!(eval(&quote_opens(true), b"\"abc\""));
    assert!(!eval(&quote_opens(false), b"\"abc\""));
    // A byte in both classes opens (open is tested before close).
    let both = Pred::DepthLe {
        window: Window::ALL,
        max: 1,
        open: ByteClass::from_bytes(*b"|"),
        close: ByteClass::from_bytes(*b"|"),
        strings: false,
    };
    assert!(eval(&both, b"|"));
    assert!(!eval(&both, b"||"));
    assert!(!lower(&spec(both)).unwrap().evaluate(b"||"));
    // An escaped quote does not end the string.
    let json = Pred::DepthLe {
        window: Window::ALL,
        max: 1,
        open: ByteClass::from_bytes(*b"["),
        close: ByteClass::from_bytes(*b"]"),
        strings: true,
    };
    assert!(eval(&json, b"[\"\\\"[[\"]"));
    assert!(!eval(&json, b"[\"\\\\\"[[\"]"));
}

#[test]
fn prefix_skips_implied_tests_and_splices_into_and() {
    let a = ByteClass::from_bytes(*b"a");
    let program = lower(&spec(Pred::And(vec![
        Pred::Len {
            cmp: Cmp::Lt,
            value: 9,
        },
        Pred::Prefix {
            pattern: vec![ByteClass::full(), a.clone(), ByteClass::full()],
        },
    ])))
    .unwrap();
    assert_eq!(
        program.formula,
        Formula::And(vec![
            Formula::Len {
                cmp: Cmp::Lt,
                value: 9
            },
            Formula::Byte { index: 1, class: a },
            Formula::Byte {
                index: 2,
                class: ByteClass::full()
            },
        ])
    );
    assert!(program.evaluate(b"xax"));
    assert!(!program.evaluate(b"xa"));
}

#[test]
fn block_lists_become_one_scan() {
    // Overlapping words, a word that is a prefix of another, a suffix of
    // another, one letter, case-insensitive classes.
    let words = ["he", "she", "hers", "his", "sh", "x", "shell"];
    let contains = |w: &str| Pred::Contains {
        window: Window::ALL,
        pattern: word(w),
    };
    let payloads: [&[u8]; 8] = [
        b"",
        b"hello",
        b"SHELL",
        b"a quiet day",
        b"t-h-e",
        b"Hi, sis",
        b"zzzzzzzzzzzX",
        b"sHe",
    ];
    let block = Pred::Not(Box::new(Pred::Or(
        words.iter().map(|w| contains(w)).collect(),
    )));
    let allow_each = Pred::And(
        words
            .iter()
            .map(|w| Pred::Not(Box::new(contains(w))))
            .collect(),
    );
    for p in [block, allow_each] {
        let program = lower(&spec(p.clone())).unwrap();
        assert_eq!(program.scans.len(), 1, "{program}");
        for payload in payloads {
            assert_eq!(program.evaluate(payload), eval(&p, payload), "{payload:?}");
        }
    }

    // `any` and `not all` join an `or`'s patterns; `all` joins an `and`'s
    // `not contains`; other windows and the other polarity stay apart.
    let w = window(2, Some(40));
    let mixed = Pred::Or(vec![
        Pred::Any {
            window: w,
            class: ByteClass::from_bytes(*b"!"),
        },
        Pred::Contains {
            window: w,
            pattern: word("ab"),
        },
        Pred::Not(Box::new(Pred::All {
            window: w,
            class: ByteClass::printable(),
        })),
        Pred::Contains {
            window: Window::ALL,
            pattern: word("cd"),
        },
        Pred::Not(Box::new(Pred::Contains {
            window: w,
            pattern: word("ef"),
        })),
    ]);
    let program = lower(&spec(mixed.clone())).unwrap();
    assert_eq!(program.scans.len(), 3, "{program}");
    assert_eq!(
        program.formula,
        Formula::Or(vec![
            Formula::Scan(0),
            Formula::Scan(1),
            Formula::Not(Box::new(Formula::Scan(2))),
        ])
    );
    for payload in [&b"xxab"[..], b"x\tyy", b"  !", b"cd", b"xxef", b"xxEF\x01"] {
        assert_eq!(
            program.evaluate(payload),
            eval(&mixed, payload),
            "{payload:?}"
        );
    }
}

#[test]
fn combined_scans_split_or_name_the_limit() {
    let words: Vec<Pred> = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
        .iter()
        .map(|w| Pred::Contains {
            window: Window::ALL,
            pattern: word(w),
        })
        .collect();
    let block = Pred::And(vec![
        Pred::Len {
            cmp: Cmp::Gt,
            value: 3,
        },
        Pred::Not(Box::new(Pred::Or(words))),
    ]);
    let whole = lower(&spec(block.clone())).unwrap();
    assert_eq!(whole.scans.len(), 1);
    let states = whole.scans[0].machine.state_count();
    // Too many states for one scan: split into parts that fit.
    let split = Limits {
        max_dfa_states: states / 2,
        ..Limits::default()
    };
    let program = lower_with(&spec(block.clone()), &split).unwrap();
    assert!(program.scans.len() > 1, "{program}");
    assert!(program
        .scans
        .iter()
        .all(|s| s.machine.state_count() <= states / 2));
    for payload in [
        &b"ALPHA"[..],
        b"xxfoxtrot",
        b"echo",
        b"chaRLIe",
        b"delt",
        b"bravado",
    ] {
        assert_eq!(
            program.evaluate(payload),
            eval(&block, payload),
            "{payload:?}"
        );
    }
    // Nor any room for parts: the error names the `or`, the count and the limits.
    let tight = Limits {
        max_dfa_states: states / 2,
        max_scans: 1,
        ..Limits::default()
    };
    let e = lower_with(&spec(block), &tight).unwrap_err();
    assert_eq!(e.path(), "$.predicate.args[1].arg");
    assert_eq!(
        e.to_string(),
        format!(
            "$.predicate.args[1].arg: the 6 patterns this or combines over one window need a DFA of \
             {states} states; the limit is {} states per scan and 1 scans per program (shorten \
             the list)",
            states / 2
        )
    );
}

#[test]
fn block_lists_of_thousands_of_words_are_one_scan_and_over_budget_lists_name_the_or() {
    // 2,000 distinct case-insensitive words: one combined scan, far past the
    // 512 states branchy code could take, within the 65,536 tables take.
    let mut words = Vec::new();
    let mut x: u32 = 7;
    while words.len() < 2_000 {
        let w: String = (0..6)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b'a' + ((x >> 16) % 26) as u8)
            })
            .collect();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let list = Pred::Not(Box::new(Pred::Or(
        words
            .iter()
            .map(|w| Pred::Contains {
                window: Window::ALL,
                pattern: word(w),
            })
            .collect(),
    )));
    let program = lower(&spec(list.clone())).unwrap();
    assert_eq!(program.scans.len(), 1);
    assert!(program.scans[0].machine.state_count() > 512, "{program}");
    assert!(!program.evaluate(format!("xx{}yy", words[1_999].to_uppercase()).as_bytes()));
    assert!(program.evaluate(b"a b c d e f"));
    // Past the construction budget: the error names the `or` and the limit.
    let small = Limits {
        max_combined_construction_states: 1_000,
        ..Limits::default()
    };
    let e = lower_with(&spec(list), &small).unwrap_err();
    assert_eq!(e.path(), "$.predicate.arg");
    assert_eq!(
        e.to_string(),
        "$.predicate.arg: building the automaton of the 2000 patterns this or combines over one \
         window explored more than 1000 states before minimization; shorten the list or use \
         fewer distinct classes"
    );
}
