//! `lagic dashboard [--listen ADDR] [--lab NAME] [--enclave URL] [--iface IF] [--examples DIR]
//! [--decisions FILE]`:
//! the page of the `lagic-dashboard` crate (docs/dashboard.md). This module
//! resolves the flags and gives the dashboard the compile path of
//! `lagic compile` (lower, emit, validate), so a diode picked on the page is
//! checked exactly as one compiled on the command line.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use lagic_dashboard::{CompileRefused, DashboardError, Options, SpecCompiler};

use super::shared;
use crate::cli::DashboardArgs;
use crate::failure::{Failure, Outcome};

/// `lagic compile`'s path, with its default excerpt length.
struct CompileLikeTheCli;

impl SpecCompiler for CompileLikeTheCli {
    fn compile(&self, origin: &str, bytes: &[u8]) -> Result<Vec<u8>, CompileRefused> {
        let path = Path::new(origin);
        let refused = |f: Failure| CompileRefused(f.to_string());
        let spec = shared::spec_from_bytes(path, bytes).map_err(refused)?;
        shared::compile_spec(path, &spec, &emit_bpf::Options::default(), true).map_err(refused)
    }
}

pub fn run(args: DashboardArgs) -> Result<Outcome, Failure> {
    let options = Options {
        listen: args.listen,
        lab: args.lab,
        enclave: args.enclave,
        iface: args.iface,
        examples: args.examples,
        decisions: args.decisions,
    };
    let config = lagic_dashboard::resolve(&options).map_err(failure)?;
    let summary = format!(
        "watching the diode on {} {}, enclave at http://{}{}{}{}",
        config.iface,
        config.direction,
        config.enclave.authority(),
        config
            .lab
            .as_ref()
            .map_or(String::new(), |l| format!(", lab {l}")),
        match &config.examples {
            Some(_) => "",
            None => ", no examples directory (uploads only)",
        },
        config
            .decisions
            .as_ref()
            .map_or(String::new(), |f| format!(", drops from {}", f.display()))
    );
    lagic_dashboard::run(config, Arc::new(CompileLikeTheCli), move |addr| {
        // The first line of stdout is the address (with the real port for --listen ...:0).
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "lagic dashboard: serving http://{addr}/");
        let _ = out.flush();
        let _ = writeln!(
            std::io::stderr(),
            "lagic dashboard: {summary}; Ctrl-C stops"
        );
    })
    .map_err(failure)?;
    Ok(Outcome::Success)
}

fn failure(e: DashboardError) -> Failure {
    let f = Failure::bad_input(e.to_string());
    match e {
        DashboardError::Listen { .. } => {
            f.with_hint("another process may be listening there; pick another with --listen")
        }
        DashboardError::Attachments(_) => f.with_hint("run it as root (sudo)"),
        _ => f,
    }
}
