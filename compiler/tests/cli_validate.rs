//! `lagic compile` validates the emitted object before writing it
//! (docs/validation.md): on by default, skipped with `--no-validate`, and
//! a failure is exit 1 with nothing written. The failure path is driven by
//! the debug-build fault switch `LAGIC_DEBUG_BREAK_STEP`, which corrupts
//! one transition in the object before validation; release builds have no
//! such switch, and there the test checks that the variable changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lagic() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lagic"));
    c.env_remove("LAGIC_DEBUG_BREAK_STEP");
    c
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{name}.json"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn compile_validates_every_seed_by_default() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["hateless", "json_depth", "printable16", "json_start"] {
        let out = dir.path().join(format!("{name}.o"));
        let run = lagic()
            .arg("compile")
            .arg(example(name))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(0), "{name}: {}", stderr(&run));
        assert!(std::fs::read(&out).unwrap().starts_with(b"\x7fELF"));
    }
}

#[test]
fn a_validation_failure_is_exit_1_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hateless.o");
    let run = lagic()
        .env("LAGIC_DEBUG_BREAK_STEP", "1")
        .arg("compile")
        .arg(example("hateless"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    if cfg!(debug_assertions) {
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{err}");
        assert!(err.contains("translation validation failed"), "{err}");
        assert!(
            err.contains("scan 0") && err.contains("state 0") && err.contains("byte 0x"),
            "{err}"
        );
        assert!(!out.exists(), "nothing may be written");
        // An existing file is left untouched, and no temporary file stays.
        std::fs::write(&out, b"previous").unwrap();
        let again = lagic()
            .env("LAGIC_DEBUG_BREAK_STEP", "1")
            .arg("compile")
            .arg(example("hateless"))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(again.status.code(), Some(1));
        assert_eq!(std::fs::read(&out).unwrap(), b"previous");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Standard output gets nothing either.
        let to_stdout = lagic()
            .env("LAGIC_DEBUG_BREAK_STEP", "1")
            .args(["compile", "-o", "-"])
            .arg(example("hateless"))
            .output()
            .unwrap();
        assert_eq!(to_stdout.status.code(), Some(1));
        assert!(to_stdout.stdout.is_empty());
    } else {
        assert_eq!(
            run.status.code(),
            Some(0),
            "release builds have no fault switch: {}",
            stderr(&run)
        );
    }
}

/// The fault switch reaches seeds whose windows are only inline (no
/// callback): the broken transition is caught there too.
#[test]
fn a_broken_inline_step_is_caught() {
    for name in ["minimal", "printable16", "printable64"] {
        let run = lagic()
            .env("LAGIC_DEBUG_BREAK_STEP", "1")
            .args(["compile", "-o", "-"])
            .arg(example(name))
            .output()
            .unwrap();
        let err = stderr(&run);
        if cfg!(debug_assertions) {
            assert_eq!(run.status.code(), Some(1), "{name}: {err}");
            assert!(
                err.contains("translation validation failed"),
                "{name}: {err}"
            );
            assert!(
                err.contains("inline pass 0") && err.contains("scan 0") && err.contains("byte 0x"),
                "{name}: {err}"
            );
            assert!(run.stdout.is_empty(), "{name}: nothing written");
        } else {
            assert_eq!(run.status.code(), Some(0), "{name}: {err}");
        }
    }
}

#[test]
fn no_validate_skips_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hateless.o");
    let run = lagic()
        .env("LAGIC_DEBUG_BREAK_STEP", "1")
        .args(["compile", "--no-validate"])
        .arg(example("hateless"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    // The (in debug builds, corrupted) object is written unchecked.
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let written = std::fs::read(&out).unwrap();
    let clean = lagic()
        .args(["compile", "-o", "-"])
        .arg(example("hateless"))
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0));
    assert_eq!(
        written == clean.stdout,
        !cfg!(debug_assertions),
        "only the fault switch changes the bytes"
    );
}

/// Every command that compiles a spec into a program it loads (`run`,
/// `attach`, `lab up`) validates it first, with the same `--no-validate`
/// opt-out. Driven by the debug-build fault switch; nothing reaches the
/// kernel on the failing path (validation comes before loading), and the
/// opt-out runs are stopped by a later, harmless error (no such interface,
/// no such enclave binary) or are a `BPF_PROG_TEST_RUN`.
#[test]
fn every_command_loading_a_spec_validates_it() {
    if !cfg!(debug_assertions) {
        return; // release builds have no fault switch (see above)
    }
    let spec = example("hateless");
    let spec = spec.to_str().unwrap();
    let commands: [(&str, Vec<&str>); 3] = [
        ("run", vec!["run", spec, "--payload", "hi"]),
        ("attach", vec!["attach", spec, "--iface", "lagic-novalid0"]),
        (
            "lab up",
            vec![
                "lab",
                "up",
                "--diode",
                spec,
                "--name",
                "novalid",
                "--enclave-bin",
                "/nonexistent/lagic-enclave",
            ],
        ),
    ];
    for (name, args) in &commands {
        let broken = lagic()
            .env("LAGIC_DEBUG_BREAK_STEP", "1")
            .args(args)
            .output()
            .unwrap();
        let err = stderr(&broken);
        // Where a diode is expected, exit 1 means DROP: a spec that cannot
        // be compiled (or validated) is bad input.
        assert_eq!(broken.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains("translation validation failed"),
            "{name}: {err}"
        );
        assert!(err.contains("scan 0"), "{name}: {err}");
        assert!(broken.stdout.is_empty(), "{name}: nothing runs");

        let mut skipped = args.clone();
        let at = if *name == "lab up" { 2 } else { 1 };
        skipped.insert(at, "--no-validate");
        let unchecked = lagic()
            .env("LAGIC_DEBUG_BREAK_STEP", "1")
            .args(&skipped)
            .output()
            .unwrap();
        let err = stderr(&unchecked);
        assert!(!err.contains("translation validation"), "{name}: {err}");
        match *name {
            // The unchecked object reaches the kernel's test run (or, without
            // BPF rights, the check for them).
            "run" => assert!(
                matches!(unchecked.status.code(), Some(0 | 1))
                    || err.contains("cannot load programs"),
                "{name}: {err}"
            ),
            "attach" => assert!(err.contains("lagic-novalid0"), "{name}: {err}"),
            _ => assert!(
                err.contains("/nonexistent/lagic-enclave") || err.contains("root"),
                "{name}: {err}"
            ),
        }
    }
}
