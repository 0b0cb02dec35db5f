//! `lagic disasm OBJ`.

use super::shared;
use crate::cli::DisasmArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: DisasmArgs) -> Result<Outcome, Failure> {
    let bytes = io::read_input(&args.object, "object", shared::MAX_OBJECT_BYTES)?;
    let text = emit_bpf::disasm::disassemble_object(&bytes).map_err(|e| {
        Failure::bad_input(format!("{}: {e}", io::display(&args.object)))
            .with_hint("lagic disasm reads objects written by `lagic compile`")
    })?;
    io::print_out(&text)?;
    Ok(Outcome::Success)
}
