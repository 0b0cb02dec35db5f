//! One module per subcommand; each returns the process outcome or a
//! [`Failure`] to render. What several subcommands need lives in [`shared`].

mod attach;
mod check;
mod compile;
mod dashboard;
mod detach;
mod disasm;
mod lab;
mod run;
mod shared;
mod status;
mod watch;

use crate::cli::{Cli, Command};
use crate::failure::{Failure, Outcome};

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
        Command::Watch(args) => watch::run(args),
        Command::Dashboard(args) => dashboard::run(args),
    }
}
