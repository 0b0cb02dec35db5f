//! Loading a diode into the kernel: [`LoadedProgram`].
//!
//! Two ways in:
//! - [`LoadedProgram::from_object`] takes the ELF object lagic writes and loads it through Aya,
//!   exactly as attaching will: the object must hold exactly one program, a TC classifier
//!   (section `classifier`).
//! - [`LoadedProgram::from_insns`] issues a raw `BPF_PROG_LOAD` of plain instructions
//!   (`BPF_PROG_TYPE_SCHED_CLS`, license GPL), for hand-assembled programs and probes.
//!
//! Invariants: a `LoadedProgram` always holds a live program fd that passed the verifier; the
//! program stays loaded until the value is dropped. On rejection the error carries the
//! verifier's log. An object reaches Aya only after [`crate::elf_check::check`] accepted it,
//! and a panic inside Aya is caught at that boundary and becomes [`LoadError::LoaderPanicked`]:
//! no object makes loading panic.

use std::cell::Cell;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use aya::programs::{Program, ProgramError, SchedClassifier};
use aya::{BtfError, Ebpf, EbpfError, EbpfLoader};

pub use crate::elf_check::{Malformed, Provenance};
use crate::sys;

/// Size of the verifier log buffer for raw loads: enough for a full log of small programs, and
/// the kernel truncates (still reporting the first error) rather than failing when it is short.
const RAW_LOG_SIZE: usize = 1 << 20;

/// Which objects a load accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectOrigin {
    /// Only objects lagic wrote (see [`crate::elf_check`] for how that is told).
    #[default]
    LagicOnly,
    /// Any well-formed eBPF object (the operator vouches for it).
    AnyToolchain,
}

/// Verifier log lines an error message shows: `run` and `attach` print the same excerpt, and
/// the whole log stays in the error value.
pub const VERIFIER_LOG_LINES: usize = 25;

/// The last `lines` non-empty lines of a verifier log, or a note that it is empty.
pub fn verifier_log_tail(log: &str, lines: usize) -> String {
    let kept: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = kept.len().saturating_sub(lines);
    let mut tail = kept[start..].join("\n");
    if tail.is_empty() {
        tail = "(the verifier left no log)".to_owned();
    }
    tail
}

fn log_excerpt(log: &str) -> String {
    verifier_log_tail(log, VERIFIER_LOG_LINES)
}

/// Why a program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object is not a well-formed eBPF ELF object.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// The object was not written by lagic, and the load asked for lagic objects only.
    #[error("the object was not written by lagic (its BTF line info does not name lagic's writer); lagic loads only objects it wrote unless told otherwise")]
    Foreign,
    /// Aya panicked on the object (a malformed object the checks let through); caught.
    #[error("malformed eBPF object: the object parser failed on it ({0})")]
    LoaderPanicked(String),
    /// Aya could not parse or prepare the ELF object.
    #[error("not a loadable eBPF object: {0}")]
    Object(#[source] Box<EbpfError>),
    /// The object holds no program at all.
    #[error(
        "the object holds no program (a lagic diode has exactly one, in section \"classifier\")"
    )]
    NoProgram,
    /// The object holds more than one program.
    #[error("the object holds {} programs ({}); a lagic diode has exactly one", names.len(), names.join(", "))]
    ManyPrograms {
        /// The programs' names.
        names: Vec<String>,
    },
    /// The one program is not a TC classifier.
    #[error("program `{name}` is a {kind} program, not a TC classifier (section \"classifier\")")]
    NotClassifier {
        /// The program's name.
        name: String,
        /// Aya's description of what it is.
        kind: String,
    },
    /// `BPF_PROG_LOAD` failed; the kernel verifier's log says why (the message shows its last
    /// [`VERIFIER_LOG_LINES`] lines; the field holds all of it).
    #[error(
        "BPF_PROG_LOAD of `{name}` failed: {errno}\nlast lines of the verifier log:\n{}",
        log_excerpt(verifier_log)
    )]
    Rejected {
        /// The program's name.
        name: String,
        /// The errno of `BPF_PROG_LOAD` (EACCES or EINVAL for a verifier rejection, EPERM
        /// without the needed privileges).
        errno: io::Error,
        /// The verifier's log, possibly empty.
        verifier_log: String,
    },
    /// `BPF_BTF_LOAD` of the object's `.BTF` section failed.
    #[error(
        "BPF_BTF_LOAD failed: {errno}\nlast lines of the BTF log:\n{}",
        log_excerpt(verifier_log)
    )]
    BtfRejected {
        /// The errno of `BPF_BTF_LOAD`.
        errno: io::Error,
        /// The kernel's BTF log, possibly empty.
        verifier_log: String,
    },
    /// Raw instructions were not a whole number of 8-byte instructions, or none at all.
    #[error("expected a non-empty whole number of 8-byte eBPF instructions, got {len} bytes")]
    BadInstructionLength {
        /// The byte length given.
        len: usize,
    },
    /// Another step of loading through Aya failed.
    #[error("loading `{name}` failed: {source}")]
    Program {
        /// The program's name.
        name: String,
        /// Aya's error.
        #[source]
        source: Box<ProgramError>,
    },
    /// A syscall around the load failed (duplicating the fd).
    #[error("{op} failed: {source}")]
    Syscall {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What the kernel reports about a loaded program (`struct bpf_prog_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    /// The kernel's id of the program.
    pub id: u32,
    /// The program tag (a hash of its instructions).
    pub tag: [u8; 8],
    /// Instructions the verifier processed (`verified_insns`, Linux 5.16+): the cost measured
    /// against the 1M budget.
    pub verified_insns: u32,
    /// Length in instructions of the program after verification and rewriting (`xlated`).
    pub xlated_insns: u32,
    /// Size in bytes of the JIT-compiled code (0 without JIT).
    pub jited_bytes: u32,
}

/// A diode loaded into the kernel and accepted by the verifier.
#[derive(Debug)]
pub struct LoadedProgram {
    /// Our own handle on the program; for Aya loads a duplicate of Aya's fd.
    fd: OwnedFd,
    /// The program's name (its ELF symbol, or the name given to a raw load).
    name: String,
    /// For Aya loads, the object that owns the program (kept for attaching).
    ebpf: Option<Box<Ebpf>>,
}

impl LoadedProgram {
    /// Loads the ELF object `elf` through Aya: finds its single program, which must be a TC
    /// classifier, and loads it (the verifier runs).
    ///
    /// The verifier gives up with EAGAIN when a signal reaches the loading
    /// process while it works (a child process exiting, say), and a load
    /// can fail with EINTR; both are retried a few times, as libbpf does.
    ///
    /// Any well-formed object is accepted; [`LoadedProgram::from_object_with`] can insist on
    /// objects lagic wrote.
    pub fn from_object(elf: &[u8]) -> Result<Self, LoadError> {
        Self::from_object_with(elf, ObjectOrigin::AnyToolchain)
    }

    /// As [`LoadedProgram::from_object`], accepting only objects of `origin`.
    pub fn from_object_with(elf: &[u8], origin: ObjectOrigin) -> Result<Self, LoadError> {
        let provenance = crate::elf_check::check(elf)?;
        if provenance == Provenance::Foreign && origin == ObjectOrigin::LagicOnly {
            return Err(LoadError::Foreign);
        }
        const ATTEMPTS: usize = 5;
        let mut attempt = 1;
        loop {
            match catch_loader_panic(|| Self::from_object_once(elf)) {
                Err(LoadError::Rejected { ref errno, .. })
                    if attempt < ATTEMPTS
                        && matches!(errno.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn from_object_once(elf: &[u8]) -> Result<Self, LoadError> {
        let mut ebpf = EbpfLoader::new().load(elf).map_err(object_error)?;
        let names: Vec<String> = ebpf.programs().map(|(name, _)| name.to_owned()).collect();
        let name = match names.as_slice() {
            [] => return Err(LoadError::NoProgram),
            [one] => one.clone(),
            _ => return Err(LoadError::ManyPrograms { names }),
        };
        let program = ebpf.program_mut(&name).ok_or(LoadError::NoProgram)?;
        let classifier: &mut SchedClassifier = match program {
            Program::SchedClassifier(classifier) => classifier,
            other => {
                return Err(LoadError::NotClassifier {
                    name,
                    kind: format!("{:?}", other.prog_type()),
                })
            }
        };
        classifier.load().map_err(|err| program_error(&name, err))?;
        let fd = classifier
            .fd()
            .map_err(|err| program_error(&name, err))?
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| LoadError::Syscall {
                op: "duplicating the program fd",
                source,
            })?;
        Ok(Self {
            fd,
            name,
            ebpf: Some(Box::new(ebpf)),
        })
    }

    /// Loads raw eBPF instructions (8 bytes each, host byte order, as the kernel takes them)
    /// as a `BPF_PROG_TYPE_SCHED_CLS` program named `name` under license GPL, with the
    /// verifier log collected for the error on rejection.
    pub fn from_insns(name: &str, insns: &[u8]) -> Result<Self, LoadError> {
        if insns.is_empty() || !insns.len().is_multiple_of(8) {
            return Err(LoadError::BadInstructionLength { len: insns.len() });
        }
        let fd = raw_load(name, insns)?;
        Ok(Self {
            fd,
            name: name.to_owned(),
            ebpf: None,
        })
    }

    /// The program's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program's fd, valid while `self` lives.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What the kernel reports about the program.
    pub fn stats(&self) -> io::Result<ProgramStats> {
        let info = sys::prog_info(self.fd())?;
        Ok(ProgramStats {
            id: info.id,
            tag: info.tag,
            verified_insns: info.verified_insns,
            xlated_insns: info.xlated_prog_len / 8,
            jited_bytes: info.jited_prog_len,
        })
    }

    /// The number of instructions the verifier processed when it accepted the program.
    pub fn verified_insns(&self) -> io::Result<u32> {
        Ok(self.stats()?.verified_insns)
    }

    /// The Aya classifier behind a program loaded with [`LoadedProgram::from_object`], for
    /// attaching and pinning; `None` for raw loads.
    pub fn classifier_mut(&mut self) -> Option<&mut SchedClassifier> {
        let ebpf = self.ebpf.as_mut()?;
        match ebpf.program_mut(&self.name)? {
            Program::SchedClassifier(classifier) => Some(classifier),
            _ => None,
        }
    }
}

thread_local! {
    /// Set while this thread runs Aya on an object, so the panic hook stays quiet there.
    static IN_LOADER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (Aya's parse and load), turning a panic into [`LoadError::LoaderPanicked`]. The
/// panic message is not printed: the error carries it.
fn catch_loader_panic<T>(f: impl FnOnce() -> Result<T, LoadError>) -> Result<T, LoadError> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_LOADER.with(Cell::get) {
                previous(info);
            }
        }));
    });
    IN_LOADER.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_LOADER.with(|c| c.set(false));
    result.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "no message".to_owned());
        Err(LoadError::LoaderPanicked(what))
    })
}

/// Raw `BPF_PROG_LOAD` with license GPL: first without a log (fast path), then, on failure,
/// again with a verbose log so the error explains itself.
fn raw_load(name: &str, insns: &[u8]) -> Result<OwnedFd, LoadError> {
    const GPL: &CStr = c"GPL";
    match sys::prog_load(insns, GPL, name, 0, 0) {
        Ok(fd) => Ok(fd),
        Err(_) => match sys::prog_load(insns, GPL, name, 1, RAW_LOG_SIZE) {
            // Loaded on the second try (a transient failure): keep it.
            Ok(fd) => Ok(fd),
            Err((errno, verifier_log)) => Err(LoadError::Rejected {
                name: name.to_owned(),
                errno,
                verifier_log,
            }),
        },
    }
}

fn object_error(err: EbpfError) -> LoadError {
    match err {
        EbpfError::BtfError(BtfError::LoadError {
            io_error,
            verifier_log,
        }) => LoadError::BtfRejected {
            errno: io_error,
            verifier_log: verifier_log.to_string(),
        },
        other => LoadError::Object(Box::new(other)),
    }
}

fn program_error(name: &str, err: ProgramError) -> LoadError {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => LoadError::Rejected {
            name: name.to_owned(),
            errno: io_error,
            verifier_log: verifier_log.to_string(),
        },
        other => LoadError::Program {
            name: name.to_owned(),
            source: Box::new(other),
        },
    }
}

/// Checks that this process can load and test-run BPF programs (the `bpf` syscall exists and
/// we hold the privileges), by loading and running `r0 = 0; exit`. The error says what is
/// missing.
pub fn bpf_available() -> Result<(), String> {
    // r0 = 0 (BPF_ALU64 | BPF_MOV | BPF_K); exit (BPF_JMP | BPF_EXIT).
    const PROBE: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let program = match sys::prog_load(&PROBE, c"GPL", "lagic_probe", 0, 0) {
        Ok(fd) => fd,
        Err((errno, _)) => {
            return Err(match errno.raw_os_error() {
                Some(libc::ENOSYS) => "the kernel has no bpf() syscall (ENOSYS)".to_owned(),
                Some(libc::EPERM) | Some(libc::EACCES) => format!(
                    "BPF_PROG_LOAD is not permitted ({errno}); run as root or with CAP_BPF and \
                     CAP_NET_ADMIN (euid {})",
                    // SAFETY: geteuid has no preconditions and cannot fail.
                    unsafe { libc::geteuid() }
                ),
                _ => format!("BPF_PROG_LOAD of a trivial TC program failed: {errno}"),
            });
        }
    };
    let frame = [0u8; 14];
    match sys::prog_test_run(program.as_fd(), &frame, 1) {
        Ok(out) if out.retval == 0 => Ok(()),
        Ok(out) => Err(format!(
            "BPF_PROG_TEST_RUN of `r0 = 0; exit` returned {} instead of 0",
            out.retval
        )),
        Err(errno) => Err(format!("BPF_PROG_TEST_RUN is not usable: {errno}")),
    }
}
