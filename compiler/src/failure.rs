//! Errors as the CLI shows them: what went wrong, where, and what to do.

use std::fmt;

/// The process outcome, as documented in `lagic --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: the command did what was asked (PASS, a valid spec, a written object).
    Success = 0,
    /// 1: a verdict or check that failed (DROP; a spec lagic cannot emit).
    Failed = 1,
    /// 2: bad input or usage.
    BadInput = 2,
}

impl From<Outcome> for std::process::ExitCode {
    fn from(o: Outcome) -> Self {
        std::process::ExitCode::from(o as u8)
    }
}

/// A failure rendered for people: `lagic: error: <what>` and an optional hint.
#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure {
            outcome: Outcome::BadInput,
            message: message.into(),
            hint: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            outcome: Outcome::Failed,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// The failure of a step after `done` was already carried out (a report that cannot
    /// be written after a kernel change): the message says the change stands.
    pub fn after(mut self, done: &str) -> Failure {
        self.message = format!("{done}, but {}", self.message);
        self
    }

    pub fn exit_code(&self) -> Outcome {
        self.outcome
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages quote specs, objects and paths: no raw control character reaches the
        // terminal. Line breaks stay (a verifier log is many lines).
        write!(
            f,
            "lagic: error: {}",
            crate::io::escape_controls(&self.message, true)
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {}", crate::io::escape_controls(hint, true))?;
        }
        Ok(())
    }
}
