//! The llama2 forward pass: one token at one position in, next-token logits out.
//!
//! Per layer: RMSNorm (eps 1e-5), q/k/v projections, rotary position
//! embedding on q and k (frequency `10000^(-2i/head_size)` per pair inside a
//! head), causal multi-head attention over the KV cache with grouped-query
//! sharing (query head `h` reads key/value head `h / (n_heads/n_kv_heads)`),
//! output projection added to the residual, then RMSNorm, SwiGLU
//! feed-forward (`w2 (silu(w1 x) * w3 x)`) added to the residual. A final
//! RMSNorm and the classifier give the logits.
//!
//! [`RunState`] holds the scratch buffers and the KV cache of one sequence;
//! it is sized for a number of positions fixed at creation (at most the
//! model's `seq_len`), and positions must be fed in order 0, 1, 2, ...
//! because attention at `pos` reads the cache entries of `0..=pos`.

use super::checkpoint::{Checkpoint, Config};

/// A forward call outside what the state or the model can hold.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    /// Token id not below `vocab_size`.
    #[error("token {token} is outside the vocabulary of {vocab} tokens")]
    Token {
        /// The token.
        token: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// The state was made for a model of another shape.
    #[error("the run state was sized for a different model")]
    StateMismatch,
    /// The KV cache and activations do not fit in memory.
    #[error("cannot allocate {bytes} bytes of run state (KV cache for {positions} positions)")]
    Allocation {
        /// Bytes requested (saturated on overflow).
        bytes: usize,
        /// Positions requested.
        positions: usize,
    },
    /// Position not below the state's capacity.
    #[error("position {pos} is outside the {capacity} positions this state holds")]
    Position {
        /// The position.
        pos: usize,
        /// Positions the state was sized for.
        capacity: usize,
    },
}

/// Activations and KV cache of one sequence.
#[derive(Debug, Clone)]
pub struct RunState {
    x: Vec<f32>,
    xb: Vec<f32>,
    xb2: Vec<f32>,
    hb: Vec<f32>,
    hb2: Vec<f32>,
    q: Vec<f32>,
    att: Vec<f32>,
    logits: Vec<f32>,
    /// `[layer][position][kv_dim]`
    key_cache: Vec<f32>,
    /// `[layer][position][kv_dim]`
    value_cache: Vec<f32>,
    capacity: usize,
}

impl RunState {
    /// Buffers for a sequence of up to `positions` tokens (clamped to
    /// `1..=seq_len`). The KV cache is the large part (`2 * n_layers *
    /// positions * kv_dim` floats); failing to allocate it is an error, not
    /// an abort, since a checkpoint's header chooses its size.
    pub fn new(config: &Config, positions: usize) -> Result<RunState, ForwardError> {
        let capacity = positions.clamp(1, config.seq_len);
        let kv = config
            .n_layers
            .checked_mul(capacity)
            .and_then(|n| n.checked_mul(config.kv_dim()));
        let too_big = ForwardError::Allocation {
            bytes: kv.map_or(usize::MAX, |n| n.saturating_mul(8)),
            positions: capacity,
        };
        let kv = kv.ok_or(too_big.clone())?;
        let att = config
            .n_heads
            .checked_mul(capacity)
            .ok_or(too_big.clone())?;
        let zeros = |n: usize| -> Result<Vec<f32>, ForwardError> {
            let mut v = Vec::new();
            v.try_reserve_exact(n).map_err(|_| too_big.clone())?;
            v.resize(n, 0.0);
            Ok(v)
        };
        Ok(RunState {
            x: zeros(config.dim)?,
            xb: zeros(config.dim)?,
            xb2: zeros(config.dim)?,
            hb: zeros(config.hidden_dim)?,
            hb2: zeros(config.hidden_dim)?,
            q: zeros(config.dim)?,
            att: zeros(att)?,
            logits: zeros(config.vocab_size)?,
            key_cache: zeros(kv)?,
            value_cache: zeros(kv)?,
            capacity,
        })
    }

    /// True when the buffers have the sizes `config` implies.
    fn fits(&self, config: &Config) -> bool {
        let kv = config.n_layers * self.capacity * config.kv_dim();
        self.capacity <= config.seq_len
            && self.x.len() == config.dim
            && self.hb.len() == config.hidden_dim
            && self.att.len() == config.n_heads * self.capacity
            && self.logits.len() == config.vocab_size
            && self.key_cache.len() == kv
            && self.value_cache.len() == kv
    }

    /// Positions this state can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Run token `token` at position `pos` and return the logits over the vocabulary.
pub fn forward<'s>(
    model: &Checkpoint,
    s: &'s mut RunState,
    token: u32,
    pos: usize,
) -> Result<&'s mut [f32], ForwardError> {
    let p = model.config();
    let w = model.weights();
    if !s.fits(p) {
        return Err(ForwardError::StateMismatch);
    }
    if token as usize >= p.vocab_size {
        return Err(ForwardError::Token {
            token,
            vocab: p.vocab_size,
        });
    }
    if pos >= s.capacity {
        return Err(ForwardError::Position {
            pos,
            capacity: s.capacity,
        });
    }
    let dim = p.dim;
    let hidden = p.hidden_dim;
    let head_size = p.head_size();
    let kv_dim = p.kv_dim();
    let kv_mul = p.n_heads / p.n_kv_heads;
    let cap = s.capacity;

    let t = token as usize;
    s.x.copy_from_slice(&w.token_embedding[t * dim..(t + 1) * dim]);

    for l in 0..p.n_layers {
        rmsnorm(&mut s.xb, &s.x, &w.rms_att[l * dim..(l + 1) * dim]);

        let cache_at = l * cap * kv_dim + pos * kv_dim;
        let k = &mut s.key_cache[cache_at..cache_at + kv_dim];
        let v = &mut s.value_cache[cache_at..cache_at + kv_dim];
        matmul(&mut s.q, &s.xb, &w.wq[l * dim * dim..(l + 1) * dim * dim]);
        matmul(k, &s.xb, &w.wk[l * dim * kv_dim..(l + 1) * dim * kv_dim]);
        matmul(v, &s.xb, &w.wv[l * dim * kv_dim..(l + 1) * dim * kv_dim]);

        rope(&mut s.q, k, pos, head_size);

        let layer_keys = &s.key_cache[l * cap * kv_dim..(l + 1) * cap * kv_dim];
        let layer_values = &s.value_cache[l * cap * kv_dim..(l + 1) * cap * kv_dim];
        let scale = 1.0 / (head_size as f32).sqrt();
        for h in 0..p.n_heads {
            let q = &s.q[h * head_size..(h + 1) * head_size];
            let att = &mut s.att[h * cap..h * cap + pos + 1];
            let kv_off = (h / kv_mul) * head_size;
            for (ti, a) in att.iter_mut().enumerate() {
                let key = &layer_keys[ti * kv_dim + kv_off..ti * kv_dim + kv_off + head_size];
                *a = dot(q, key) * scale;
            }
            softmax(att);
            let out = &mut s.xb[h * head_size..(h + 1) * head_size];
            out.fill(0.0);
            for (ti, &a) in att.iter().enumerate() {
                let value = &layer_values[ti * kv_dim + kv_off..ti * kv_dim + kv_off + head_size];
                for (o, &vv) in out.iter_mut().zip(value) {
                    *o += a * vv;
                }
            }
        }

        matmul(&mut s.xb2, &s.xb, &w.wo[l * dim * dim..(l + 1) * dim * dim]);
        for (x, d) in s.x.iter_mut().zip(&s.xb2) {
            *x += d;
        }

        rmsnorm(&mut s.xb, &s.x, &w.rms_ffn[l * dim..(l + 1) * dim]);
        matmul(
            &mut s.hb,
            &s.xb,
            &w.w1[l * dim * hidden..(l + 1) * dim * hidden],
        );
        matmul(
            &mut s.hb2,
            &s.xb,
            &w.w3[l * dim * hidden..(l + 1) * dim * hidden],
        );
        for (a, &b) in s.hb.iter_mut().zip(&s.hb2) {
            let silu = *a / (1.0 + (-*a).exp());
            *a = silu * b;
        }
        matmul(
            &mut s.xb,
            &s.hb,
            &w.w2[l * dim * hidden..(l + 1) * dim * hidden],
        );
        for (x, d) in s.x.iter_mut().zip(&s.xb) {
            *x += d;
        }
    }

    rmsnorm(&mut s.xb, &s.x, &w.rms_final);
    matmul_wide(&mut s.logits, &s.xb, w.classifier());
    Ok(&mut s.logits)
}

/// Multiply-adds below which splitting a matmul over threads costs more
/// (thread start-up, ~tens of microseconds) than it saves.
const PARALLEL_MACS: usize = 2_000_000;

/// [`matmul`] split over the available cores when the matrix is large
/// enough to pay for it: in practice the classifier of a real vocabulary
/// (32000 x 288 for stories15M), which dominates a token's cost.
pub fn matmul_wide(out: &mut [f32], x: &[f32], w: &[f32]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || out.len().saturating_mul(x.len()) < PARALLEL_MACS {
        return matmul(out, x, w);
    }
    let rows = out.len().div_ceil(threads);
    let n = x.len();
    std::thread::scope(|scope| {
        let mut parts = out.chunks_mut(rows).zip(w.chunks(rows * n));
        let first = parts.next();
        for (o, wpart) in parts {
            scope.spawn(move || matmul(o, x, wpart));
        }
        if let Some((o, wpart)) = first {
            matmul(o, x, wpart);
        }
    });
}

/// `out = weight * x / rms(x)` with eps 1e-5 inside the root.
pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32]) {
    let ss = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32 + 1e-5;
    let inv = 1.0 / ss.sqrt();
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(weight) {
        *o = wi * (inv * xi);
    }
}

/// In-place softmax, shifted by the maximum for stability.
pub fn softmax(x: &mut [f32]) {
    let Some(max) = x.iter().copied().reduce(f32::max) else {
        return;
    };
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `out[i] = dot(w[i], x)` for a row-major `w` of `out.len()` rows.
pub fn matmul(out: &mut [f32], x: &[f32], w: &[f32]) {
    let n = x.len();
    for (o, row) in out.iter_mut().zip(w.chunks_exact(n)) {
        *o = dot(row, x);
    }
}

/// Dot product with eight independent accumulators so that it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// Rotate each (even, odd) pair of q (all heads) and k (kv heads) by
/// `pos * 10000^(-i/head_size)`, `i` the pair's even index inside its head.
fn rope(q: &mut [f32], k: &mut [f32], pos: usize, head_size: usize) {
    for i in (0..q.len()).step_by(2) {
        let head_dim = (i % head_size) as f32;
        let freq = 1.0 / 10000f32.powf(head_dim / head_size as f32);
        let (sin, cos) = (pos as f32 * freq).sin_cos();
        let rotate = |v: &mut [f32]| {
            let (v0, v1) = (v[i], v[i + 1]);
            v[i] = v0 * cos - v1 * sin;
            v[i + 1] = v0 * sin + v1 * cos;
        };
        rotate(q);
        if i < k.len() {
            rotate(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_of_another_shape_and_bad_inputs_are_errors() {
        use crate::synth::{make_model, make_tokenizer, SynthSpec};
        let t = make_tokenizer();
        let model = make_model(
            &SynthSpec {
                seq_len: 8,
                ..SynthSpec::default()
            },
            &t,
        )
        .unwrap();
        let other = make_model(
            &SynthSpec {
                dim: 32,
                seq_len: 8,
                ..SynthSpec::default()
            },
            &t,
        )
        .unwrap();
        let mut s = RunState::new(other.config(), 8).unwrap();
        assert_eq!(
            forward(&model, &mut s, 1, 0).unwrap_err(),
            ForwardError::StateMismatch
        );
        let mut s = RunState::new(model.config(), 4).unwrap();
        assert_eq!(s.capacity(), 4);
        assert!(matches!(
            forward(&model, &mut s, 1, 4),
            Err(ForwardError::Position { .. })
        ));
        assert!(matches!(
            forward(&model, &mut s, 1 << 20, 0),
            Err(ForwardError::Token { .. })
        ));
        assert!(forward(&model, &mut s, 1, 3).is_ok());
    }

    #[test]
    fn impossible_state_sizes_fail_without_aborting() {
        let config = Config {
            dim: 2,
            hidden_dim: 2,
            n_layers: 1 << 30,
            n_heads: 1,
            n_kv_heads: 1,
            vocab_size: 3,
            seq_len: 1 << 30,
            shared_classifier: true,
        };
        assert!(matches!(
            RunState::new(&config, usize::MAX),
            Err(ForwardError::Allocation { .. })
        ));
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut v = [1.0, 2.0, 3.0, -100.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0] && v[3] < 1e-30);
    }

    #[test]
    fn rmsnorm_of_constant_vector_is_weight() {
        let mut out = [0.0; 4];
        rmsnorm(&mut out, &[3.0; 4], &[1.0, 2.0, 3.0, 4.0]);
        for (o, w) in out.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            assert!((o - w).abs() < 1e-5, "{o} vs {w}");
        }
    }

    #[test]
    fn wide_matmul_equals_plain_matmul() {
        let (rows, cols) = (20_011, 101);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0)
            .collect();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut a = vec![0.0; rows];
        let mut b = vec![0.0; rows];
        matmul(&mut a, &x, &w);
        matmul_wide(&mut b, &x, &w);
        assert_eq!(a, b);
    }

    #[test]
    fn dot_matches_naive_sum_on_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }
}
