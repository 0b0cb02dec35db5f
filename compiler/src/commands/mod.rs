//! One module per subcommand; each returns the process outcome or a
//! [`Failure`] to render.

mod attach;
mod check;
mod compile;
mod detach;
mod disasm;
mod lab;
mod run;
mod status;

use std::path::Path;

use predicate_ir::{Program, Spec};

use crate::cli::{Cli, Command};
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn dispatch(cli: Cli) -> Result<Outcome, Failure> {
    match cli.command {
        Command::Compile(args) => compile::run(args),
        Command::Check(args) => check::run(args),
        Command::Disasm(args) => disasm::run(args),
        Command::Run(args) => run::run(args),
        Command::Attach(args) => attach::run(args),
        Command::Detach(args) => detach::run(args),
        Command::Status(args) => status::run(args),
        Command::Lab(command) => lab::run(command),
    }
}

/// Reads and validates a spec file.
pub(crate) fn read_spec(path: &Path) -> Result<Spec, Failure> {
    let bytes = io::read_input(path, "spec", predicate_ir::spec::MAX_SPEC_BYTES)?;
    spec_from_bytes(path, &bytes)
}

pub(crate) fn spec_from_bytes(path: &Path, bytes: &[u8]) -> Result<Spec, Failure> {
    let shown = io::display(path);
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
    predicate_ir::lower(spec)
        .map_err(|e| Failure::failed(format!("{}: cannot be compiled: {e}", io::display(path))))
}

/// Compiles a lowered program to object bytes; emitter limits are a failed check (1).
pub(crate) fn emit(path: &Path, program: &Program) -> Result<Vec<u8>, Failure> {
    emit_bpf::compile_object(program)
        .map_err(|e| Failure::failed(format!("{}: cannot be compiled: {e}", io::display(path))))
}
