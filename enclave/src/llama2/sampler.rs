//! Next-token sampling as run.c does it.
//!
//! Temperature 0 is greedy argmax. Otherwise logits are divided by the
//! temperature and softmaxed; with `0 < top_p < 1` the draw is restricted to
//! the smallest set of most probable tokens whose mass exceeds `top_p`
//! (nucleus sampling, after discarding tokens below `(1 - top_p)/(n - 1)`,
//! which cannot be in the nucleus), else it is drawn from the whole
//! distribution. Randomness is run.c's xorshift64* generator: the same
//! seed gives the same draws, hence the same text.

use super::transformer::softmax;

/// Temperature, nucleus and seed for a [`Sampler`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 for greedy decoding; run.c's default is 1.0.
    pub temperature: f32,
    /// Nucleus mass in `[0, 1]`; 0 or 1 disables nucleus sampling. run.c: 0.9.
    pub top_p: f32,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 0.9,
            seed: 42,
        }
    }
}

impl SamplingParams {
    /// Reject temperatures and nucleus masses run.c would misbehave on.
    pub fn validate(&self) -> Result<(), String> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "temperature {} must be a finite number >= 0",
                self.temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(format!("top-p {} must be within [0, 1]", self.top_p));
        }
        Ok(())
    }
}

/// Samples token ids from logits; owns its RNG state and scratch space.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng_state: u64,
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler whose RNG starts from `params.seed` (0, which would freeze
    /// xorshift, is replaced by a fixed non-zero constant).
    pub fn new(params: SamplingParams) -> Sampler {
        Sampler {
            params,
            rng_state: if params.seed == 0 {
                0x853C_49E6_748F_EA9B
            } else {
                params.seed
            },
            candidates: Vec::new(),
        }
    }

    /// run.c's `random_u32`: xorshift64*, upper 32 bits.
    pub fn random_u32(&mut self) -> u32 {
        let s = &mut self.rng_state;
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// run.c's `random_f32`: 24 random bits scaled into `[0, 1)`.
    pub fn random_f32(&mut self) -> f32 {
        (self.random_u32() >> 8) as f32 / 16_777_216.0
    }

    /// Pick the next token. `logits` is overwritten (scaled and softmaxed).
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }
        for l in logits.iter_mut() {
            *l /= self.params.temperature;
        }
        softmax(logits);
        let coin = self.random_f32();
        let top_p = self.params.top_p;
        if top_p <= 0.0 || top_p >= 1.0 {
            sample_mult(logits, coin)
        } else {
            sample_top_p(logits, top_p, &mut self.candidates, coin)
        }
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Draw from `probs` (summing to ~1) with `coin` in `[0, 1)`; rounding
/// shortfall falls on the last token, as in run.c.
fn sample_mult(probs: &[f32], coin: f32) -> u32 {
    let mut cdf = 0.0;
    for (i, &p) in probs.iter().enumerate() {
        cdf += p;
        if coin < cdf {
            return i as u32;
        }
    }
    probs.len().saturating_sub(1) as u32
}

/// Nucleus draw: sort the plausible tokens by probability, keep the prefix
/// whose mass first exceeds `top_p`, and draw within it.
fn sample_top_p(probs: &[f32], top_p: f32, candidates: &mut Vec<(f32, u32)>, coin: f32) -> u32 {
    let cutoff = (1.0 - top_p) / (probs.len().max(2) - 1) as f32;
    candidates.clear();
    candidates.extend(
        probs
            .iter()
            .enumerate()
            .filter(|(_, &p)| p >= cutoff)
            .map(|(i, &p)| (p, i as u32)),
    );
    if candidates.is_empty() {
        return argmax(probs);
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut last = candidates.len() - 1;
    let mut mass = 0.0;
    for (i, &(p, _)) in candidates.iter().enumerate() {
        mass += p;
        if mass > top_p {
            last = i;
            break;
        }
    }
    let r = coin * mass;
    let mut cdf = 0.0;
    for &(p, id) in &candidates[..=last] {
        cdf += p;
        if r < cdf {
            return id;
        }
    }
    candidates[last].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_matches_hand_computed_first_draw() {
        // state 1: s ^= s>>12 -> 1; s ^= s<<25 -> 0x2000001; s ^= s>>27 -> 0x2000001.
        let mut s = Sampler::new(SamplingParams {
            seed: 1,
            ..Default::default()
        });
        let expected = (0x2000001u64.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32;
        assert_eq!(s.random_u32(), expected);
        let f = s.random_f32();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn same_seed_same_draws() {
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed,
                temperature: 1.0,
                top_p: 0.9,
            });
            (0..50)
                .map(|i| {
                    let mut logits: Vec<f32> = (0..20)
                        .map(|j| ((i * 7 + j * 3) % 11) as f32 * 0.3)
                        .collect();
                    s.sample(&mut logits)
                })
                .collect::<Vec<u32>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }

    #[test]
    fn greedy_and_nucleus_bounds() {
        let mut s = Sampler::new(SamplingParams {
            temperature: 0.0,
            top_p: 0.9,
            seed: 3,
        });
        assert_eq!(s.sample(&mut [0.1, 5.0, 5.0, 1.0]), 1);
        // One dominant token: the nucleus holds only it.
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            seed: 9,
        });
        for _ in 0..100 {
            assert_eq!(s.sample(&mut [0.0, 10.0, 0.0, 0.0]), 1);
        }
        // Without nucleus every token is reachable.
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            seed: 9,
        });
        let mut seen = [false; 4];
        for _ in 0..400 {
            seen[s.sample(&mut [0.0, 0.0, 0.0, 0.0]) as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn params_validation() {
        assert!(SamplingParams::default().validate().is_ok());
        for (t, p) in [(-1.0, 0.9), (f32::NAN, 0.9), (1.0, 1.5), (1.0, -0.1)] {
            let params = SamplingParams {
                temperature: t,
                top_p: p,
                seed: 1,
            };
            assert!(params.validate().is_err(), "{t} {p}");
        }
    }
}
