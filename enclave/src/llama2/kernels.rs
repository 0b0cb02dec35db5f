//! The arithmetic inner loops of the forward pass: matrix-vector products,
//! dot products and `y += a * x`, in two versions chosen once at run time:
//! AVX2 with fused multiply-add on x86-64 CPUs that have them, and a
//! portable version whose independent accumulators let the compiler emit
//! whatever SIMD the target baseline has.
//!
//! Invariant: a row's result depends only on the row, `x` and the chosen
//! [`Simd`]; never on which other rows are computed with it, how rows are
//! grouped or which thread runs them. So splitting a matrix product over
//! threads gives bit-identical results to running it on one.
//!
//! Summation order differs from a sequential sum (lanes, then a fixed
//! reduction tree), and fused multiply-add rounds once instead of twice, so
//! results differ from a naive loop in the last bits; the forward pass is
//! tested against an f64 reference with a tolerance.

/// Which implementation of the kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// Plain Rust, vectorized by the compiler for the target's baseline.
    Portable,
    /// x86-64 AVX2 + FMA intrinsics.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Simd {
    /// The best implementation this CPU supports.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Simd::Avx2Fma;
            }
        }
        Simd::Portable
    }

    /// Name for reports (`GET /health`, benchmarks).
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2Fma => "avx2+fma",
        }
    }

    /// `out[i] = dot(w[i], x)` for a row-major `w` of `out.len()` rows of
    /// `x.len()` columns. Panics if `w` is shorter than that.
    pub fn matmul(self, out: &mut [f32], x: &[f32], w: &[f32]) {
        let n = x.len();
        assert!(w.len() >= out.len() * n, "matrix smaller than out x x");
        match self {
            Simd::Portable => {
                for (o, row) in out.iter_mut().zip(w.chunks_exact(n.max(1))) {
                    *o = portable::dot(row, x);
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2Fma is only constructed after detecting both features.
            Simd::Avx2Fma => unsafe { avx2::matmul(out, x, w) },
        }
    }

    /// Dot product of two equally long slices.
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        match self {
            Simd::Portable => portable::dot(a, b),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `matmul`.
            Simd::Avx2Fma => unsafe { avx2::dot(a, b) },
        }
    }

    /// Attention scores: `att[t] = dot(q, keys[t * stride..][..q.len()]) * scale`.
    pub fn scores(self, att: &mut [f32], q: &[f32], keys: &[f32], stride: usize, scale: f32) {
        let n = q.len();
        if let Some(last) = att.len().checked_sub(1) {
            assert!(keys.len() >= last * stride + n, "keys too short");
        }
        match self {
            Simd::Portable => {
                for (t, a) in att.iter_mut().enumerate() {
                    *a = portable::dot(q, &keys[t * stride..t * stride + n]) * scale;
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `matmul`; bounds checked above.
            Simd::Avx2Fma => unsafe { avx2::scores(att, q, keys, stride, scale) },
        }
    }

    /// Attention output: `out = sum_t weights[t] * values[t * stride..][..out.len()]`,
    /// accumulated in `t` order from zero, exactly as repeated [`Simd::axpy`].
    pub fn mix(self, out: &mut [f32], weights: &[f32], values: &[f32], stride: usize) {
        let n = out.len();
        if let Some(last) = weights.len().checked_sub(1) {
            assert!(values.len() >= last * stride + n, "values too short");
        }
        out.fill(0.0);
        match self {
            Simd::Portable => {
                for (t, &a) in weights.iter().enumerate() {
                    self.axpy(out, a, &values[t * stride..t * stride + n]);
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `matmul`; bounds checked above.
            Simd::Avx2Fma => unsafe { avx2::mix(out, weights, values, stride) },
        }
    }

    /// `y[i] += a * x[i]`.
    pub fn axpy(self, y: &mut [f32], a: f32, x: &[f32]) {
        assert_eq!(y.len(), x.len());
        match self {
            Simd::Portable => {
                for (yi, &xi) in y.iter_mut().zip(x) {
                    *yi += a * xi;
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `matmul`.
            Simd::Avx2Fma => unsafe { avx2::axpy(y, a, x) },
        }
    }
}

mod portable {
    /// Eight independent accumulators, so that the loop vectorizes.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let ca = a.chunks_exact(8);
        let cb = b.chunks_exact(8);
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
        let mut sum =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (x, y) in ra.iter().zip(rb) {
            sum += x * y;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Sum of the eight lanes, in a fixed order.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let one = _mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1));
        _mm_cvtss_f32(one)
    }

    /// One row: two accumulators over 16-column steps, one 8-column step if
    /// 8 or more columns remain, then the last columns in order. Every path
    /// below computes each row exactly like this.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_dot(row: *const f32, x: *const f32, n: usize) -> f32 {
        unsafe {
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            let mut j = 0;
            while j + 16 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(j)), _mm256_loadu_ps(x.add(j)), a0);
                a1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(row.add(j + 8)),
                    _mm256_loadu_ps(x.add(j + 8)),
                    a1,
                );
                j += 16;
            }
            if j + 8 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(j)), _mm256_loadu_ps(x.add(j)), a0);
                j += 8;
            }
            let mut sum = hsum(_mm256_add_ps(a0, a1));
            while j < n {
                sum += *row.add(j) * *x.add(j);
                j += 1;
            }
            sum
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        unsafe { row_dot(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Rows four at a time, so each load of `x` serves four rows (the loop
    /// is bound by reading weights; fewer loads of `x` leave more bandwidth
    /// for them). Per row, the same operations in the same order as `row_dot`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn matmul(out: &mut [f32], x: &[f32], w: &[f32]) {
        let n = x.len();
        let xp = x.as_ptr();
        let rows = out.len();
        let mut r = 0;
        unsafe {
            while r + 4 <= rows {
                let w0 = w.as_ptr().add(r * n);
                let (w1, w2, w3) = (w0.add(n), w0.add(2 * n), w0.add(3 * n));
                let mut acc = [_mm256_setzero_ps(); 8];
                let mut j = 0;
                while j + 16 <= n {
                    let xa = _mm256_loadu_ps(xp.add(j));
                    let xb = _mm256_loadu_ps(xp.add(j + 8));
                    for (k, wr) in [w0, w1, w2, w3].into_iter().enumerate() {
                        acc[2 * k] = _mm256_fmadd_ps(_mm256_loadu_ps(wr.add(j)), xa, acc[2 * k]);
                        acc[2 * k + 1] =
                            _mm256_fmadd_ps(_mm256_loadu_ps(wr.add(j + 8)), xb, acc[2 * k + 1]);
                        // The same columns of the next group's rows: a second
                        // set of streams in flight, which one core needs to
                        // approach memory bandwidth (measured: ~1.3-2x on a
                        // 98 MB model). Prefetching past the end is harmless
                        // (no fault), hence wrapping_add.
                        _mm_prefetch::<_MM_HINT_T0>(wr.wrapping_add(4 * n + j).cast::<i8>());
                    }
                    j += 16;
                }
                if j + 8 <= n {
                    let xa = _mm256_loadu_ps(xp.add(j));
                    for (k, wr) in [w0, w1, w2, w3].into_iter().enumerate() {
                        acc[2 * k] = _mm256_fmadd_ps(_mm256_loadu_ps(wr.add(j)), xa, acc[2 * k]);
                    }
                    j += 8;
                }
                for (k, wr) in [w0, w1, w2, w3].into_iter().enumerate() {
                    let mut sum = hsum(_mm256_add_ps(acc[2 * k], acc[2 * k + 1]));
                    for t in j..n {
                        sum += *wr.add(t) * *xp.add(t);
                    }
                    out[r + k] = sum;
                }
                r += 4;
            }
            while r < rows {
                out[r] = row_dot(w.as_ptr().add(r * n), xp, n);
                r += 1;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(att: &mut [f32], q: &[f32], keys: &[f32], stride: usize, scale: f32) {
        let n = q.len();
        for (t, a) in att.iter_mut().enumerate() {
            // SAFETY: the caller checked keys covers t * stride + n.
            *a = unsafe { row_dot(keys.as_ptr().add(t * stride), q.as_ptr(), n) } * scale;
        }
    }

    /// Blocks of 32 outputs held in registers across all positions, then
    /// blocks of 8, then the tail; per element the same fused steps in the
    /// same order as `axpy` applied position by position.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn mix(out: &mut [f32], weights: &[f32], values: &[f32], stride: usize) {
        let n = out.len();
        let vp = values.as_ptr();
        let mut b = 0;
        unsafe {
            while b + 32 <= n {
                let mut acc = [_mm256_setzero_ps(); 4];
                for (t, &a) in weights.iter().enumerate() {
                    let av = _mm256_set1_ps(a);
                    let row = vp.add(t * stride + b);
                    for (k, slot) in acc.iter_mut().enumerate() {
                        *slot = _mm256_fmadd_ps(av, _mm256_loadu_ps(row.add(8 * k)), *slot);
                    }
                }
                for (k, slot) in acc.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(b + 8 * k), *slot);
                }
                b += 32;
            }
            while b + 8 <= n {
                let mut acc = _mm256_setzero_ps();
                for (t, &a) in weights.iter().enumerate() {
                    acc = _mm256_fmadd_ps(
                        _mm256_set1_ps(a),
                        _mm256_loadu_ps(vp.add(t * stride + b)),
                        acc,
                    );
                }
                _mm256_storeu_ps(out.as_mut_ptr().add(b), acc);
                b += 8;
            }
            for (i, o) in out.iter_mut().enumerate().skip(b) {
                let mut acc = 0.0f32;
                for (t, &a) in weights.iter().enumerate() {
                    acc += a * *vp.add(t * stride + i);
                }
                *o = acc;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        let n = y.len();
        let av = _mm256_set1_ps(a);
        let mut j = 0;
        unsafe {
            while j + 8 <= n {
                let yp = y.as_mut_ptr().add(j);
                _mm256_storeu_ps(
                    yp,
                    _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(j)), _mm256_loadu_ps(yp)),
                );
                j += 8;
            }
        }
        for t in j..n {
            y[t] += a * x[t];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Simd> {
        let mut v = vec![Simd::Portable];
        if Simd::detect() != Simd::Portable {
            v.push(Simd::detect());
        }
        v
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn matmul_rows_match_dot_and_f64_for_every_width() {
        for simd in all() {
            for n in [1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 48, 64, 288, 300] {
                for rows in [1, 3, 4, 5, 9] {
                    let w = data(rows * n, 7);
                    let x = data(n, 11);
                    let mut out = vec![0.0; rows];
                    simd.matmul(&mut out, &x, &w);
                    for r in 0..rows {
                        let row = &w[r * n..(r + 1) * n];
                        // Grouping never changes a row's bits.
                        assert_eq!(
                            out[r].to_bits(),
                            simd.dot(row, &x).to_bits(),
                            "{simd:?} n={n} r={r}"
                        );
                        let exact: f64 =
                            row.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
                        assert!(
                            (out[r] as f64 - exact).abs() < 1e-4 * n as f64,
                            "{simd:?} {n}"
                        );
                    }
                    // Any sub-range of rows gives the same bits as the whole.
                    if rows > 1 {
                        let mut tail = vec![0.0; rows - 1];
                        simd.matmul(&mut tail, &x, &w[n..]);
                        assert_eq!(&out[1..], &tail[..]);
                    }
                }
            }
        }
    }

    #[test]
    fn scores_and_mix_equal_dot_and_axpy_per_position() {
        for simd in all() {
            for n in [2, 8, 10, 16, 40, 48, 64, 70] {
                let stride = n + 6;
                let positions = 9;
                let keys = data(positions * stride, 13);
                let q = data(n, 17);
                let mut att = vec![0.0; positions];
                simd.scores(&mut att, &q, &keys, stride, 0.25);
                for (t, a) in att.iter().enumerate() {
                    let want = simd.dot(&q, &keys[t * stride..t * stride + n]) * 0.25;
                    assert_eq!(a.to_bits(), want.to_bits(), "{simd:?} n={n} t={t}");
                }
                let mut out = vec![9.0; n];
                simd.mix(&mut out, &att, &keys, stride);
                let mut want = vec![0.0; n];
                for (t, &a) in att.iter().enumerate() {
                    simd.axpy(&mut want, a, &keys[t * stride..t * stride + n]);
                }
                assert_eq!(out, want, "{simd:?} n={n}");
            }
        }
    }

    #[test]
    fn axpy_adds_scaled_vector() {
        for simd in all() {
            for n in [1, 7, 8, 13, 48] {
                let x = data(n, 3);
                let mut y = data(n, 5);
                let want: Vec<f32> = y.iter().zip(&x).map(|(y, x)| y + 0.5 * x).collect();
                simd.axpy(&mut y, 0.5, &x);
                for (a, b) in y.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-6);
                }
            }
        }
    }
}
