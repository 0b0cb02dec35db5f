//! The text-generator abstraction the HTTP server talks to.
//!
//! A [`Generator`] turns a prompt into a response that *begins with the prompt*
//! (llama2.c prints the prompt tokens before the sampled ones, and the diodes
//! judge the whole response). Implementations are shared between connection
//! threads, so they are `Send + Sync` and take `&self`: per-request state
//! (KV caches, RNGs) lives on the calling thread's stack.

use std::time::Instant;

/// Why a generation request could not be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenerateError {
    /// The prompt alone does not fit in the model's context window.
    #[error("prompt is {tokens} tokens but the model's context holds {context}")]
    PromptTooLong {
        /// Tokens the prompt encodes to (including BOS), or a lower bound on it.
        tokens: usize,
        /// The model's `seq_len`.
        context: usize,
    },
    /// The request asks for something this generator cannot do.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The generator failed for a reason that is not the request's fault.
    #[error("generation failed: {0}")]
    Internal(String),
}

impl GenerateError {
    /// True when the fault lies with the request (the server answers 4xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            GenerateError::PromptTooLong { .. } | GenerateError::InvalidRequest(_)
        )
    }
}

/// Everything one generation may be told, beyond prompt and length.
#[derive(Debug, Clone)]
pub struct GenerationRequest<'a> {
    /// Text to continue.
    pub prompt: &'a str,
    /// Upper bound on the number of tokens (words, for the echo generator)
    /// appended after the prompt.
    pub max_tokens: usize,
    /// Stop producing new tokens once this instant has passed; the text made
    /// so far is returned (the API's `wait_time`).
    pub deadline: Option<Instant>,
    /// Per-request seed overriding the generator's own.
    pub seed: Option<u64>,
}

impl<'a> GenerationRequest<'a> {
    /// A request with no deadline and the generator's default seed.
    pub fn new(prompt: &'a str, max_tokens: usize) -> Self {
        GenerationRequest {
            prompt,
            max_tokens,
            deadline: None,
            seed: None,
        }
    }

    /// True once the request's deadline (if any) has passed.
    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// A text generator: continues a prompt, returning prompt + continuation.
pub trait Generator: Send + Sync {
    /// Continue `prompt` by at most `max_tokens` tokens.
    fn generate(&self, prompt: &str, max_tokens: usize) -> Result<String, GenerateError>;

    /// Continue a prompt honouring a deadline and an optional seed. The
    /// default ignores both; generators whose work is long or random override it.
    fn generate_request(&self, request: &GenerationRequest<'_>) -> Result<String, GenerateError> {
        self.generate(request.prompt, request.max_tokens)
    }

    /// A JSON description for `GET /health` (kind, model shape, ...).
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "unknown" })
    }
}
