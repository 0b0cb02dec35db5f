//! The deterministic generator: echoes the prompt, then appends words drawn
//! by a seeded PRNG from a fixed, clean vocabulary.
//!
//! Invariants the lab's end-to-end tests rely on:
//! - the response begins with the prompt byte for byte;
//! - the continuation is ` word` repeated (each word preceded by one space),
//!   made only of printable ASCII, and never contains the letters `hate` in
//!   any case: no vocabulary word contains them, and since every word is
//!   space-separated no run of letters can straddle two words;
//! - the same (seed, prompt, max_tokens) always yields the same text;
//! - it is fast enough to produce megabytes per request.

use crate::generator::{GenerateError, GenerationRequest, Generator};

/// Words the continuation is drawn from. Checked by a unit test to be
/// lowercase-free of `hate` and printable.
pub const CLEAN_WORDS: &[&str] = &[
    "once", "upon", "a", "time", "there", "was", "little", "girl", "boy", "named", "lily", "tim",
    "she", "he", "liked", "to", "play", "in", "the", "park", "with", "her", "his", "dog", "cat",
    "ball", "sun", "sky", "tree", "big", "red", "blue", "green", "happy", "and", "they", "ran",
    "jumped", "found", "shiny", "stone", "one", "day", "went", "friend", "smiled", "said", "look",
    "bird", "sang", "song", "every", "morning", "garden", "flower", "small", "kind", "warm",
    "bread", "mom", "dad", "home", "river", "boat", "sailed", "far", "away", "came", "back",
    "laughed", "together", "toy", "box", "opened", "saw", "bright", "star", "night", "moon",
    "slept", "bed", "soft", "dream", "wanted", "help", "gave", "hug", "thank", "you", "very",
    "much", "good", "nice", "fun", "all", "learned", "share", "careful", "brave", "strong",
    "apple", "cake", "milk", "cookie", "yellow", "pink", "funny", "quiet", "fast", "slow", "walk",
    "road", "house", "door", "window", "rain", "snow", "cloud", "wind", "hill", "grass", "fish",
    "pond", "frog", "hop", "owl", "fox", "bear", "bunny", "mouse", "cheese", "is", "of", "on",
    "up", "down", "then", "so", "but", "it", "again", "new", "old", "best", "end",
];

/// Echoes the prompt and continues it with seeded pseudo-random clean words.
#[derive(Debug, Clone)]
pub struct EchoGenerator {
    seed: u64,
}

impl EchoGenerator {
    /// A generator whose word choice is a function of `seed` and the prompt.
    pub fn new(seed: u64) -> Self {
        EchoGenerator { seed }
    }

    fn continue_prompt(&self, request: &GenerationRequest<'_>) -> String {
        let seed = request.seed.unwrap_or(self.seed);
        let mut rng = SplitMix64::new(seed ^ fnv1a(request.prompt.as_bytes()));
        // Average word length is ~4.5 bytes plus the space.
        let mut out = String::with_capacity(
            request
                .prompt
                .len()
                .saturating_add(request.max_tokens.saturating_mul(6)),
        );
        out.push_str(request.prompt);
        for i in 0..request.max_tokens {
            // Checking the clock every word would dominate the cost.
            if i % 4096 == 4095 && request.expired() {
                break;
            }
            let word = CLEAN_WORDS[(rng.next() % CLEAN_WORDS.len() as u64) as usize];
            out.push(' ');
            out.push_str(word);
        }
        out
    }
}

impl Generator for EchoGenerator {
    fn generate(&self, prompt: &str, max_tokens: usize) -> Result<String, GenerateError> {
        Ok(self.continue_prompt(&GenerationRequest::new(prompt, max_tokens)))
    }

    fn generate_request(&self, request: &GenerationRequest<'_>) -> Result<String, GenerateError> {
        Ok(self.continue_prompt(request))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "echo", "seed": self.seed, "vocabulary": CLEAN_WORDS.len() })
    }
}

/// SplitMix64: tiny, full-period, good enough to pick words.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// FNV-1a, to make the continuation depend on the prompt.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains_hate(text: &str) -> bool {
        text.to_ascii_lowercase().contains("hate")
    }

    #[test]
    fn vocabulary_is_clean_and_printable() {
        for w in CLEAN_WORDS {
            assert!(!w.is_empty());
            assert!(!contains_hate(w), "{w}");
            assert!(w.bytes().all(|b| b.is_ascii_alphabetic()), "{w}");
        }
        // Every pair of adjacent words, as emitted, stays clean too.
        for a in CLEAN_WORDS {
            for b in CLEAN_WORDS {
                assert!(!contains_hate(&format!(" {a} {b}")));
            }
        }
    }

    #[test]
    fn response_begins_with_prompt_and_has_max_tokens_words() {
        let g = EchoGenerator::new(7);
        let out = g.generate("Once upon a time", 10).unwrap();
        assert!(out.starts_with("Once upon a time"));
        let tail = &out["Once upon a time".len()..];
        assert_eq!(tail.split(' ').skip(1).count(), 10);
        assert!(tail.starts_with(' '));
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = EchoGenerator::new(1).generate("x", 50).unwrap();
        let b = EchoGenerator::new(1).generate("x", 50).unwrap();
        let c = EchoGenerator::new(2).generate("x", 50).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = GenerationRequest::new("x", 50);
        r.seed = Some(2);
        assert_eq!(EchoGenerator::new(1).generate_request(&r).unwrap(), c);
    }

    #[test]
    fn long_continuation_never_contains_hate() {
        let prompt = "I hate bananas";
        let out = EchoGenerator::new(3).generate(prompt, 300_000).unwrap();
        assert!(out.len() > 1_000_000, "{} bytes", out.len());
        let tail = &out[prompt.len()..];
        assert!(!contains_hate(tail));
        assert!(tail.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    }

    #[test]
    fn zero_tokens_is_the_prompt() {
        assert_eq!(EchoGenerator::new(0).generate("abc", 0).unwrap(), "abc");
        assert_eq!(EchoGenerator::new(0).generate("", 0).unwrap(), "");
    }
}
