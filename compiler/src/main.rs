//! `lagic`: compile content predicates into eBPF diodes, inspect them, and
//! run packets through them in the kernel.
//!
//! Exit codes (stable, for scripts): 0 success; 1 a verdict or check that
//! failed (DROP, or a valid spec that lagic cannot emit); 2 bad input or
//! usage (unreadable or invalid files, bad flags, kernel refused to load).

mod cli;
mod commands;
mod failure;
mod io;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors
            // to stderr (exit 2), matching our contract. Help that cannot be
            // written (a full device) is exit 2 like any other lost output; a
            // reader that went away (`lagic --help | head`) is not.
            let printed = e.print();
            if !e.use_stderr() {
                if let Err(err) = printed {
                    if err.kind() != std::io::ErrorKind::BrokenPipe {
                        let _ = writeln!(
                            std::io::stderr(),
                            "lagic: error: cannot write to standard output: {err}"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match commands::dispatch(cli) {
        Ok(code) => code.into(),
        Err(failure) => {
            // Not `eprintln!`: it panics where stderr cannot be written (a full device).
            let _ = writeln!(std::io::stderr(), "{failure}");
            failure.exit_code().into()
        }
    }
}

/// Where descriptor 0, 1 or 2 was closed at exec, puts /dev/null there, opened the wrong way
/// round (stdin write-only, stdout and stderr read-only), so any use of the missing stream
/// fails with EBADF, which lagic reports (`lagic compile X -o - >&-` is exit 2, not a silent
/// success). It runs from `.init_array`, before Rust's runtime, which would otherwise put a
/// read-write /dev/null there and make every write succeed. Either way the first file lagic
/// opens can never become its "stdout".
#[used]
#[link_section = ".init_array"]
static RESERVE_STANDARD_DESCRIPTORS: extern "C" fn() = reserve_standard_descriptors;

extern "C" fn reserve_standard_descriptors() {
    for (fd, flags) in [
        (0, libc::O_WRONLY),
        (1, libc::O_RDONLY),
        (2, libc::O_RDONLY),
    ] {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        // SAFETY: a constant NUL-terminated path; open returns the lowest free descriptor,
        // which is `fd` because every lower one is open by now.
        let got = unsafe { libc::open(c"/dev/null".as_ptr(), flags) };
        if got >= 0 && got != fd {
            // SAFETY: both descriptors are ours; dup2 then close the spare.
            unsafe {
                libc::dup2(got, fd);
                libc::close(got);
            }
        }
    }
}
