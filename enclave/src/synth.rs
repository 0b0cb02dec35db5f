//! Small synthetic llama2.c models, made deterministically from a seed, for
//! tests and the default lab (real checkpoints cannot be downloaded here).
//!
//! The tokenizer has run.c's layout: `<unk>`, `<s>`, `</s>` at 0..=2, the
//! byte tokens `<0x00>`..`<0xFF>` at 3..=258, every printable ASCII
//! character as its own piece, then the prefixes of a word list (with and
//! without a leading space) scored by length, so that greedy BPE assembles
//! whole words ("Once upon a time", "I hate bananas") and anything else
//! falls back to characters and bytes. Every text round-trips.
//!
//! The weights are random (seeded), except for one steering device that
//! keeps sampled text clean: residual channel 0 holds a positive constant
//! in every token embedding, and no layer writes to it (row 0 of `wo` and
//! `w2` is zero), so after the final RMSNorm it is strictly positive. The
//! (unshared) classifier puts a large negative weight on that channel for
//! every token outside [`sampled_pieces`], driving their probability to
//! exactly zero in f32. What the model can emit after a prompt is therefore
//! only ` word` pieces of [`crate::echo::CLEAN_WORDS`] and `.`/`,`:
//! printable ASCII, never the letters `hate`, and never BOS (generation runs
//! to `max_tokens` or the context end). The last token id is also an
//! allowed piece, because run.c's sampler falls back to the last token when
//! rounding leaves the coin above the cumulative sum.

use std::io;
use std::path::{Path, PathBuf};

use crate::echo::CLEAN_WORDS;
use crate::llama2::checkpoint::{Checkpoint, CheckpointError, Config, Weights};
use crate::llama2::tokenizer::Tokenizer;

/// Words the tokenizer knows besides [`CLEAN_WORDS`] (prompts use them;
/// the model never emits them).
pub const EXTRA_WORDS: &[&str] = &[
    "Once", "The", "I", "Lily", "Tim", "She", "He", "They", "One", "It", "hate", "hates",
    "bananas", "banana", "love", "like", "We", "You", "A",
];

/// Punctuation pieces the model may emit.
pub const SAMPLED_PUNCTUATION: &[&str] = &[".", ","];

/// Value of the steering channel in every token embedding.
const STEER: f32 = 2.0;
/// Weight the classifier puts on the steering channel for banned tokens.
const BAN: f32 = -1000.0;

/// Shape and seed of a synthetic model (the vocabulary is fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSpec {
    /// Residual width.
    pub dim: usize,
    /// Feed-forward width.
    pub hidden_dim: usize,
    /// Layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Context length.
    pub seq_len: usize,
    /// Weight seed.
    pub seed: u64,
    /// Pad the vocabulary with never-sampled `<pad_N>` pieces up to this
    /// size (0: the natural size), e.g. 32000 to time a stories15M-sized
    /// classifier.
    pub vocab_size: usize,
}

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec {
            dim: 64,
            hidden_dim: 176,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            seq_len: 512,
            seed: 1,
            vocab_size: 0,
        }
    }
}

/// Pieces the model is allowed to emit.
pub fn sampled_pieces() -> Vec<String> {
    CLEAN_WORDS
        .iter()
        .map(|w| format!(" {w}"))
        .chain(SAMPLED_PUNCTUATION.iter().map(|p| p.to_string()))
        .collect()
}

/// The fixed synthetic tokenizer.
pub fn make_tokenizer() -> Tokenizer {
    make_padded_tokenizer(0)
}

/// The synthetic tokenizer padded with `<pad_N>` pieces (placed before the
/// word pieces) to `vocab_size` tokens when it is larger than the natural size.
pub fn make_padded_tokenizer(vocab_size: usize) -> Tokenizer {
    let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    let mut scores = vec![0.0f32; 3];
    for b in 0..=255u8 {
        pieces.push(format!("<0x{b:02X}>").into_bytes());
        scores.push(0.0);
    }
    for b in 0x20..0x7fu8 {
        pieces.push(vec![b]);
        scores.push(0.0);
    }
    let words = EXTRA_WORDS.iter().chain(CLEAN_WORDS);
    let mut word_pieces: Vec<Vec<u8>> = Vec::new();
    let mut seen: std::collections::HashSet<Vec<u8>> = pieces.iter().cloned().collect();
    // Clean words last, so the final id is " <last clean word>".
    for word in words {
        let spaced = format!(" {word}");
        let forms = [word.as_bytes(), spaced.as_bytes()];
        for form in forms {
            for end in 2..=form.len() {
                let piece = form[..end].to_vec();
                if seen.insert(piece.clone()) {
                    word_pieces.push(piece);
                }
            }
        }
    }
    let padding = vocab_size.saturating_sub(pieces.len() + word_pieces.len());
    for i in 0..padding {
        pieces.push(format!("<pad_{i}>").into_bytes());
        scores.push(0.0);
    }
    for piece in word_pieces {
        scores.push(piece.len() as f32);
        pieces.push(piece);
    }
    let max = pieces.iter().map(Vec::len).max().unwrap_or(1) as u32;
    Tokenizer::new(pieces, scores, max).expect("the synthetic vocabulary is well formed")
}

/// Random weights for `spec` over `tokenizer`'s vocabulary, steered as the
/// module documentation describes.
pub fn make_model(spec: &SynthSpec, tokenizer: &Tokenizer) -> Result<Checkpoint, CheckpointError> {
    let config = Config {
        dim: spec.dim,
        hidden_dim: spec.hidden_dim,
        n_layers: spec.n_layers,
        n_heads: spec.n_heads,
        n_kv_heads: spec.n_kv_heads,
        vocab_size: tokenizer.vocab_size(),
        seq_len: spec.seq_len,
        shared_classifier: false,
    };
    config.validate()?;
    if config.dim < 2 {
        return Err(CheckpointError::InvalidConfig(
            "synthetic models need dim >= 2 (channel 0 steers)".into(),
        ));
    }
    let (d, h, l, v, kv) = (
        config.dim,
        config.hidden_dim,
        config.n_layers,
        config.vocab_size,
        config.kv_dim(),
    );
    let mut rng = Normal::new(spec.seed);
    let mut gauss =
        |n: usize, std: f32| -> Vec<f32> { (0..n).map(|_| rng.sample() * std).collect() };
    let inv_d = 1.0 / (d as f32).sqrt();
    let inv_h = 1.0 / (h as f32).sqrt();

    let mut token_embedding = gauss(v * d, 1.0);
    let rms_att = gauss(l * d, 0.1).iter().map(|x| 1.0 + x).collect();
    let wq = gauss(l * d * d, inv_d);
    let wk = gauss(l * kv * d, inv_d);
    let wv = gauss(l * kv * d, inv_d);
    let mut wo = gauss(l * d * d, inv_d);
    let rms_ffn = gauss(l * d, 0.1).iter().map(|x| 1.0 + x).collect();
    let w1 = gauss(l * h * d, inv_d);
    let mut w2 = gauss(l * d * h, inv_h);
    let w3 = gauss(l * h * d, inv_d);
    let mut rms_final: Vec<f32> = gauss(d, 0.1).iter().map(|x| 1.0 + x).collect();
    let mut wcls = gauss(v * d, 3.0 * inv_d);

    // The steering channel: constant in, never written, banned tokens
    // weighted far below zero on it.
    for t in 0..v {
        token_embedding[t * d] = STEER;
    }
    for layer in 0..l {
        wo[layer * d * d..layer * d * d + d].fill(0.0);
        w2[layer * d * h..layer * d * h + h].fill(0.0);
    }
    rms_final[0] = 1.0;
    let allowed: std::collections::HashSet<u32> = sampled_pieces()
        .iter()
        .filter_map(|p| tokenizer.token_of(p.as_bytes()))
        .collect();
    for t in 0..v {
        wcls[t * d] = if allowed.contains(&(t as u32)) {
            0.0
        } else {
            BAN
        };
    }

    Checkpoint::new(
        config,
        Weights {
            token_embedding,
            rms_att,
            wq,
            wk,
            wv,
            wo,
            rms_ffn,
            w1,
            w2,
            w3,
            rms_final,
            wcls: Some(wcls),
        },
    )
}

/// Write `model.bin` and `tokenizer.bin` into `dir` (created if missing).
pub fn write_model_dir(dir: &Path, spec: &SynthSpec) -> io::Result<(PathBuf, PathBuf)> {
    let tokenizer = make_padded_tokenizer(spec.vocab_size);
    let model = make_model(spec, &tokenizer)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    std::fs::create_dir_all(dir)?;
    let model_path = dir.join("model.bin");
    let tokenizer_path = dir.join("tokenizer.bin");
    std::fs::write(&model_path, model.to_bytes())?;
    std::fs::write(&tokenizer_path, tokenizer.to_bytes())?;
    Ok((model_path, tokenizer_path))
}

/// Standard normal draws (Box-Muller over SplitMix64), reproducible from a seed.
struct Normal {
    state: u64,
    spare: Option<f32>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Normal {
            state: seed,
            spare: None,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits in (0, 1]: never 0, so ln() stays finite.
        ((z >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn sample(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Generator;
    use crate::llama2::sampler::SamplingParams;
    use crate::llama2::Llama2Generator;

    #[test]
    fn tokenizer_layout_and_round_trip() {
        let t = make_tokenizer();
        assert_eq!(t.piece(0), b"<unk>");
        assert_eq!(t.piece(1), b"<s>");
        assert_eq!(t.piece(2), b"</s>");
        assert_eq!(t.piece(3), b"<0x00>");
        assert_eq!(t.piece(258), b"<0xFF>");
        let last = (t.vocab_size() - 1) as u32;
        assert!(sampled_pieces()
            .iter()
            .any(|p| p.as_bytes() == t.piece(last)));
        for text in [
            "Once upon a time",
            "I hate bananas",
            "{\"json\": [1, 2]}",
            "naïve ☃",
        ] {
            let ids = t.encode(text, true, false);
            assert_eq!(t.decode(&ids), text.as_bytes());
        }
        let ids = t.encode("I hate bananas", true, false);
        let pieces: Vec<&[u8]> = ids[1..].iter().map(|&i| t.piece(i)).collect();
        assert_eq!(pieces, vec![&b" I"[..], b" hate", b" bananas"]);
    }

    #[test]
    fn random_texts_round_trip() {
        let t = make_tokenizer();
        let alphabet: Vec<char> =
            "abcdefghijklmnopqrstuvwxyz ABCDEFG.,!?\"{}[]\n\t\u{0}\u{7f}é☃😀hate Once upon"
                .chars()
                .collect();
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..500 {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let len = (next() % 40) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let ids = t.encode(&text, true, false);
            assert_eq!(t.decode(&ids), text.as_bytes(), "{text:?}");
            assert!(ids.len() <= text.len() + 2);
        }
    }

    #[test]
    fn padding_keeps_words_and_round_trip() {
        let t = make_padded_tokenizer(4000);
        assert_eq!(t.vocab_size(), 4000);
        let last = (t.vocab_size() - 1) as u32;
        assert!(sampled_pieces()
            .iter()
            .any(|p| p.as_bytes() == t.piece(last)));
        let ids = t.encode("I hate bananas", true, false);
        assert_eq!(t.decode(&ids), b"I hate bananas");
        assert_eq!(ids.len(), 4);
        // Smaller than natural: no padding.
        assert_eq!(
            make_padded_tokenizer(10).vocab_size(),
            make_tokenizer().vocab_size()
        );
    }

    #[test]
    fn deterministic_from_seed() {
        let t = make_tokenizer();
        let a = make_model(&SynthSpec::default(), &t).unwrap().to_bytes();
        let b = make_model(&SynthSpec::default(), &t).unwrap().to_bytes();
        let c = make_model(
            &SynthSpec {
                seed: 2,
                ..Default::default()
            },
            &t,
        )
        .unwrap()
        .to_bytes();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() < 4 << 20, "{} bytes", a.len());
    }

    #[test]
    fn sampled_text_is_clean_printable_and_full_length() {
        let t = make_tokenizer();
        let model = make_model(&SynthSpec::default(), &t).unwrap();
        for (seed, temperature, top_p) in
            [(1, 1.0, 0.9), (2, 1.0, 1.0), (3, 0.0, 0.9), (4, 2.0, 0.0)]
        {
            let g = Llama2Generator::new(
                model.clone(),
                t.clone(),
                SamplingParams {
                    temperature,
                    top_p,
                    seed,
                },
            )
            .unwrap();
            for prompt in ["Once upon a time", "I hate bananas", "zzz\u{7}", ""] {
                let out = g.generate(prompt, 80).unwrap();
                assert!(out.starts_with(prompt), "{out:?}");
                let tail = &out[prompt.len()..];
                assert!(tail.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{tail:?}");
                assert!(!tail.to_ascii_lowercase().contains("hate"), "{tail:?}");
                let words = tail.split(' ').filter(|w| !w.is_empty()).count();
                assert!(words >= 40, "{seed}: only {words} words in {tail:?}");
            }
        }
    }
}
