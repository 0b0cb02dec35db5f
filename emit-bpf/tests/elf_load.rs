//! Kernel load tests for objects written by `emit_bpf::elf`: each object
//! must load with Aya, libbpf (`bpftool prog load`) and iproute2 (`tc`),
//! and the loaded program must compute the right verdict in
//! BPF_PROG_TEST_RUN. Needs root and BPF; without them the tests skip
//! loudly, unless `CI` is set, in which case they fail.

mod elf_support;

use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use aya::programs::SchedClassifier;
use emit_bpf::elf::write_object;
use emit_bpf::insn::{TC_ACT_OK, TC_ACT_SHOT};
use emit_bpf::Module;

/// Returns false (after a loud message) when the kernel tests cannot run
/// here; panics instead when `CI` is set.
fn kernel_tests_enabled(what: &str) -> bool {
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root".to_owned())
    } else if !Path::new("/sys/fs/bpf").is_dir() {
        Some("no bpffs at /sys/fs/bpf".to_owned())
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("{what}: kernel test cannot run ({r}) and CI is set")
        }
        Some(r) => {
            loud(&format!(
                "SKIPPING {what}: {r} (set CI to make this a failure)"
            ));
            false
        }
    }
}

/// Writes straight to stderr: the test harness captures `eprintln!` of
/// passing tests, and a skip must be seen.
fn loud(msg: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "!!!!! {msg} !!!!!");
}

/// Like [`kernel_tests_enabled`] for an external tool.
fn tool_available(tool: &str) -> bool {
    let found = Command::new(tool).arg("-V").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("`{tool}` not installed and CI is set");
        }
        loud(&format!("SKIPPING: `{tool}` not installed"));
    }
    found
}

/// `union bpf_attr` as used by BPF_PROG_TEST_RUN.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// A 64-byte Ethernet frame of zeroes (only its length matters here).
const FRAME: [u8; 64] = [0; 64];

/// Runs the program once on [`FRAME`] and returns its return value.
fn test_run(prog_fd: i32) -> u32 {
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: FRAME.len() as u32,
        data_in: FRAME.as_ptr() as u64,
        repeat: 1,
        ..TestRunAttr::default()
    };
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "BPF_PROG_TEST_RUN: {}",
        std::io::Error::last_os_error()
    );
    attr.retval
}

/// Loads `module` with Aya and returns the test-run verdict.
///
/// The verifier gives up with EAGAIN when a signal reaches the loading
/// thread (other tests of this binary spawn bpftool and tc); like libbpf
/// and lagic's loader, the load is tried again then, a few times.
fn aya_verdict(module: &Module) -> u32 {
    let bytes = write_object(module).expect("write_object");
    for attempt in 1..=5 {
        let mut ebpf = aya::Ebpf::load(&bytes).expect("Aya parses and relocates the object");
        let prog: &mut SchedClassifier = ebpf
            .program_mut(&module.entry.name)
            .expect("program named after the entry symbol")
            .try_into()
            .expect("section `classifier` is a SchedClassifier");
        match prog.load() {
            Ok(()) => {
                let fd = prog.fd().expect("loaded").as_fd().as_raw_fd();
                return test_run(fd);
            }
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if attempt < 5
                    && matches!(io_error.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {}
            Err(e) => panic!("Aya load failed: {e:?}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "lagic-elf-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `module` to a temporary file that is removed on drop.
struct TempObject(PathBuf);

impl TempObject {
    fn new(module: &Module, tag: &str) -> TempObject {
        let path = std::env::temp_dir().join(format!("{}.o", unique(tag)));
        std::fs::write(&path, write_object(module).unwrap()).unwrap();
        TempObject(path)
    }
}

impl Drop for TempObject {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Runs a loaded program by id with `bpftool prog run` on [`FRAME`] and
/// returns its return value.
fn bpftool_run(prog: &[&str]) -> u32 {
    let frame = std::env::temp_dir().join(format!("{}.frame", unique("frame")));
    std::fs::write(&frame, FRAME).unwrap();
    let out = Command::new("bpftool")
        .args(["prog", "run"])
        .args(prog)
        .arg("data_in")
        .arg(&frame)
        .args(["repeat", "1"])
        .output()
        .expect("spawn bpftool");
    let _ = std::fs::remove_file(&frame);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bpftool prog run failed:\n{text}");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Return value: "))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no return value in:\n{text}"))
}

/// A bpffs pin removed on drop.
struct Pin(PathBuf);

impl Drop for Pin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Loads with libbpf via `bpftool prog load`, runs it, unpins.
fn bpftool_verdict(module: &Module) -> u32 {
    let obj = TempObject::new(module, "bpftool");
    let pin = Pin(PathBuf::from("/sys/fs/bpf").join(unique("pin")));
    let out = run(Command::new("bpftool")
        .args(["prog", "load"])
        .arg(&obj.0)
        .arg(&pin.0));
    // libbpf warns on stderr about anything it had to skip (e.g. missing
    // line info); the objects must load cleanly.
    assert!(!out.contains("libbpf:"), "libbpf printed warnings:\n{out}");
    let pin_path = pin.0.to_str().unwrap().to_owned();
    bpftool_run(&["pinned", &pin_path])
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Attaches with `tc filter add ... bpf da obj X sec classifier` to a veth
/// in a fresh namespace, then runs the attached program by id.
fn tc_verdict(module: &Module) -> u32 {
    let obj = TempObject::new(module, "tc");
    let ns = Netns(unique("ns"));
    run(Command::new("ip").args(["netns", "add", &ns.0]));
    run(Command::new("ip").args([
        "-n", &ns.0, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ]));
    run(Command::new("tc").args(["-n", &ns.0, "qdisc", "add", "dev", "v0", "clsact"]));
    let out = run(Command::new("tc")
        .args([
            "-n", &ns.0, "filter", "add", "dev", "v0", "ingress", "bpf", "da", "obj",
        ])
        .arg(&obj.0)
        .args(["sec", "classifier"]));
    assert!(
        !out.contains("libbpf:"),
        "tc/libbpf printed warnings:\n{out}"
    );
    let shown =
        run(Command::new("tc").args(["-n", &ns.0, "filter", "show", "dev", "v0", "ingress"]));
    let name = &module.entry.name;
    assert!(
        shown.contains(&format!("name {name} ")),
        "filter not attached:\n{shown}"
    );
    let id = shown
        .split_whitespace()
        .skip_while(|w| *w != "id")
        .nth(1)
        .unwrap_or_else(|| panic!("no program id in:\n{shown}"))
        .to_owned();
    let verdict = bpftool_run(&["id", &id]);
    run(Command::new("tc").args(["-n", &ns.0, "filter", "del", "dev", "v0", "ingress"]));
    verdict
}

#[test]
fn aya_loads_and_runs_one_callback() {
    if kernel_tests_enabled("aya_loads_and_runs_one_callback") {
        assert_eq!(
            aya_verdict(&elf_support::one_callback()),
            TC_ACT_SHOT as u32
        );
    }
}

#[test]
fn aya_loads_and_runs_two_callbacks() {
    if kernel_tests_enabled("aya_loads_and_runs_two_callbacks") {
        assert_eq!(
            aya_verdict(&elf_support::two_callbacks()),
            TC_ACT_SHOT as u32
        );
    }
}

#[test]
fn aya_loads_and_runs_a_shared_callback() {
    if kernel_tests_enabled("aya_loads_and_runs_a_shared_callback") {
        assert_eq!(
            aya_verdict(&elf_support::shared_callback()),
            TC_ACT_SHOT as u32
        );
    }
}

#[test]
fn aya_loads_and_runs_without_callbacks() {
    if kernel_tests_enabled("aya_loads_and_runs_without_callbacks") {
        assert_eq!(
            aya_verdict(&elf_support::no_callbacks()),
            TC_ACT_SHOT as u32
        );
    }
}

/// The verdict really depends on the callbacks: with a wrong expected count
/// the same program passes the packet.
#[test]
fn aya_verdict_tracks_the_count() {
    if kernel_tests_enabled("aya_verdict_tracks_the_count") {
        let mut m = elf_support::two_callbacks();
        // Swap the callbacks: the loop counts differ, so the count is wrong.
        m.callbacks.swap(0, 1);
        assert_eq!(aya_verdict(&m), TC_ACT_OK as u32);
    }
}

#[test]
fn bpftool_loads_and_runs_all() {
    if !kernel_tests_enabled("bpftool_loads_and_runs_all") || !tool_available("bpftool") {
        return;
    }
    for m in [
        elf_support::one_callback(),
        elf_support::two_callbacks(),
        elf_support::shared_callback(),
        elf_support::no_callbacks(),
    ] {
        assert_eq!(bpftool_verdict(&m), TC_ACT_SHOT as u32, "{}", m.entry.name);
    }
}

#[test]
fn tc_attaches_and_runs_all() {
    if !kernel_tests_enabled("tc_attaches_and_runs_all")
        || !tool_available("tc")
        || !tool_available("bpftool")
    {
        return;
    }
    for m in [
        elf_support::one_callback(),
        elf_support::two_callbacks(),
        elf_support::shared_callback(),
        elf_support::no_callbacks(),
    ] {
        assert_eq!(tc_verdict(&m), TC_ACT_SHOT as u32, "{}", m.entry.name);
    }
}

/// Every seed diode, compiled by the real code generator: its objects carry
/// the counters map and the events ring buffer (BTF-defined maps in
/// `.maps`, referenced by relocated `ld_imm64`s).
fn seed_modules() -> Vec<Module> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_stem().is_some_and(|s| s != "cases")
        })
        .collect();
    names.sort();
    assert!(names.len() >= 7, "seed examples missing in {dir:?}");
    names
        .iter()
        .map(|p| {
            let spec = predicate_ir::parse(&std::fs::read_to_string(p).unwrap()).unwrap();
            emit_bpf::compile(&predicate_ir::lower(&spec).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn seeds_with_maps_load_through_aya_bpftool_and_tc() {
    if !kernel_tests_enabled("seeds_with_maps_load_through_aya_bpftool_and_tc")
        || !tool_available("tc")
        || !tool_available("bpftool")
    {
        return;
    }
    for m in seed_modules() {
        assert_eq!(m.maps.len(), 2, "{}", m.entry.name);
        // An all-zero frame is not IP: every seed's non_ip policy drops it,
        // which runs the counter and event code.
        let want = TC_ACT_SHOT as u32;
        assert_eq!(aya_verdict(&m), want, "aya: {}", m.entry.name);
        assert_eq!(bpftool_verdict(&m), want, "bpftool: {}", m.entry.name);
        assert_eq!(tc_verdict(&m), want, "tc: {}", m.entry.name);
    }
}

/// The stream seeds and the HTTP body views, compiled as stream diodes:
/// they also carry the flow map (a hash) with a 40-byte key (a byte-array BTF
/// type).
fn stream_modules() -> Vec<Module> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/stream");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 10,
        "stream seeds or views missing in {dir:?}"
    );
    paths
        .iter()
        .map(|p| {
            let spec = predicate_ir::parse(&std::fs::read_to_string(p).unwrap()).unwrap();
            let program = predicate_ir::lower_stream(&spec).unwrap();
            emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default())
                .unwrap()
                .0
        })
        .collect()
}

#[test]
fn stream_diodes_load_through_aya_bpftool_and_tc() {
    if !kernel_tests_enabled("stream_diodes_load_through_aya_bpftool_and_tc")
        || !tool_available("tc")
        || !tool_available("bpftool")
    {
        return;
    }
    for m in stream_modules() {
        assert_eq!(m.maps.len(), 3, "{}", m.entry.name);
        assert_eq!(m.maps[2].name, emit_bpf::STREAM_FLOWS_MAP);
        let want = TC_ACT_SHOT as u32;
        assert_eq!(aya_verdict(&m), want, "aya: {}", m.entry.name);
        assert_eq!(bpftool_verdict(&m), want, "bpftool: {}", m.entry.name);
        assert_eq!(tc_verdict(&m), want, "tc: {}", m.entry.name);
    }
}
