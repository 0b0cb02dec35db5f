//! lagic-bench: lagic's diodes against hand-written C baselines compiled by
//! clang, measured side by side in one run.
//!
//! Modules, in the order the benchmark uses them:
//! - [`tools`]: the two compilers as whole processes, and where things are;
//! - [`equivalence`]: the verdict gate every baseline must pass first;
//! - [`measure`]: compile latency, test-run timing, verifier statistics;
//! - [`scaling`]: generated specs and their C counterparts as k grows;
//! - [`blocklist`]: block lists of 1 to 10,000 words: lagic, C, iptables;
//! - [`e2e`]: HTTP throughput through a real veth, with and without diodes
//!   and with the netfilter string match;
//! - [`wire`]: packets per second through the veth with a diode against
//!   iptables string rules (the per-packet cost of a block list);
//! - [`report`]: BENCHMARKS.md and bench/results.json;
//! - [`enclave`]: `lagic-bench enclave`, lagic-enclave's inference speed
//!   against a C llama2 (separate from the diode benchmark above).
//!
//! Invariant: no timing is taken for a diode whose baseline or lagic object
//! disagrees with the reference diode on any generated frame.

pub mod blocklist;
pub mod e2e;
pub mod enclave;
pub mod equivalence;
pub mod keepalive;
pub mod measure;
pub mod report;
pub mod rng;
pub mod scaling;
pub mod stream;
pub mod tools;
pub mod wire;

/// The seed diodes, by the names of their spec files and baselines.
pub const DIODES: [&str; reference_diodes::ALL.len()] = reference_diodes::SEED_NAMES;

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A compiler or system tool failed.
    #[error("{what} failed ({status}):\n{stderr}")]
    Tool {
        /// The command.
        what: String,
        /// Its exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// The kernel refused a program.
    #[error("loading {what}: {message}")]
    Load {
        /// The object.
        what: String,
        /// The loader's error, with the verifier's log tail.
        message: String,
    },
    /// A test run failed.
    #[error("test run: {0}")]
    Run(String),
    /// A program disagreed with the expected verdict: the counterexample.
    #[error("{0}")]
    Mismatch(Box<Counterexample>),
    /// Something the benchmark needs is missing.
    #[error("setup: {0}")]
    Setup(String),
    /// The end-to-end lab could not be built or removed.
    #[error("lab: {0}")]
    Lab(#[from] lagic_lab::LabError),
}

/// A frame on which a program's verdict differs from the required one.
#[derive(Debug, thiserror::Error)]
#[error("MISMATCH in {diode} ({side}): {what}: expected {expected}, got {got}\nframe: {frame_hex}")]
pub struct Counterexample {
    /// The diode.
    pub diode: String,
    /// `lagic` or `clang`.
    pub side: String,
    /// The frame's description.
    pub what: String,
    /// The verdict required by the reference diode and the packet model.
    pub expected: String,
    /// The program's verdict.
    pub got: String,
    /// The frame, in hex.
    pub frame_hex: String,
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(what: &str, source: std::io::Error) -> Self {
        Self::Io {
            what: what.to_string(),
            source,
        }
    }
}

/// Loads an object file through the same Aya loader for both sides.
pub fn load_object(path: &std::path::Path) -> Result<lagic_loader::LoadedProgram, BenchError> {
    let bytes = std::fs::read(path)
        .map_err(|e| BenchError::io(&format!("reading {}", path.display()), e))?;
    lagic_loader::LoadedProgram::from_object(&bytes).map_err(|e| BenchError::Load {
        what: path.display().to_string(),
        message: e.to_string(),
    })
}
