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
//! because attention at `pos` reads the cache entries of `0..=pos`. A
//! forward pass allocates nothing.
//!
//! [`Compute`] says how the arithmetic runs: the SIMD kernels
//! ([`super::kernels`]) and optionally a [`Pool`] of threads. With a pool,
//! each layer has four parallel steps: the q/k/v products together, the
//! attention heads, the output projection, the w1/w3 products with SwiGLU,
//! and w2; then the classifier. Rows are split into chunks that the threads
//! take from a counter; each output element is computed by one thread
//! exactly as it would be on one thread, so the logits are bit-identical
//! for any thread count.

use std::ops::Range;

use super::checkpoint::{Checkpoint, Config};
use super::kernels::Simd;
use super::pool::Pool;

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
    /// `(cos, sin)` of each rotary pair of a head at the current position.
    rope: Vec<f32>,
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
            rope: zeros(config.head_size())?,
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
            && self.rope.len() == config.head_size()
            && self.key_cache.len() == kv
            && self.value_cache.len() == kv
    }

    /// Positions this state can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// How a forward pass computes: SIMD kernels and, optionally, threads.
#[derive(Debug)]
pub struct Compute {
    simd: Simd,
    pool: Option<Pool>,
    parallel_macs: usize,
}

/// Multiply-adds below which a step runs on the calling thread: handing
/// chunks to another core costs about a microsecond.
const PARALLEL_MACS: usize = 32 * 1024;

impl Compute {
    /// The best kernels of this CPU, on the calling thread only.
    pub fn single() -> Compute {
        Compute {
            simd: Simd::detect(),
            pool: None,
            parallel_macs: PARALLEL_MACS,
        }
    }

    /// The best kernels of this CPU on `threads` threads (the caller
    /// included; 0 means one per available core).
    pub fn with_threads(threads: usize) -> std::io::Result<Compute> {
        Compute::new(Simd::detect(), threads)
    }

    /// Given kernels on `threads` threads (0: one per available core).
    pub fn new(simd: Simd, threads: usize) -> std::io::Result<Compute> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        Ok(Compute {
            simd,
            pool: if threads > 1 {
                Some(Pool::new(threads)?)
            } else {
                None
            },
            parallel_macs: PARALLEL_MACS,
        })
    }

    /// Split steps of at least `macs` multiply-adds over the threads
    /// (default 32 Ki); 0 splits every step, which tests use to cover the
    /// parallel paths on small models.
    pub fn split_above(mut self, macs: usize) -> Compute {
        self.parallel_macs = macs;
        self
    }

    /// Threads a forward pass uses.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, Pool::threads)
    }

    /// The kernels in use.
    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// Call `f` on ranges covering `0..rows` (in chunks over the pool when
    /// `rows * macs_per_row` is worth it, else once with the whole range).
    fn rows(&self, rows: usize, macs_per_row: usize, f: impl Fn(Range<usize>) + Sync) {
        let pool = match &self.pool {
            Some(p) if rows.saturating_mul(macs_per_row) >= self.parallel_macs && rows > 1 => p,
            _ => return f(0..rows),
        };
        // A few chunks per thread, so that a thread the OS delays holds
        // back little; multiples of four rows for the kernels' row groups.
        let wanted = (pool.threads() * 4).min(rows);
        let size = rows.div_ceil(wanted).next_multiple_of(4).min(rows);
        let chunks = rows.div_ceil(size);
        pool.try_run(chunks, &|c| f(c * size..((c + 1) * size).min(rows)));
    }
}

/// A buffer that parallel chunks write disjoint ranges of.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: every use writes ranges that no other thread touches during the
// parallel step (see `slice`), and the step ends before the buffer's
// borrow does.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn new(buf: &mut [f32]) -> Out {
        Out {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// The elements `range`. Callers guarantee that concurrent calls get
    /// disjoint ranges.
    #[allow(clippy::mut_from_ref)]
    fn slice(&self, range: Range<usize>) -> &mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds (checked); disjointness is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

/// Run token `token` at position `pos` on the calling thread and return
/// the logits over the vocabulary.
pub fn forward<'s>(
    model: &Checkpoint,
    s: &'s mut RunState,
    token: u32,
    pos: usize,
) -> Result<&'s mut [f32], ForwardError> {
    forward_with(&Compute::single(), model, s, token, pos)
}

/// [`forward`] with the given kernels and threads.
pub fn forward_with<'s>(
    compute: &Compute,
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
    let simd = compute.simd;
    let dim = p.dim;
    let hidden = p.hidden_dim;
    let head_size = p.head_size();
    let kv_dim = p.kv_dim();
    let kv_mul = p.n_heads / p.n_kv_heads;
    let cap = s.capacity;

    let t = token as usize;
    s.x.copy_from_slice(&w.token_embedding[t * dim..(t + 1) * dim]);
    rope_table(&mut s.rope, pos);

    for l in 0..p.n_layers {
        rmsnorm(&mut s.xb, &s.x, &w.rms_att[l * dim..(l + 1) * dim]);

        // q, k and v as one step over dim + 2 * kv_dim rows.
        let cache_at = l * cap * kv_dim + pos * kv_dim;
        {
            let q = Out::new(&mut s.q);
            let k = Out::new(&mut s.key_cache[cache_at..cache_at + kv_dim]);
            let v = Out::new(&mut s.value_cache[cache_at..cache_at + kv_dim]);
            let wq = &w.wq[l * dim * dim..(l + 1) * dim * dim];
            let wk = &w.wk[l * dim * kv_dim..(l + 1) * dim * kv_dim];
            let wv = &w.wv[l * dim * kv_dim..(l + 1) * dim * kv_dim];
            let xb = &s.xb;
            let parts = [(q, wq, 0), (k, wk, dim), (v, wv, dim + kv_dim)];
            compute.rows(dim + 2 * kv_dim, dim, |range| {
                for &(out, wm, first) in &parts {
                    let lo = range.start.max(first) - first;
                    let hi = range.end.min(first + out.len).saturating_sub(first);
                    if lo < hi {
                        simd.matmul(out.slice(lo..hi), xb, &wm[lo * dim..hi * dim]);
                    }
                }
            });
        }
        rope(
            &mut s.q,
            &mut s.key_cache[cache_at..cache_at + kv_dim],
            &s.rope,
        );

        // Attention, one head per chunk.
        {
            let layer_keys = &s.key_cache[l * cap * kv_dim..(l + 1) * cap * kv_dim];
            let layer_values = &s.value_cache[l * cap * kv_dim..(l + 1) * cap * kv_dim];
            let scale = 1.0 / (head_size as f32).sqrt();
            let att_all = Out::new(&mut s.att);
            let xb = Out::new(&mut s.xb);
            let q_all = &s.q;
            compute.rows(p.n_heads, 2 * (pos + 1) * head_size, |heads| {
                for h in heads {
                    let q = &q_all[h * head_size..(h + 1) * head_size];
                    let att = att_all.slice(h * cap..h * cap + pos + 1);
                    let kv_off = (h / kv_mul) * head_size;
                    simd.scores(att, q, &layer_keys[kv_off..], kv_dim, scale);
                    softmax(att);
                    let out = xb.slice(h * head_size..(h + 1) * head_size);
                    simd.mix(out, att, &layer_values[kv_off..], kv_dim);
                }
            });
        }

        let wo = &w.wo[l * dim * dim..(l + 1) * dim * dim];
        par_matmul(compute, &mut s.xb2, &s.xb, wo);
        for (x, d) in s.x.iter_mut().zip(&s.xb2) {
            *x += d;
        }

        rmsnorm(&mut s.xb, &s.x, &w.rms_ffn[l * dim..(l + 1) * dim]);
        {
            let w1 = &w.w1[l * dim * hidden..(l + 1) * dim * hidden];
            let w3 = &w.w3[l * dim * hidden..(l + 1) * dim * hidden];
            let hb = Out::new(&mut s.hb);
            let hb2 = Out::new(&mut s.hb2);
            let xb = &s.xb;
            compute.rows(hidden, 2 * dim, |r| {
                let (gate, up) = (hb.slice(r.clone()), hb2.slice(r.clone()));
                simd.matmul(gate, xb, &w1[r.start * dim..r.end * dim]);
                simd.matmul(up, xb, &w3[r.start * dim..r.end * dim]);
                for (a, &b) in gate.iter_mut().zip(up.iter()) {
                    let silu = *a / (1.0 + (-*a).exp());
                    *a = silu * b;
                }
            });
        }
        let w2 = &w.w2[l * dim * hidden..(l + 1) * dim * hidden];
        par_matmul(compute, &mut s.xb, &s.hb, w2);
        for (x, d) in s.x.iter_mut().zip(&s.xb) {
            *x += d;
        }
    }

    rmsnorm(&mut s.xb, &s.x, &w.rms_final);
    par_matmul(compute, &mut s.logits, &s.xb, w.classifier());
    Ok(&mut s.logits)
}

/// `out = w x`, its rows split over `compute`'s threads when large enough.
fn par_matmul(compute: &Compute, out: &mut [f32], x: &[f32], w: &[f32]) {
    let n = x.len();
    let simd = compute.simd;
    let o = Out::new(out);
    compute.rows(o.len, n, |r| {
        simd.matmul(o.slice(r.clone()), x, &w[r.start * n..r.end * n]);
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

/// `out[i] = dot(w[i], x)` for a row-major `w` of `out.len()` rows, with
/// this CPU's best kernels on the calling thread.
pub fn matmul(out: &mut [f32], x: &[f32], w: &[f32]) {
    Simd::detect().matmul(out, x, w);
}

/// `(cos, sin)` of `pos * 10000^(-i/head_size)` for each even `i` of a head
/// (the same for every head, so computed once per position).
fn rope_table(table: &mut [f32], pos: usize) {
    let head_size = table.len();
    for i in (0..head_size).step_by(2) {
        let freq = 1.0 / 10000f32.powf(i as f32 / head_size as f32);
        let (sin, cos) = (pos as f32 * freq).sin_cos();
        table[i] = cos;
        table[i + 1] = sin;
    }
}

/// Rotate each (even, odd) pair of q (all heads) and k (kv heads) by the
/// angle of its index inside its head.
fn rope(q: &mut [f32], k: &mut [f32], table: &[f32]) {
    let head_size = table.len();
    let rotate = |v: &mut [f32]| {
        for head in v.chunks_exact_mut(head_size) {
            for (pair, cs) in head.chunks_exact_mut(2).zip(table.chunks_exact(2)) {
                let (v0, v1) = (pair[0], pair[1]);
                pair[0] = v0 * cs[0] - v1 * cs[1];
                pair[1] = v0 * cs[1] + v1 * cs[0];
            }
        }
    };
    rotate(q);
    rotate(k);
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
    fn threads_give_bit_identical_logits() {
        use crate::synth::{make_model, make_tokenizer, SynthSpec};
        let t = make_tokenizer();
        let model = make_model(
            &SynthSpec {
                dim: 96,
                hidden_dim: 256,
                n_heads: 6,
                n_kv_heads: 2,
                seq_len: 40,
                vocab_size: 3000,
                ..SynthSpec::default()
            },
            &t,
        )
        .unwrap();
        let run = |compute: &Compute| {
            let mut s = RunState::new(model.config(), 40).unwrap();
            let mut all = Vec::new();
            for pos in 0..40 {
                all.extend_from_slice(
                    forward_with(compute, &model, &mut s, (pos * 7 + 1) as u32, pos).unwrap(),
                );
            }
            all
        };
        let one = run(&Compute::single());
        for threads in [2, 3] {
            let many = Compute::with_threads(threads).unwrap();
            assert_eq!(many.threads(), threads);
            assert!(
                one.iter()
                    .zip(run(&many))
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads"
            );
        }
    }
}
