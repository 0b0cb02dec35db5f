//! The two compilers under comparison, run as whole processes: `lagic
//! compile SPEC -o OUT` and `clang -O2 -g -target bpf -c SRC -o OUT`.
//!
//! Both are timed from spawn to exit, so process start-up counts on both
//! sides. `-g` is part of the clang command because a program that calls
//! `bpf_loop` must carry BTF func_info, which clang writes only with debug
//! info; the multiarch include directory is where Debian keeps `asm/types.h`,
//! which `linux/bpf.h` needs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// The workspace root (where `examples/` and `bench/baseline/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The folder of hand-written baselines.
pub fn baseline_dir() -> PathBuf {
    workspace_root().join("bench").join("baseline")
}

/// The seed spec of diode `name`.
pub fn example_spec(name: &str) -> PathBuf {
    workspace_root()
        .join("examples")
        .join(format!("{name}.json"))
}

/// A stream-mode spec of `examples/stream/` by name.
pub fn stream_example_spec(name: &str) -> PathBuf {
    workspace_root()
        .join("examples")
        .join("stream")
        .join(format!("{name}.json"))
}

/// Finds an executable on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `lagic` binary built next to the running executable (same profile).
pub fn lagic_binary() -> Result<PathBuf, BenchError> {
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench binary", e))?;
    let dir = exe
        .parent()
        .ok_or_else(|| BenchError::Setup("bench binary has no folder".into()))?;
    // Test binaries live one level deeper, in deps/.
    for candidate in [dir.join("lagic"), dir.join("..").join("lagic")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(BenchError::Setup(format!(
        "no lagic binary next to {}; build it first (cargo build --release -p lagic)",
        exe.display()
    )))
}

/// The clang command line for a baseline.
pub fn clang_command(clang: &Path, source: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(clang);
    cmd.args(["-O2", "-g", "-target", "bpf"]);
    let multiarch = PathBuf::from(format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH));
    if multiarch.is_dir() {
        cmd.arg("-I").arg(multiarch);
    }
    cmd.arg("-I").arg(baseline_dir());
    cmd.arg("-c").arg(source).arg("-o").arg(out);
    cmd
}

/// The lagic command line for a spec.
pub fn lagic_command(lagic: &Path, spec: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(lagic);
    cmd.arg("compile").arg(spec).arg("-o").arg(out);
    cmd
}

/// Runs `cmd` to completion and returns its wall-clock time, or the failure
/// with the tool's stderr.
pub fn run_timed(what: &str, mut cmd: Command) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| BenchError::io(&format!("running {what}"), e))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        return Err(BenchError::Tool {
            what: what.to_string(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(elapsed)
}

/// Compiles a C baseline with clang into `out`.
pub fn compile_c(clang: &Path, source: &Path, out: &Path) -> Result<Duration, BenchError> {
    run_timed(
        &format!("clang on {}", source.display()),
        clang_command(clang, source, out),
    )
}

/// Compiles a spec with lagic into `out`.
pub fn compile_spec(lagic: &Path, spec: &Path, out: &Path) -> Result<Duration, BenchError> {
    run_timed(
        &format!("lagic compile {}", spec.display()),
        lagic_command(lagic, spec, out),
    )
}

/// Output of a command as text, or `None` if it cannot run.
pub fn command_text(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Feeds `rules` (an `iptables-restore` file) to `iptables-restore
/// --noflush`: one call for any number of rules (one `iptables` call per
/// rule would take minutes for 10,000). `what` names the rules in errors.
pub fn iptables_restore(rules: &str, what: &str) -> Result<(), BenchError> {
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BenchError::io("running iptables-restore", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| BenchError::io("writing to iptables-restore", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| BenchError::io("waiting for iptables-restore", e))?;
    if !out.status.success() {
        return Err(BenchError::Tool {
            what: what.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}
