//! The forward pass against an independent, deliberately naive reference.
//!
//! The reference here shares no code with the library: it writes the
//! checkpoint bytes itself in run.c's order, keeps weights as nested
//! `Vec<Vec<f64>>` matrices, and recomputes every position's keys and values
//! from scratch for each query (no KV cache), in f64. Agreement to ~1e-4
//! checks the file layout, RoPE, grouped-query attention, SwiGLU, RMSNorm,
//! the classifier choice and the cache bookkeeping at once.
//!
//! Tolerance: |got - reference| <= 1e-4 * (1 + |reference|) per logit, for
//! every kernel (portable, AVX2+FMA) and thread count: vectorized and
//! fused summation rounds differently from a sequential f32 sum, but on
//! these sizes by far less than that.

use lagic_enclave::generator::GenerationRequest;
use lagic_enclave::llama2::checkpoint::Checkpoint;
use lagic_enclave::llama2::kernels::Simd;
use lagic_enclave::llama2::sampler::SamplingParams;
use lagic_enclave::llama2::tokenizer::Tokenizer;
use lagic_enclave::llama2::transformer::{forward, forward_with, Compute, RunState};
use lagic_enclave::Llama2Generator;

type Mat = Vec<Vec<f64>>;

struct Shape {
    dim: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    seq_len: usize,
    shared: bool,
}

struct Layer {
    rms_att: Vec<f64>,
    wq: Mat,
    wk: Mat,
    wv: Mat,
    wo: Mat,
    rms_ffn: Vec<f64>,
    w1: Mat,
    w2: Mat,
    w3: Mat,
}

struct RefModel {
    s: Shape,
    emb: Mat,
    layers: Vec<Layer>,
    rms_final: Vec<f64>,
    cls: Mat,
}

/// Park-Miller style generator in [-0.5, 0.5), f32-representable values.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v = ((self.0 >> 40) as f64) / (1u64 << 24) as f64 - 0.5;
        v as f32 as f64
    }
    fn mat(&mut self, rows: usize, cols: usize, scale: f64) -> Mat {
        (0..rows)
            .map(|_| {
                (0..cols)
                    .map(|_| (self.next() * scale) as f32 as f64)
                    .collect()
            })
            .collect()
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| (1.0 + self.next() * 0.5) as f32 as f64)
            .collect()
    }
}

fn build(s: Shape, seed: u64) -> RefModel {
    let mut r = Lcg(seed);
    let kv = s.dim / s.heads * s.kv_heads;
    let emb = r.mat(s.vocab, s.dim, 2.0);
    let layers = (0..s.layers)
        .map(|_| Layer {
            rms_att: r.vec(s.dim),
            wq: r.mat(s.dim, s.dim, 1.0),
            wk: r.mat(kv, s.dim, 1.0),
            wv: r.mat(kv, s.dim, 1.0),
            wo: r.mat(s.dim, s.dim, 1.0),
            rms_ffn: r.vec(s.dim),
            w1: r.mat(s.hidden, s.dim, 1.0),
            w2: r.mat(s.dim, s.hidden, 1.0),
            w3: r.mat(s.hidden, s.dim, 1.0),
        })
        .collect();
    let rms_final = r.vec(s.dim);
    let cls = if s.shared {
        emb.clone()
    } else {
        r.mat(s.vocab, s.dim, 2.0)
    };
    RefModel {
        s,
        emb,
        layers,
        rms_final,
        cls,
    }
}

/// run.c's file order, written out by hand.
fn checkpoint_bytes(m: &RefModel) -> Vec<u8> {
    let s = &m.s;
    let mut out = Vec::new();
    let vocab = if s.shared {
        s.vocab as i32
    } else {
        -(s.vocab as i32)
    };
    for v in [
        s.dim as i32,
        s.hidden as i32,
        s.layers as i32,
        s.heads as i32,
        s.kv_heads as i32,
        vocab,
        s.seq_len as i32,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut put = |xs: &[f64]| {
        for &x in xs {
            out.extend_from_slice(&(x as f32).to_le_bytes());
        }
    };
    let flat = |m: &Mat| m.concat();
    put(&flat(&m.emb));
    for l in &m.layers {
        put(&l.rms_att);
    }
    for l in &m.layers {
        put(&flat(&l.wq));
    }
    for l in &m.layers {
        put(&flat(&l.wk));
    }
    for l in &m.layers {
        put(&flat(&l.wv));
    }
    for l in &m.layers {
        put(&flat(&l.wo));
    }
    for l in &m.layers {
        put(&l.rms_ffn);
    }
    for l in &m.layers {
        put(&flat(&l.w1));
    }
    for l in &m.layers {
        put(&flat(&l.w2));
    }
    for l in &m.layers {
        put(&flat(&l.w3));
    }
    put(&m.rms_final);
    // Two obsolete RoPE tables, garbage on purpose: the loader must skip them.
    let head = s.dim / s.heads;
    put(&vec![123.0; s.seq_len * head / 2]);
    put(&vec![-7.0; s.seq_len * head / 2]);
    if !s.shared {
        put(&flat(&m.cls));
    }
    out
}

fn mv(w: &Mat, x: &[f64]) -> Vec<f64> {
    w.iter()
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn norm(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let k = 1.0 / (ms + 1e-5).sqrt();
    x.iter().zip(w).map(|(v, g)| v * k * g).collect()
}

/// Rotate the pairs of one head-sized slice for position `pos`.
fn rotate(v: &mut [f64], pos: usize) {
    let hs = v.len();
    for j in (0..hs).step_by(2) {
        let theta = pos as f64 / 10000f64.powf(j as f64 / hs as f64);
        let (a, b) = (v[j], v[j + 1]);
        v[j] = a * theta.cos() - b * theta.sin();
        v[j + 1] = a * theta.sin() + b * theta.cos();
    }
}

/// Logits after the last token of `tokens`, recomputing everything.
fn reference_logits(m: &RefModel, tokens: &[usize]) -> Vec<f64> {
    let s = &m.s;
    let hs = s.dim / s.heads;
    let group = s.heads / s.kv_heads;
    let mut h: Vec<Vec<f64>> = tokens.iter().map(|&t| m.emb[t].clone()).collect();
    for layer in &m.layers {
        let xn: Vec<Vec<f64>> = h.iter().map(|x| norm(x, &layer.rms_att)).collect();
        let mut q: Vec<Vec<f64>> = xn.iter().map(|x| mv(&layer.wq, x)).collect();
        let mut k: Vec<Vec<f64>> = xn.iter().map(|x| mv(&layer.wk, x)).collect();
        let v: Vec<Vec<f64>> = xn.iter().map(|x| mv(&layer.wv, x)).collect();
        for (pos, (qi, ki)) in q.iter_mut().zip(k.iter_mut()).enumerate() {
            for head in qi.chunks_mut(hs) {
                rotate(head, pos);
            }
            for head in ki.chunks_mut(hs) {
                rotate(head, pos);
            }
        }
        for i in 0..h.len() {
            let mut out = vec![0.0; s.dim];
            for head in 0..s.heads {
                let g = head / group;
                let qh = &q[i][head * hs..(head + 1) * hs];
                let scores: Vec<f64> = (0..=i)
                    .map(|t| {
                        let kh = &k[t][g * hs..(g + 1) * hs];
                        qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f64>() / (hs as f64).sqrt()
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for (t, et) in e.iter().enumerate() {
                    for d in 0..hs {
                        out[head * hs + d] += et / z * v[t][g * hs + d];
                    }
                }
            }
            let o = mv(&layer.wo, &out);
            for d in 0..s.dim {
                h[i][d] += o[d];
            }
            let x2 = norm(&h[i], &layer.rms_ffn);
            let a = mv(&layer.w1, &x2);
            let b = mv(&layer.w3, &x2);
            let gated: Vec<f64> = a
                .iter()
                .zip(&b)
                .map(|(a, b)| a / (1.0 + (-a).exp()) * b)
                .collect();
            let f = mv(&layer.w2, &gated);
            for d in 0..s.dim {
                h[i][d] += f[d];
            }
        }
    }
    mv(&m.cls, &norm(h.last().unwrap(), &m.rms_final))
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * (1.0 + w.abs());
        assert!(
            (*g as f64 - w).abs() <= tol,
            "{what}: logit {i}: got {g}, reference {w}"
        );
    }
}

fn check(shape: Shape, seed: u64, tokens: &[usize]) {
    let m = build(shape, seed);
    let ckpt = Checkpoint::from_bytes(&checkpoint_bytes(&m)).expect("checkpoint loads");
    assert_eq!(ckpt.config().shared_classifier, m.s.shared);
    let mut state = RunState::new(ckpt.config(), m.s.seq_len).unwrap();
    for pos in 0..tokens.len() {
        let logits = forward(&ckpt, &mut state, tokens[pos] as u32, pos).unwrap();
        let want = reference_logits(&m, &tokens[..=pos]);
        assert_close(logits, &want, &format!("pos {pos}"));
    }
}

#[test]
fn one_layer_dim8_gqa_unshared_matches_reference() {
    let shape = Shape {
        dim: 8,
        hidden: 16,
        layers: 1,
        heads: 2,
        kv_heads: 1,
        vocab: 16,
        seq_len: 8,
        shared: false,
    };
    check(shape, 11, &[1, 5, 9, 3, 3, 15, 0, 7]);
}

#[test]
fn two_layers_mha_shared_matches_reference() {
    let shape = Shape {
        dim: 12,
        hidden: 20,
        layers: 2,
        heads: 3,
        kv_heads: 3,
        vocab: 10,
        seq_len: 6,
        shared: true,
    };
    check(shape, 5, &[1, 2, 3, 9, 8, 1]);
}

#[test]
fn four_heads_two_kv_heads_three_layers_matches_reference() {
    let shape = Shape {
        dim: 16,
        hidden: 24,
        layers: 3,
        heads: 4,
        kv_heads: 2,
        vocab: 12,
        seq_len: 5,
        shared: false,
    };
    check(shape, 99, &[1, 11, 4, 4, 2]);
}

/// Zero layer weights make every block add nothing, so the logits are the
/// classifier applied to the normalised embedding, computable by hand:
/// embedding of token 2 is `[2, 0, ..., 0]`, mean square 4/8, so the
/// normalised vector is `[2/sqrt(0.5 + 1e-5), 0, ...]`, and classifier row r
/// is `[r, 0, ...]`: logit r = 2r / sqrt(0.50001) = 2.8283988 r.
#[test]
fn zero_blocks_give_hand_computed_logits() {
    let (dim, hidden, vocab, seq) = (8usize, 8usize, 6usize, 4usize);
    let mut b = Vec::new();
    for v in [dim, hidden, 1, 2, 2, vocab, seq] {
        b.extend_from_slice(&(v as i32).to_le_bytes());
    }
    // Shared classifier: embedding row t = [t, 0, ..., 0].
    let mut f = Vec::new();
    for t in 0..vocab {
        f.push(t as f32);
        f.extend(std::iter::repeat_n(0.0, dim - 1));
    }
    f.extend(std::iter::repeat_n(1.0, dim)); // rms_att
    f.extend(std::iter::repeat_n(0.0, 4 * dim * dim)); // wq wk wv wo
    f.extend(std::iter::repeat_n(1.0, dim)); // rms_ffn
    f.extend(std::iter::repeat_n(0.0, 3 * dim * hidden)); // w1 w2 w3
    f.extend(std::iter::repeat_n(1.0, dim)); // rms_final
    f.extend(std::iter::repeat_n(0.0, seq * (dim / 2))); // rope tables (head 4: 2 + 2 per pos)
    for x in f {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let ckpt = Checkpoint::from_bytes(&b).unwrap();
    let mut state = RunState::new(ckpt.config(), seq).unwrap();
    for pos in 0..seq {
        let logits = forward(&ckpt, &mut state, 2, pos).unwrap();
        for (r, l) in logits.iter().enumerate() {
            let want = 2.828_398_8 * r as f32;
            assert!(
                (l - want).abs() < 1e-4,
                "pos {pos} logit {r}: {l} vs {want}"
            );
        }
    }
}

/// Greedy generation through the library equals greedy decoding with the
/// reference: prompt tokens are forced, then each argmax is fed back.
#[test]
fn greedy_generation_matches_reference_decoding() {
    let shape = Shape {
        dim: 8,
        hidden: 16,
        layers: 2,
        heads: 2,
        kv_heads: 1,
        vocab: 16,
        seq_len: 12,
        shared: false,
    };
    let m = build(shape, 3);
    let ckpt = Checkpoint::from_bytes(&checkpoint_bytes(&m)).unwrap();
    let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    pieces.push(b" ".to_vec());
    pieces.extend((b'a'..=b'l').map(|c| vec![c]));
    let tokenizer = Tokenizer::new(pieces, vec![0.0; 16], 5).unwrap();
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 0.9,
        seed: 1,
    };
    let g = Llama2Generator::new(ckpt, tokenizer.clone(), params).unwrap();
    let (tokens, stats) = g
        .generate_tokens(&GenerationRequest::new("abc", 6))
        .unwrap();

    let mut want: Vec<usize> = tokenizer
        .encode("abc", true, false)
        .iter()
        .map(|&t| t as usize)
        .collect();
    let prompt_len = want.len();
    while want.len() < prompt_len + 6 && want.len() <= m.s.seq_len {
        let logits = reference_logits(&m, &want);
        let next =
            (0..logits.len()).fold(0, |best, i| if logits[i] > logits[best] { i } else { best });
        if next == 1 {
            break;
        }
        want.push(next);
    }
    let got: Vec<usize> = tokens.iter().map(|&t| t as usize).collect();
    assert_eq!(got, want);
    assert_eq!(stats.prompt_tokens, prompt_len);
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

/// Several shapes (GQA and MHA, shared and unshared classifiers, widths
/// with and without SIMD remainders) on every kernel and on 1-3 threads
/// with every step split: logits within the tolerance of the reference at
/// every position, greedy tokens equal to the reference's greedy decoding,
/// and bit-identical logits across thread counts.
#[test]
fn shapes_kernels_and_threads_agree_with_reference_and_greedy() {
    let shapes = [
        (48, 72, 2, 6, 2, 300, 10, false),
        (40, 100, 1, 4, 1, 50, 9, true),
        (64, 176, 2, 4, 4, 97, 9, false),
        (24, 40, 3, 3, 1, 40, 8, true),
    ];
    let mut kernels = vec![Simd::Portable];
    if Simd::detect() != Simd::Portable {
        kernels.push(Simd::detect());
    }
    for (seed, &(dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared)) in
        shapes.iter().enumerate()
    {
        let m = build(
            Shape {
                dim,
                hidden,
                layers,
                heads,
                kv_heads,
                vocab,
                seq_len,
                shared,
            },
            seed as u64 + 21,
        );
        let ckpt = Checkpoint::from_bytes(&checkpoint_bytes(&m)).unwrap();
        // Reference greedy decoding from BOS.
        let mut want = vec![1usize];
        let mut want_logits = Vec::new();
        while want.len() < seq_len {
            let logits = reference_logits(&m, &want);
            want.push(argmax(&logits));
            want_logits.push(logits);
        }
        for &simd in &kernels {
            let mut first: Option<Vec<f32>> = None;
            for threads in [1, 2, 3] {
                let compute = Compute::new(simd, threads).unwrap().split_above(0);
                let mut state = RunState::new(ckpt.config(), seq_len).unwrap();
                let mut tokens = vec![1usize];
                let mut all = Vec::new();
                for pos in 0..seq_len - 1 {
                    let what = format!("shape {seed} {simd:?} {threads} threads pos {pos}");
                    let logits =
                        forward_with(&compute, &ckpt, &mut state, tokens[pos] as u32, pos).unwrap();
                    assert_close(logits, &want_logits[pos], &what);
                    let next =
                        (0..logits.len())
                            .fold(0, |best, i| if logits[i] > logits[best] { i } else { best });
                    tokens.push(next);
                    all.extend_from_slice(logits);
                }
                assert_eq!(tokens, want, "shape {seed} {simd:?} {threads} threads");
                match &first {
                    None => first = Some(all),
                    Some(f) => assert!(
                        f.iter().zip(&all).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "shape {seed} {simd:?}: {threads} threads changed the logits' bits"
                    ),
                }
            }
        }
    }
}
