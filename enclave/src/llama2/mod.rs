//! llama2.c-compatible inference: checkpoint and tokenizer files, the
//! forward pass, run.c's sampler, and [`Llama2Generator`], which serves them
//! behind the [`Generator`] trait.
//!
//! Generation follows run.c's loop: the prompt is encoded with BOS, its
//! tokens are fed one position at a time (each is "printed" as it is
//! forced, so the output begins with the prompt), then tokens are sampled
//! until BOS is sampled, `max_tokens` new tokens exist, the context
//! (`seq_len`) is full, or the request's deadline passes.

pub mod checkpoint;
pub mod kernels;
pub mod pool;
pub mod sampler;
pub mod tokenizer;
pub mod transformer;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::generator::{GenerateError, GenerationRequest, Generator};
use checkpoint::{Checkpoint, CheckpointError};
use sampler::{Sampler, SamplingParams};
use std::sync::Arc;
use tokenizer::{Tokenizer, TokenizerError, BOS};
use transformer::{forward_with, Compute, RunState};

/// Why a model and tokenizer pair could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The checkpoint is unreadable or malformed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The tokenizer is unreadable, malformed or does not match the model.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Temperature or top-p out of range.
    #[error("invalid sampling parameters: {0}")]
    Sampling(String),
    /// The forward pass's worker threads could not be started.
    #[error("cannot start {threads} inference threads: {source}")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Counters of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationStats {
    /// Prompt tokens, BOS included.
    pub prompt_tokens: usize,
    /// Tokens sampled after the prompt.
    pub generated_tokens: usize,
    /// Forward passes run.
    pub forward_passes: usize,
    /// Wall time of the whole generation.
    pub elapsed: Duration,
}

/// A llama2.c model, its tokenizer, default sampling parameters, and the
/// kernels and threads its forward passes run on (one pool shared by all
/// requests; a request that finds it busy computes on its own thread).
#[derive(Debug, Clone)]
pub struct Llama2Generator {
    model: Checkpoint,
    tokenizer: Tokenizer,
    params: SamplingParams,
    compute: Arc<Compute>,
}

impl Llama2Generator {
    /// Pair a model with its tokenizer; their vocabulary sizes must agree.
    /// Forward passes run on the calling thread; see [`Self::with_threads`].
    pub fn new(
        model: Checkpoint,
        tokenizer: Tokenizer,
        params: SamplingParams,
    ) -> Result<Self, LoadError> {
        tokenizer.check_vocab(model.config().vocab_size)?;
        params.validate().map_err(LoadError::Sampling)?;
        Ok(Llama2Generator {
            model,
            tokenizer,
            params,
            compute: Arc::new(Compute::single()),
        })
    }

    /// Split each forward pass over `threads` threads (0: one per core).
    /// Results are the same for any thread count.
    pub fn with_threads(mut self, threads: usize) -> Result<Self, LoadError> {
        self.compute = Arc::new(
            Compute::with_threads(threads)
                .map_err(|source| LoadError::Threads { threads, source })?,
        );
        Ok(self)
    }

    /// Threads a forward pass uses.
    pub fn threads(&self) -> usize {
        self.compute.threads()
    }

    /// Load `model.bin` and `tokenizer.bin`.
    pub fn load(model: &Path, tokenizer: &Path, params: SamplingParams) -> Result<Self, LoadError> {
        let checkpoint = Checkpoint::load(model)?;
        let tokenizer = Tokenizer::load(tokenizer)?;
        Self::new(checkpoint, tokenizer, params)
    }

    /// The model.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Generate, returning the token ids (BOS first) and counters.
    pub fn generate_tokens(
        &self,
        request: &GenerationRequest<'_>,
    ) -> Result<(Vec<u32>, GenerationStats), GenerateError> {
        let start = Instant::now();
        let seq_len = self.model.config().seq_len;
        let bound = self.tokenizer.min_tokens(request.prompt);
        if bound > seq_len {
            return Err(GenerateError::PromptTooLong {
                tokens: bound,
                context: seq_len,
            });
        }
        let prompt = self.tokenizer.encode(request.prompt, true, false);
        if prompt.len() > seq_len {
            return Err(GenerateError::PromptTooLong {
                tokens: prompt.len(),
                context: seq_len,
            });
        }
        let steps = (prompt.len() - 1)
            .saturating_add(request.max_tokens)
            .min(seq_len);
        let mut state = RunState::new(self.model.config(), steps)
            .map_err(|e| GenerateError::Internal(e.to_string()))?;
        let mut sampler = Sampler::new(SamplingParams {
            seed: request.seed.unwrap_or(self.params.seed),
            ..self.params
        });
        let mut tokens = Vec::with_capacity(steps + 1);
        tokens.push(prompt[0]);
        let mut token = prompt[0];
        let mut pos = 0;
        while pos < steps {
            if pos + 1 >= prompt.len() && request.expired() {
                break;
            }
            let logits = forward_with(&self.compute, &self.model, &mut state, token, pos)
                .map_err(|e| GenerateError::Internal(e.to_string()))?;
            let next = if pos + 1 < prompt.len() {
                prompt[pos + 1]
            } else {
                sampler.sample(logits)
            };
            pos += 1;
            if next == BOS {
                break;
            }
            tokens.push(next);
            token = next;
        }
        let stats = GenerationStats {
            prompt_tokens: prompt.len(),
            generated_tokens: tokens.len().saturating_sub(prompt.len()),
            forward_passes: pos,
            elapsed: start.elapsed(),
        };
        Ok((tokens, stats))
    }

    /// Generate and decode to text (invalid UTF-8 from byte tokens is
    /// replaced by U+FFFD, since the API carries JSON strings).
    pub fn complete(
        &self,
        request: &GenerationRequest<'_>,
    ) -> Result<(String, GenerationStats), GenerateError> {
        let (tokens, stats) = self.generate_tokens(request)?;
        let bytes = self.tokenizer.decode(&tokens);
        Ok((String::from_utf8_lossy(&bytes).into_owned(), stats))
    }
}

impl Generator for Llama2Generator {
    fn generate(&self, prompt: &str, max_tokens: usize) -> Result<String, GenerateError> {
        self.generate_request(&GenerationRequest::new(prompt, max_tokens))
    }

    fn generate_request(&self, request: &GenerationRequest<'_>) -> Result<String, GenerateError> {
        self.complete(request).map(|(text, _)| text)
    }

    fn describe(&self) -> serde_json::Value {
        let c = self.model.config();
        serde_json::json!({
            "kind": "llama2",
            "dim": c.dim,
            "hidden_dim": c.hidden_dim,
            "n_layers": c.n_layers,
            "n_heads": c.n_heads,
            "n_kv_heads": c.n_kv_heads,
            "vocab_size": c.vocab_size,
            "seq_len": c.seq_len,
            "shared_classifier": c.shared_classifier,
            // Through the shortest decimal form, so 0.9f32 reads 0.9, not 0.8999999761581421.
            "temperature": short_f64(self.params.temperature),
            "top_p": short_f64(self.params.top_p),
            "seed": self.params.seed,
            "threads": self.compute.threads(),
            "simd": self.compute.simd().name(),
        })
    }
}

/// The f64 whose shortest decimal form equals that of `v`.
fn short_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{make_model, make_tokenizer, SynthSpec};

    fn small(seq_len: usize) -> Llama2Generator {
        let t = make_tokenizer();
        let spec = SynthSpec {
            seq_len,
            ..SynthSpec::default()
        };
        Llama2Generator::new(make_model(&spec, &t).unwrap(), t, SamplingParams::default()).unwrap()
    }

    #[test]
    fn context_boundary() {
        let g = small(8);
        // " once" is one token: 7 words + BOS fill the context exactly; the
        // last position still samples one token, as run.c does.
        let fits = "once ".repeat(7);
        let fits = fits.trim_end();
        let (tokens, stats) = g
            .generate_tokens(&GenerationRequest::new(fits, 100))
            .unwrap();
        assert_eq!(stats.prompt_tokens, 8);
        assert_eq!(stats.generated_tokens, 1);
        assert_eq!(tokens.len(), 9);
        assert_eq!(stats.forward_passes, 8);
        let over = "once ".repeat(8);
        assert_eq!(
            g.generate(over.trim_end(), 1).unwrap_err(),
            GenerateError::PromptTooLong {
                tokens: 9,
                context: 8
            }
        );
    }

    #[test]
    fn max_tokens_counts_new_tokens_only() {
        let g = small(64);
        for n in [0, 1, 5, 30] {
            let (_, stats) = g
                .generate_tokens(&GenerationRequest::new("Once upon a time", n))
                .unwrap();
            assert_eq!(stats.prompt_tokens, 5);
            assert_eq!(stats.generated_tokens, n);
        }
        // The context end cuts generation short.
        let (tokens, _) = g
            .generate_tokens(&GenerationRequest::new("Once upon a time", 1000))
            .unwrap();
        assert_eq!(tokens.len(), 65);
    }

    #[test]
    fn seeds_change_text_and_repeat_it() {
        let g = small(64);
        let run = |seed| {
            let mut r = GenerationRequest::new("Once upon a time", 20);
            r.seed = Some(seed);
            g.generate_request(&r).unwrap()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn concurrent_generations_match_serial_ones() {
        let g = std::sync::Arc::new(small(128));
        let serial: Vec<String> = (0..4)
            .map(|i| g.generate(&format!("Once upon a time {i}"), 50).unwrap())
            .collect();
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let g = g.clone();
                std::thread::spawn(move || {
                    g.generate(&format!("Once upon a time {i}"), 50).unwrap()
                })
            })
            .collect();
        let parallel: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(serial, parallel);
    }
}
