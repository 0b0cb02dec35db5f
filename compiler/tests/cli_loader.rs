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
    let _serial = serial();
    // Never lo: an attach that wrongly succeeds would filter the whole machine's loopback.
    let link = ScratchLink::new("lgcli0");
    let dir = scratch("malformed");
    let minimal = compile("minimal", &dir);
    let len = std::fs::metadata(&minimal).unwrap().len() as usize;
    let mut cases = vec![
        // The two reported kinds, found by structure (the object's layout changes as the
        // emitter grows): a function symbol whose size runs past its section, and a `.BTF.ext`
        // header that is out of range.
        write_changed(&minimal, &dir, "sym.o", |b| {
            let symtab = section(b, ".symtab");
            let func = (symtab.0..symtab.0 + symtab.1)
                .step_by(24)
                .find(|&sym| b[sym + 4] & 0xf == 2)
                .expect("a function symbol");
            b[func + 16..func + 24].copy_from_slice(&u64::MAX.to_le_bytes()[..8]);
        }),
        write_changed(&minimal, &dir, "btfext.o", |b| {
            let ext = section(b, ".BTF.ext").0;
            b[ext + 4..ext + 8].copy_from_slice(&0xffff_u32.to_le_bytes());
        }),
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
        let o2 = run(&["attach", name, "--iface", &link.name]);
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
            vec!["attach", case.to_str().unwrap(), "--iface", &link.name],
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
    let _serial = serial();
    // Never lo: an attach that wrongly succeeds would filter the whole machine's loopback.
    let link = ScratchLink::new("lgcli0");
    let dir = scratch("foreign");
    let hateless = compile("hateless", &dir);
    let other = foreign(&hateless, &dir);
    let other = other.to_str().unwrap();

    let o = run(&["run", other, "--payload", "hello"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not written by lagic"), "{}", text(&o));
    assert!(text(&o).contains("--allow-foreign-object"), "{}", text(&o));
    let o = run(&["attach", other, "--iface", &link.name]);
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

// ---------------------------------------------------------------------------------------------
// Attaching, in namespaces and across crashes.

fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().expect(cmd)
}

fn sh_ok(cmd: &str, args: &[&str]) -> String {
    let o = sh(cmd, args);
    assert!(o.status.success(), "{cmd} {}: {}", args.join(" "), text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `lagic status --json`, parsed.
fn status() -> Vec<serde_json::Value> {
    let o = run(&["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("status --json is JSON")
}

/// The status entries of interface `iface` in namespace `netns` (a name, or the root
/// namespace's `net:[ino]` label).
fn entries(iface: &str, netns: &str) -> Vec<serde_json::Value> {
    status()
        .into_iter()
        .filter(|a| a["interface"] == iface && a["netns"] == netns)
        .collect()
}

/// The file offset and size of the section named `name` in a 64-bit little-endian ELF.
fn section(elf: &[u8], name: &str) -> (usize, usize) {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let names = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .map(header)
        .find(|&h| {
            let at = names + u32_at(h);
            elf[at..].starts_with(name.as_bytes()) && elf[at + name.len()] == 0
        })
        .map(|h| (u64_at(h + 0x18), u64_at(h + 0x20)))
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// A veth pair in the root namespace made for one test, so attaches that must fail never
/// touch an interface other traffic uses; on drop, any lagic diode on it is detached and the
/// pair deleted.
struct ScratchLink {
    name: String,
}

impl ScratchLink {
    fn new(name: &str) -> ScratchLink {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        let peer = format!("{name}p");
        let o = Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", &peer])
            .output()
            .expect("running ip");
        assert!(o.status.success(), "ip link add {name}: {o:?}");
        let o = Command::new("ip")
            .args(["link", "set", name, "up"])
            .output()
            .expect("running ip");
        assert!(o.status.success(), "ip link set {name} up: {o:?}");
        ScratchLink {
            name: name.to_owned(),
        }
    }
}

impl Drop for ScratchLink {
    fn drop(&mut self) {
        let _ = run(&["detach", "--iface", &self.name]);
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

/// The tests here share lagic's pin lock (one of them holds it on purpose): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A network namespace `name` holding a veth `x0` (up) and its peer; on drop, lagic's diodes
/// there are detached and the namespace deleted.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: &str, iface: &str) -> Netns {
        let _ = sh("ip", &["netns", "del", name]);
        sh_ok("ip", &["netns", "add", name]);
        sh_ok(
            "ip",
            &[
                "-n", name, "link", "add", iface, "type", "veth", "peer", "name", "peer0",
            ],
        );
        sh_ok("ip", &["-n", name, "link", "set", iface, "up"]);
        Netns {
            name: name.to_owned(),
        }
    }

    /// Runs lagic in this network namespace, keeping the host's mount namespace.
    fn lagic(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg(env!("CARGO_BIN_EXE_lagic"))
            .args(args)
            .output()
            .expect("running nsenter")
    }

    fn tc_filters(&self, iface: &str, direction: &str) -> String {
        sh_ok(
            "ip",
            &[
                "netns", "exec", &self.name, "tc", "filter", "show", "dev", iface, direction,
            ],
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for a in status() {
            if a["netns"] == self.name.as_str() {
                let _ = run(&[
                    "detach",
                    "--iface",
                    a["interface"].as_str().unwrap_or(""),
                    "--direction",
                    a["direction"].as_str().unwrap_or(""),
                    "--netns",
                    &self.name,
                ]);
            }
        }
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// Under `ip netns exec`, /sys is the namespace's own sysfs: a bpffs mounted there dies with
/// the command. lagic must either pin on the host's bpffs (and the host's `status` sees the
/// diode) or refuse; never report success for a diode that is gone when it exits.
#[test]
fn attach_under_ip_netns_exec_is_in_place_or_refused() {
    if !common::require_root("namespaces and TC") {
        return;
    }
    let _serial = serial();
    let dir = scratch("netns-exec");
    let hateless = compile("hateless", &dir);
    let ns = Netns::new("lcl-exec", "x0");
    for mode in ["tcx", "clsact"] {
        let o = sh(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                env!("CARGO_BIN_EXE_lagic"),
                "attach",
                hateless.to_str().unwrap(),
                "--iface",
                "x0",
                "--mode",
                mode,
            ],
        );
        let here = entries("x0", &ns.name);
        if o.status.success() {
            assert_eq!(
                here.len(),
                1,
                "{mode}: attach said {}; status {here:?}",
                text(&o)
            );
            assert_eq!(here[0]["state"], "active", "{here:?}");
            assert_eq!(here[0]["mode"], mode, "{here:?}");
            let d = ns.lagic(&["detach", "--iface", "x0"]);
            assert!(d.status.success(), "{}", text(&d));
        } else {
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            assert!(text(&o).contains("host's bpffs"), "{}", text(&o));
            assert!(here.is_empty(), "{here:?}");
            // Nothing was left in the kernel either.
            assert!(!ns.tc_filters("x0", "ingress").contains("bpf"), "{mode}");
        }
    }
}

/// Interfaces of the same name in two namespaces are two interfaces: attaching in one leaves
/// the other's diode alone, status shows both with their namespace, and detach picks one.
#[test]
fn same_interface_name_in_two_namespaces() {
    if !common::require_root("namespaces and TC") {
        return;
    }
    let _serial = serial();
    let dir = scratch("two-netns");
    let hateless = compile("hateless", &dir);
    let minimal = compile("minimal", &dir);
    let b = Netns::new("lcl-b", "rtb");
    let c = Netns::new("lcl-c", "rtb");
    // Same name; usually the same ifindex too.
    let o = b.lagic(&["attach", hateless.to_str().unwrap(), "--iface", "rtb"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = c.lagic(&["attach", minimal.to_str().unwrap(), "--iface", "rtb"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("attached minimal"),
        "a fresh attach, not a replacement of B's diode: {}",
        text(&o)
    );
    let o = c.lagic(&[
        "attach",
        minimal.to_str().unwrap(),
        "--iface",
        "rtb",
        "--direction",
        "egress",
        "--mode",
        "clsact",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // The root namespace's status sees all three, active, each in its namespace.
    let in_b = entries("rtb", "lcl-b");
    let in_c = entries("rtb", "lcl-c");
    assert_eq!(in_b.len(), 1, "{in_b:?}");
    assert_eq!(in_b[0]["diode"], "hateless");
    assert_eq!(in_b[0]["state"], "active");
    assert_eq!(in_c.len(), 2, "{in_c:?}");
    assert!(in_c
        .iter()
        .all(|a| a["state"] == "active" && a["diode"] == "minimal"));
    let table = String::from_utf8_lossy(&run(&["status"]).stdout).into_owned();
    assert!(
        table.contains("lcl-b") && table.contains("lcl-c"),
        "{table}"
    );

    // From the root namespace, detach needs to be told which rtb; then only that one goes.
    let o = run(&["detach", "--iface", "rtb", "--netns", "lcl-c"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("in netns lcl-c"), "{}", text(&o));
    assert_eq!(entries("rtb", "lcl-b").len(), 1);
    assert_eq!(entries("rtb", "lcl-c").len(), 1);
    let o = run(&[
        "detach",
        "--iface",
        "rtb",
        "--netns",
        "lcl-c",
        "--direction",
        "egress",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // lagic added the clsact qdisc in C and took it away again.
    let qdiscs = sh_ok(
        "ip",
        &[
            "netns", "exec", "lcl-c", "tc", "qdisc", "show", "dev", "rtb",
        ],
    );
    assert!(!qdiscs.contains("clsact"), "{qdiscs}");
    // Inside B, detach by name finds B's own.
    let o = b.lagic(&["detach", "--iface", "rtb"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(entries("rtb", "lcl-b").is_empty());
}

/// The id of the program in lagic's clsact filter (priority 1, handle 0x6c61), if any.
fn clsact_program(ns: &Netns, iface: &str) -> Option<u64> {
    let shown = ns.tc_filters(iface, "ingress");
    let line = shown.lines().find(|l| l.contains("handle 0x6c61"))?;
    let at = line.split_whitespace().position(|w| w == "id")?;
    line.split_whitespace().nth(at + 1)?.parse().ok()
}

/// lagic killed right after each step of attaching (fault injection): afterwards the old diode
/// or the new one is in place as status says, detach cleans up everything lagic made, and
/// attaching again works, in both modes, for a fresh attach and for a replacement.
#[test]
fn a_kill_at_any_step_leaves_a_diode_status_and_detach_can_handle() {
    if !common::require_root("namespaces and TC") {
        return;
    }
    let _serial = serial();
    let dir = scratch("faults");
    let hateless = compile("hateless", &dir);
    let minimal = compile("minimal", &dir);
    let (hateless, minimal) = (hateless.to_str().unwrap(), minimal.to_str().unwrap());
    let ns = Netns::new("lcl-fault", "f0");
    let steps = [
        ("tcx", "after-intent"),
        ("tcx", "after-kernel"),
        ("tcx", "after-pin"),
        ("tcx", "after-record"),
        ("clsact", "after-intent"),
        ("clsact", "after-qdisc"),
        ("clsact", "after-kernel"),
        ("clsact", "after-record"),
    ];
    for (mode, step) in steps {
        for replace in [false, true] {
            let case = format!("{mode} {step} replace={replace}");
            let mut before = None;
            if replace {
                let o = ns.lagic(&["attach", minimal, "--iface", "f0", "--mode", mode]);
                assert!(o.status.success(), "{case}: {}", text(&o));
                before = Some(entries("f0", &ns.name)[0]["program_id"].as_u64().unwrap());
            }
            let o = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", ns.name))
                .arg(env!("CARGO_BIN_EXE_lagic"))
                .args(["attach", hateless, "--iface", "f0", "--mode", mode])
                .env("LAGIC_TEST_FAULT", step)
                .output()
                .unwrap();
            // Killed at the step (a replacement skips the fresh-only steps and completes).
            let killed = o.status.code().is_none();
            let fresh_only = matches!(step, "after-qdisc" | "after-pin");
            assert!(killed || (replace && fresh_only), "{case}: {}", text(&o));

            let mut now = entries("f0", &ns.name);
            assert!(now.len() <= 1, "{case}: {now:?}");
            let active = now.first().filter(|a| a["state"] == "active");
            if mode == "clsact" {
                // The kernel and status agree on what filters.
                let in_kernel = clsact_program(&ns, "f0");
                assert_eq!(
                    in_kernel,
                    active.and_then(|a| a["program_id"].as_u64()),
                    "{case}: tc shows {in_kernel:?}, status {now:?}"
                );
            }
            if let (Some(old), true) = (before, killed) {
                // A replacement killed half-way: the old diode or the new one.
                let a = active.unwrap_or_else(|| panic!("{case}: no diode: {now:?}"));
                let diode = a["diode"].as_str().unwrap();
                assert!(
                    (diode == "minimal" && a["program_id"] == old) || diode == "hateless",
                    "{case}: {a}"
                );
            }
            if mode == "clsact" && step == "after-kernel" && !replace {
                // The filter made before the kill is lagic's: attaching again (auto mode)
                // replaces it in place rather than refusing it or stacking TCX on top.
                let o = ns.lagic(&["attach", minimal, "--iface", "f0"]);
                assert!(o.status.success(), "{case}: {}", text(&o));
                assert!(
                    text(&o).contains("replaced program"),
                    "{case}: {}",
                    text(&o)
                );
                assert!(text(&o).contains("(clsact)"), "{case}: {}", text(&o));
                now = entries("f0", &ns.name);
                assert_eq!(now.len(), 1, "{case}: {now:?}");
                assert_eq!(now[0]["program_id"].as_u64(), clsact_program(&ns, "f0"));
            }
            // Detach removes whatever lagic left; nothing of lagic's remains.
            if !now.is_empty() {
                let d = ns.lagic(&["detach", "--iface", "f0"]);
                assert!(d.status.success(), "{case}: {}", text(&d));
            }
            assert!(entries("f0", &ns.name).is_empty(), "{case}");
            assert_eq!(clsact_program(&ns, "f0"), None, "{case}");
            // And attaching again works, in the same mode.
            let o = ns.lagic(&["attach", hateless, "--iface", "f0", "--mode", mode]);
            assert!(o.status.success(), "{case}: {}", text(&o));
            let d = ns.lagic(&["detach", "--iface", "f0"]);
            assert!(d.status.success(), "{case}: {}", text(&d));
            let qdiscs = sh_ok(
                "ip",
                &[
                    "netns", "exec", &ns.name, "tc", "qdisc", "show", "dev", "f0",
                ],
            );
            assert!(!qdiscs.contains("clsact"), "{case}: {qdiscs}");
        }
    }
}

/// The pin root is root's own 0700 directory: other users cannot open it (and so cannot hold
/// its lock), a directory others could write is refused, and a lock held too long is reported
/// with its holder instead of blocking.
#[test]
fn the_pin_root_is_private_and_a_held_lock_is_named() {
    if !common::require_root("namespaces and TC") {
        return;
    }
    let _serial = serial();
    let dir = scratch("lock");
    let minimal = compile("minimal", &dir);
    let minimal = minimal.to_str().unwrap();
    let ns = Netns::new("lcl-lock", "l0");
    let o = ns.lagic(&["attach", minimal, "--iface", "l0"]);
    assert!(o.status.success(), "{}", text(&o));
    let root = Path::new("/sys/fs/bpf/lagic");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(root).unwrap();
    assert_eq!(m.mode() & 0o777, 0o700, "{:o}", m.mode());
    assert_eq!(m.uid(), 0);
    // Another user cannot open it, so cannot lock it.
    let o = sh(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "flock",
            "-n",
            "/sys/fs/bpf/lagic",
            "true",
        ],
    );
    assert!(
        !o.status.success(),
        "nobody could lock the pin root: {}",
        text(&o)
    );

    // A group-writable pin root is refused.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o770)).unwrap();
    let o = ns.lagic(&["detach", "--iface", "l0"]);
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refusing to use"), "{}", text(&o));

    // A holder that does not let go: lagic gives up with its name, well before the holder does.
    let mut holder = Command::new("flock")
        // -o: the lock stays with flock itself, not the sleep it starts, so killing it frees.
        .args(["-o", "/sys/fs/bpf/lagic", "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let o = ns.lagic(&["detach", "--iface", "l0"]);
    let waited = started.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is locked by pid"), "{}", text(&o));
    assert!(waited < std::time::Duration::from_secs(40), "{waited:?}");
    // Released, detach works.
    let o = ns.lagic(&["detach", "--iface", "l0"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// `status` calls a program lagic did not write (attached with the operator's leave)
/// foreign, not a diode; detach leaves a clsact qdisc that was there before lagic.
#[test]
fn foreign_programs_are_labelled_and_other_qdiscs_stay() {
    if !common::require_root("namespaces and TC") {
        return;
    }
    let _serial = serial();
    let dir = scratch("foreign-status");
    let hateless = compile("hateless", &dir);
    let other = foreign(&hateless, &dir);
    let ns = Netns::new("lcl-fstat", "s0");
    sh_ok(
        "ip",
        &[
            "netns", "exec", &ns.name, "tc", "qdisc", "add", "dev", "s0", "clsact",
        ],
    );
    let o = ns.lagic(&[
        "attach",
        other.to_str().unwrap(),
        "--iface",
        "s0",
        "--mode",
        "clsact",
        "--allow-foreign-object",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let now = entries("s0", &ns.name);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["foreign"], true, "{now:?}");
    let table = String::from_utf8_lossy(&run(&["status"]).stdout).into_owned();
    assert!(table.contains("foreign:hateless"), "{table}");
    let o = ns.lagic(&["detach", "--iface", "s0"]);
    assert!(o.status.success(), "{}", text(&o));
    let qdiscs = sh_ok(
        "ip",
        &[
            "netns", "exec", &ns.name, "tc", "qdisc", "show", "dev", "s0",
        ],
    );
    assert!(
        qdiscs.contains("clsact"),
        "lagic removed a qdisc it did not add: {qdiscs}"
    );
}

/// Runs lagic with a stdout pipe whose reader is gone before lagic writes (`lagic attach ...
/// | head -0`).
fn run_into_a_closed_pipe(args: &[&str]) -> Output {
    let mut child = lagic()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running lagic");
    drop(child.stdout.take());
    child.wait_with_output().expect("waiting for lagic")
}

/// Runs lagic with descriptor 1 closed (`lagic attach ... >&-`).
fn run_with_stdout_closed(args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = lagic();
    cmd.args(args);
    // SAFETY: close(2) is async-signal-safe; the child closes only its own descriptor 1.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    cmd.output().expect("running lagic")
}

/// `attach` and `detach` report after the kernel change: a reader that went away must not
/// turn a done change into a panic (exit 101, as `println!` did), and the change stands.
/// A closed standard output is an output error (exit 2) whose message says the change was
/// made, and it stands too.
#[test]
fn attach_and_detach_reports_that_cannot_be_read_leave_the_change_standing() {
    if !common::require_root("namespaces and TC") {
        return;
    }
    let _serial = serial();
    let link = ScratchLink::new("lgcpipe0");
    let dir = scratch("closed-pipe");
    let hateless = compile("hateless", &dir);
    let root_ns = status_label_of_root_netns();
    let o = run_into_a_closed_pipe(&["attach", hateless.to_str().unwrap(), "--iface", &link.name]);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        text(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let now = entries(&link.name, &root_ns);
    assert_eq!(
        now.len(),
        1,
        "attach did not leave the diode in place: {now:?}"
    );
    assert_eq!(now[0]["diode"], "hateless", "{now:?}");

    let o = run_into_a_closed_pipe(&["detach", "--iface", &link.name]);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        text(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let now = entries(&link.name, &root_ns);
    assert!(now.is_empty(), "detach left the diode: {now:?}");

    let o = run_with_stdout_closed(&["attach", hateless.to_str().unwrap(), "--iface", &link.name]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = format!("is attached to {} ingress, but cannot write", link.name);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&said),
        "{}",
        text(&o)
    );
    assert_eq!(
        entries(&link.name, &root_ns).len(),
        1,
        "the attach does not stand"
    );
    let o = run_with_stdout_closed(&["detach", "--iface", &link.name]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = format!("is detached from {} ingress, but cannot write", link.name);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&said),
        "{}",
        text(&o)
    );
    assert!(
        entries(&link.name, &root_ns).is_empty(),
        "the detach does not stand"
    );
}

/// How `status` names lagic's own (the root) network namespace: `net:[INODE]`.
fn status_label_of_root_netns() -> String {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/self/ns/net")
        .expect("reading /proc/self/ns/net")
        .ino();
    format!("net:[{ino}]")
}
