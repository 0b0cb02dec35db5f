//! Helpers that more than one subcommand uses: reading a spec or a diode, compiling a spec
//! to object bytes (unchecked for `attach`, validated for `compile` and the dashboard),
//! naming a direction, rendering loader errors and attachments.
//!
//! Subcommand modules call only this module (and the libraries), never each other, so a
//! change to one subcommand cannot silently change another.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use lagic_loader::attach::{AttachError, Attachment, Direction};
use predicate_ir::{Program, Spec};

use crate::cli::DirectionArg;
use crate::failure::{Failure, Outcome};
use crate::io;

const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Objects (and specs given where a diode is expected) are read up to this size; objects
/// lagic writes are far smaller.
pub(crate) const MAX_OBJECT_BYTES: usize = 64 << 20;

/// Reads and validates a spec file.
pub(crate) fn read_spec(path: &Path) -> Result<Spec, Failure> {
    let bytes = io::read_input(path, "spec", predicate_ir::spec::MAX_SPEC_BYTES)?;
    spec_from_bytes(path, &bytes)
}

/// Parses and validates spec bytes read from `path` (named in messages).
pub(crate) fn spec_from_bytes(path: &Path, bytes: &[u8]) -> Result<Spec, Failure> {
    let shown = io::display(path);
    // JSON may not start with a byte order mark (RFC 8259); some editors write one, and the
    // parser's "expected value at column 1" would not say what is wrong.
    if bytes.starts_with(b"\xef\xbb\xbf") {
        return Err(Failure::bad_input(format!(
            "{shown}: starts with a UTF-8 byte order mark (bytes EF BB BF), which JSON does not allow"
        ))
        .with_hint("save the file as UTF-8 without a byte order mark"));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Failure::bad_input(format!(
            "{shown}: not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
        .with_hint("a spec is JSON text; see docs/spec-format.md")
    })?;
    predicate_ir::parse(text).map_err(|e| {
        Failure::bad_input(format!("{shown}: {e}"))
            .with_hint("the spec format is described in docs/spec-format.md")
    })
}

/// Lowers a valid spec; a spec beyond lagic's limits is a failed check (1).
pub(crate) fn lower_spec(path: &Path, spec: &Spec) -> Result<Program, Failure> {
    let program = predicate_ir::lower(spec)
        .map_err(|e| Failure::failed(format!("{}: cannot be compiled: {e}", io::display(path))))?;
    note_constant_verdict(path, &program.formula);
    Ok(program)
}

/// Says on stderr when the predicate is constant: valid, but rarely meant (an empty block
/// list, `not or []`, passes everything), and nothing else would say so.
fn note_constant_verdict(path: &Path, formula: &predicate_ir::Formula) {
    let diode = match formula {
        predicate_ir::Formula::Const(true) => {
            "passes every TCP payload (only the packet model and the policy drop anything)"
        }
        predicate_ir::Formula::Const(false) => "drops every TCP segment that carries a payload",
        _ => return,
    };
    io::print_err(&format!(
        "lagic: note: {}: the predicate is constant, so this diode {diode}",
        io::display(path)
    ));
}

/// The object bytes of `program`, validated when `validate` is set.
pub(crate) fn compile(
    path: &std::path::Path,
    program: &predicate_ir::Program,
    options: &emit_bpf::Options,
    validate: bool,
) -> Result<Vec<u8>, Failure> {
    let shown = io::display(path);
    let cannot =
        |e: &dyn std::fmt::Display| Failure::failed(format!("{shown}: cannot be compiled: {e}"));
    let (module, map) = emit_bpf::compile_mapped_with(program, options).map_err(|e| cannot(&e))?;
    #[allow(unused_mut)]
    let mut object = module.write_elf().map_err(|e| cannot(&e))?;
    #[cfg(debug_assertions)]
    inject_fault(&mut object, &map);
    if validate {
        lagic_validate::validate(program, &object, &map)
            .map_err(|e| validation_failed(&shown, e))?;
    }
    Ok(object)
}

/// Lowers a valid stream spec for the kernel's stream mode; a spec beyond
/// lagic's limits, or one with a view the kernel does not implement, is a
/// failed check (1).
pub(crate) fn lower_stream_spec(
    path: &Path,
    spec: &Spec,
) -> Result<predicate_ir::StreamProgram, Failure> {
    let program = predicate_ir::lower_stream(spec)
        .map_err(|e| Failure::failed(format!("{}: cannot be compiled: {e}", io::display(path))))?;
    // With the HTTP view the formula judges header blocks only; bodies have their own.
    if program.http.is_none() {
        note_constant_verdict(path, &program.program.formula);
    }
    Ok(program)
}

/// The object bytes of the stream diode `program`; validation checks its
/// machine steps (docs/validation.md, "Stream diodes").
pub(crate) fn compile_stream(
    path: &std::path::Path,
    program: &predicate_ir::StreamProgram,
    options: &emit_bpf::Options,
    validate: bool,
) -> Result<Vec<u8>, Failure> {
    let shown = io::display(path);
    let cannot =
        |e: &dyn std::fmt::Display| Failure::failed(format!("{shown}: cannot be compiled: {e}"));
    let (module, map) =
        emit_bpf::compile_stream_mapped_with(program, options).map_err(|e| cannot(&e))?;
    let object = module.write_elf().map_err(|e| cannot(&e))?;
    if validate {
        let report = lagic_validate::validate_stream(program, &object, &map)
            .map_err(|e| validation_failed(&shown, e))?;
        if report.stream_offsets_unchecked > 0 {
            // Not an error: every other check ran in full; say what did not.
            crate::io::print_err(&format!(
                "lagic: note: {shown}: a window ends past stream offset {}, so translation \
                 validation ran the stream walk at every offset up to it, around every window \
                 edge and in the tail, but not at the other {} offsets \
                 (docs/validation.md, \"Stream diodes\")",
                lagic_validate::stream::walk::MAX_TAIL_START,
                report.stream_offsets_unchecked
            ));
        }
    }
    Ok(object)
}

/// A spec of either mode compiled (and validated when `validate` is set):
/// the one path from a read spec to object bytes that `compile`, `run`,
/// `attach`, `lab up` and the dashboard share.
pub(crate) fn compile_spec(
    path: &Path,
    spec: &Spec,
    options: &emit_bpf::Options,
    validate: bool,
) -> Result<Vec<u8>, Failure> {
    if spec.mode == predicate_ir::Mode::Packet {
        let program = lower_spec(path, spec)?;
        compile(path, &program, options, validate)
    } else {
        let program = lower_stream_spec(path, spec)?;
        compile_stream(path, &program, options, validate)
    }
}

/// A translation-validation failure as the CLI reports it.
fn validation_failed(shown: &str, e: impl std::fmt::Display) -> Failure {
    Failure::failed(format!(
        "{shown}: translation validation failed, nothing written: {e}"
    ))
    .with_hint(
        "the emitted code does not implement the spec's lowered program: a bug in lagic; \
         please report it with the spec (--no-validate skips the check, at your own risk)",
    )
}

/// Debug builds only: `LAGIC_DEBUG_BREAK_STEP=1` changes the target of
/// the first state assignment in the first step of the first pass (a
/// callback's, else an inline pass's, whose rare transitions sit after its
/// block), so the tests can watch a validation failure end the command
/// (exit 1, nothing written). Release builds have no such switch.
#[cfg(debug_assertions)]
fn inject_fault(object: &mut [u8], map: &emit_bpf::codemap::CodeMap) {
    use lagic_validate::patch;
    if std::env::var_os("LAGIC_DEBUG_BREAK_STEP").is_none() {
        return;
    }
    let Some((section, range)) = map
        .passes
        .first()
        .and_then(|p| p.steps.first())
        .map(|step| (".text", step.start..step.end))
        .or_else(|| {
            let pass = map.inline.first()?;
            Some(("classifier", pass.steps.first()?.start..pass.end))
        })
    else {
        return;
    };
    if let Some(slot) = patch::find(object, section, range, patch::code::MOV64_IMM, None) {
        let imm = patch::imm(object, section, slot).unwrap_or(0);
        let _ = patch::set_imm(object, section, slot, imm ^ 1);
    }
}

/// The diode as object bytes: read as-is, or compiled from a spec and,
/// unless `validate` is false (`--no-validate`), validated like `lagic
/// compile` does (docs/validation.md) before anything is loaded.
pub(crate) fn diode_object(path: &Path, validate: bool) -> Result<Vec<u8>, Failure> {
    let bytes = io::read_input(path, "diode", MAX_OBJECT_BYTES)?;
    if bytes.starts_with(ELF_MAGIC) {
        return Ok(bytes);
    }
    let spec = spec_from_bytes(path, &bytes)?;
    // Where a diode is expected, exit 1 means DROP or nothing attached, so a spec lagic
    // cannot compile is bad input (2).
    let as_bad_input = |mut f: Failure| {
        f.outcome = Outcome::BadInput;
        f
    };
    compile_spec(path, &spec, &emit_bpf::Options::default(), validate).map_err(as_bad_input)
}

/// The loader's direction for the command-line one.
pub(crate) fn direction(arg: DirectionArg) -> Direction {
    match arg {
        DirectionArg::Ingress => Direction::Ingress,
        DirectionArg::Egress => Direction::Egress,
    }
}

/// Renders an attach error with what to do. Nothing attached is a failed check (1); every
/// other error is bad input or the environment (2).
pub(crate) fn attach_failure(e: AttachError, iface: &str) -> Failure {
    match &e {
        AttachError::NothingAttached { .. } => Failure::failed(e.to_string()),
        AttachError::LockBusy { .. } => Failure::bad_input(e.to_string())
            .with_hint("`cat /proc/locks` and `ps` show the holder"),
        AttachError::NotPermitted { .. } => {
            Failure::bad_input(e.to_string()).with_hint("run it again with sudo")
        }
        AttachError::NoSuchInterface(_) => Failure::bad_input(e.to_string())
            .with_hint(format!("check the name with `ip link show {iface}`")),
        AttachError::Rejected { .. } => Failure::bad_input(e.to_string()).with_hint(
            "the kernel verifier refused the program; `lagic disasm` shows its instructions, \
             and a bug report with the spec and this log helps",
        ),
        AttachError::Load(lagic_loader::LoadError::Foreign) => Failure::bad_input(e.to_string())
            .with_hint(
                "pass --allow-foreign-object to attach an object from another toolchain that you \
                 trust",
            ),
        AttachError::Load(
            lagic_loader::LoadError::Malformed(_) | lagic_loader::LoadError::LoaderPanicked(_),
        ) => {
            Failure::bad_input(e.to_string()).with_hint("recompile the diode with `lagic compile`")
        }
        _ => Failure::bad_input(e.to_string()),
    }
}

/// An attachment as `lagic status --json` and `lagic lab status --json` print it.
pub(crate) fn attachment_json(a: &Attachment) -> serde_json::Value {
    let since = a
        .since
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "interface": a.iface,
        "direction": a.direction.as_str(),
        "diode": a.diode,
        "program_id": a.program_id,
        "link_id": a.link_id,
        "mode": a.mode.as_str(),
        "state": a.health.as_str(),
        "ifindex": a.ifindex,
        "since": utc(since),
        "since_unix": since,
        "source": a.source,
        "pin_dir": a.pin_dir.display().to_string(),
        "netns": a.netns_label(),
        "netns_inode": a.netns.map(|n| n.ino),
        "foreign": a.foreign,
        "legacy": a.legacy,
    })
}

/// `2026-11-30T10:50:57Z (12s ago)`.
pub(crate) fn since_text(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if secs == 0 {
        return "unknown".to_owned();
    }
    let ago = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{} ({})", utc(secs), ago_text(ago))
}

fn ago_text(s: u64) -> String {
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Seconds since the Unix epoch as an ISO 8601 UTC timestamp.
pub(crate) fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian), after Howard Hinnant's
    // well-known derivation: shift to an era starting on March 1st, 0000.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn ago_text_picks_the_unit() {
        assert_eq!(ago_text(5), "5s ago");
        assert_eq!(ago_text(600), "10m ago");
        assert_eq!(ago_text(7200), "2h ago");
        assert_eq!(ago_text(172_800), "2d ago");
    }
}
