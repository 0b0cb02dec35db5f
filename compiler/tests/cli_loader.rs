//! `lagic run`, `attach`, `detach` and `status` against the kernel, through the binary: the
//! loader's hardening as an operator meets it (exit codes, messages, what is left behind).
//!
//! Needs root; run under the kernel lock (`flock /tmp/lagic-kernel.lock`), since attach tests
//! create namespaces, veths and pins.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lagic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lagic"))
}

fn run(args: &[&str]) -> Output {
    lagic().args(args).output().expect("running lagic")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scratch directory for this test, emptied first.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lagic-cli-loader-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles the seed example `name` into `dir`.
fn compile(name: &str, dir: &Path) -> PathBuf {
    let spec = common::workspace().join(format!("examples/{name}.json"));
    let out = dir.join(format!("{name}.o"));
    let o = run(&[
        "compile",
        spec.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    out
}

fn write_changed(object: &Path, dir: &Path, name: &str, change: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(object).unwrap();
    change(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The object with every BTF line-info file name `lagic` renamed `other`: a well-formed object
/// that lagic did not write.
fn foreign(object: &Path, dir: &Path) -> PathBuf {
    write_changed(object, dir, "foreign.o", |b| {
        let at = b
            .windows(7)
            .position(|w| w == b"\0lagic\0")
            .expect("the BTF strings name lagic's writer");
        b[at + 1..at + 6].copy_from_slice(b"other");
    })
}

/// Malformed objects are bad input (exit 2) with a message, never a panic (exit 101): among
/// them the two single-byte changes that made Aya panic in `run` and in `attach`.
#[test]
fn malformed_objects_exit_2_without_panicking() {
    if !common::require_root("loading programs") {
        return;
    }
    let dir = scratch("malformed");
    let minimal = compile("minimal", &dir);
    let len = std::fs::metadata(&minimal).unwrap().len() as usize;
    let mut cases = vec![
        write_changed(&minimal, &dir, "sym.o", |b| b[4788] = 1),
        write_changed(&minimal, &dir, "btfext.o", |b| b[4628] = 3),
        write_changed(&minimal, &dir, "short.o", |b| b.truncate(len / 2)),
    ];
    // Section headers sit at the end: damage each byte of the last few.
    for at in [len - 60, len - 100, len - 150] {
        cases.push(write_changed(&minimal, &dir, &format!("sh{at}.o"), |b| {
            b[at] ^= 0x80
        }));
    }
    for case in &cases {
        let name = case.to_str().unwrap();
        let o = run(&["run", name, "--payload", "x"]);
        assert_ne!(
            o.status.code(),
            Some(101),
            "run {name} panicked:\n{}",
            text(&o)
        );
        let o2 = run(&["attach", name, "--iface", "lo"]);
        assert_ne!(
            o2.status.code(),
            Some(101),
            "attach {name} panicked:\n{}",
            text(&o2)
        );
        assert_eq!(o2.status.code(), Some(2), "attach {name}:\n{}", text(&o2));
        assert!(!String::from_utf8_lossy(&o2.stderr).contains("panicked"));
    }
    // The two reported objects: a clear message naming the problem.
    for (case, says) in [(&cases[0], "function symbol"), (&cases[1], ".BTF.ext")] {
        for args in [
            vec!["run", case.to_str().unwrap(), "--payload", "x"],
            vec!["attach", case.to_str().unwrap(), "--iface", "lo"],
        ] {
            let o = run(&args);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "{t}");
            assert!(
                t.contains("malformed eBPF object") && t.contains(says),
                "{t}"
            );
        }
    }
}

/// An object lagic did not write is refused by `run` and `attach` unless the operator says
/// otherwise.
#[test]
fn foreign_objects_need_a_flag() {
    if !common::require_root("loading programs") {
        return;
    }
    let dir = scratch("foreign");
    let hateless = compile("hateless", &dir);
    let other = foreign(&hateless, &dir);
    let other = other.to_str().unwrap();

    let o = run(&["run", other, "--payload", "hello"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not written by lagic"), "{}", text(&o));
    assert!(text(&o).contains("--allow-foreign-object"), "{}", text(&o));
    let o = run(&["attach", other, "--iface", "lo"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not written by lagic"), "{}", text(&o));

    // With the flag it loads and judges as usual.
    let o = run(&[
        "run",
        other,
        "--payload",
        "I hate it",
        "--allow-foreign-object",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "DROP\n");
    let o = run(&["run", hateless.to_str().unwrap(), "--payload", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
