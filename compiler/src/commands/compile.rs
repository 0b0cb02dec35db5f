//! `lagic compile SPEC -o OUT`.

use super::shared;
use crate::cli::CompileArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: CompileArgs) -> Result<Outcome, Failure> {
    let spec = shared::read_spec(&args.spec)?;
    let program = shared::lower_spec(&args.spec, &spec)?;
    let object = shared::emit(&args.spec, &program)?;
    io::write_output(&args.output, &object)?;
    Ok(Outcome::Success)
}
