//! llama2.c tokenizers (`tokenizer.bin`) and run.c-style BPE.
//!
//! File layout, little-endian: `i32 max_token_length`, then for each token
//! `f32 score`, `i32 len`, `len` bytes of piece. The file does not state the
//! vocabulary size; it is the number of records, and must equal the model's
//! `vocab_size`.
//!
//! Conventions shared with run.c: id 0 is `<unk>`, 1 is BOS `<s>`, 2 is EOS
//! `</s>`; pieces of the form `<0xHH>` stand for one raw byte, and the piece
//! for byte `b` is expected at id `b + 3` (byte fallback for characters that
//! have no piece of their own). Encoding prepends a space ("dummy prefix")
//! to non-empty text, maps each UTF-8 character to its piece or its byte
//! pieces, then repeatedly merges the adjacent pair whose concatenation is a
//! piece with the highest score (leftmost on ties). Decoding drops the
//! leading space of the piece that follows BOS.
//!
//! Invariants of a loaded [`Tokenizer`]: scores are finite, no piece is
//! longer than `max_token_length`, and `lookup` maps each distinct non-empty
//! piece to its lowest id.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// Id of `<unk>`.
pub const UNK: u32 = 0;
/// Id of the beginning-of-sequence token `<s>`.
pub const BOS: u32 = 1;
/// Id of the end-of-sequence token `</s>`.
pub const EOS: u32 = 2;

/// Why a tokenizer could not be loaded or used with a model.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file could not be read.
    #[error("cannot read tokenizer {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The 4-byte header is missing or out of range.
    #[error("tokenizer header is invalid: {0}")]
    InvalidHeader(String),
    /// The file ends inside a token record.
    #[error("tokenizer is truncated inside the record of token {token}")]
    Truncated {
        /// Index of the incomplete record.
        token: usize,
    },
    /// A record has a negative or oversized length.
    #[error("tokenizer token {token} has length {len}, outside 0..={max}")]
    BadLength {
        /// Token index.
        token: usize,
        /// Length found.
        len: i64,
        /// Declared `max_token_length`.
        max: u32,
    },
    /// A record's score is NaN or infinite.
    #[error("tokenizer token {token} has a non-finite score")]
    NonFiniteScore {
        /// Token index.
        token: usize,
    },
    /// The tokenizer and the model disagree on the vocabulary size.
    #[error("tokenizer has {tokenizer} tokens but the model's vocab_size is {model}: they do not belong together")]
    VocabMismatch {
        /// Tokens in the tokenizer.
        tokenizer: usize,
        /// `vocab_size` of the model.
        model: usize,
    },
    /// Too few tokens for the special ids.
    #[error("tokenizer has {0} tokens; it needs at least <unk>, <s> and </s>")]
    TooSmall(usize),
}

/// A BPE vocabulary: pieces, merge scores and the reverse lookup.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    pieces: Vec<Vec<u8>>,
    scores: Vec<f32>,
    max_token_length: u32,
    lookup: HashMap<Vec<u8>, u32>,
    /// `Some(b)` when the piece is the byte token `<0xHH>`.
    raw_byte: Vec<Option<u8>>,
}

impl Tokenizer {
    /// Build a tokenizer from pieces and scores (same length).
    pub fn new(
        pieces: Vec<Vec<u8>>,
        scores: Vec<f32>,
        max_token_length: u32,
    ) -> Result<Tokenizer, TokenizerError> {
        if pieces.len() != scores.len() {
            return Err(TokenizerError::InvalidHeader(format!(
                "{} pieces but {} scores",
                pieces.len(),
                scores.len()
            )));
        }
        if pieces.len() < 3 {
            return Err(TokenizerError::TooSmall(pieces.len()));
        }
        for (token, (p, s)) in pieces.iter().zip(&scores).enumerate() {
            if p.len() > max_token_length as usize {
                return Err(TokenizerError::BadLength {
                    token,
                    len: p.len() as i64,
                    max: max_token_length,
                });
            }
            if !s.is_finite() {
                return Err(TokenizerError::NonFiniteScore { token });
            }
        }
        let mut lookup = HashMap::with_capacity(pieces.len());
        for (id, p) in pieces.iter().enumerate() {
            if !p.is_empty() {
                lookup.entry(p.clone()).or_insert(id as u32);
            }
        }
        let raw_byte = pieces.iter().map(|p| parse_byte_piece(p)).collect();
        Ok(Tokenizer {
            pieces,
            scores,
            max_token_length,
            lookup,
            raw_byte,
        })
    }

    /// Load `tokenizer.bin`.
    pub fn load(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Parse a tokenizer file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tokenizer, TokenizerError> {
        let Some(head) = bytes.get(..4) else {
            return Err(TokenizerError::InvalidHeader(format!(
                "{} bytes, too short for max_token_length",
                bytes.len()
            )));
        };
        let max = i32::from_le_bytes(head.try_into().expect("4 bytes"));
        if max <= 0 {
            return Err(TokenizerError::InvalidHeader(format!(
                "max_token_length is {max}, it must be positive"
            )));
        }
        let max = max as u32;
        let mut pieces = Vec::new();
        let mut scores = Vec::new();
        let mut at = 4usize;
        while at < bytes.len() {
            let token = pieces.len();
            let record = bytes
                .get(at..at + 8)
                .ok_or(TokenizerError::Truncated { token })?;
            let score = f32::from_le_bytes(record[..4].try_into().expect("4 bytes"));
            let len = i32::from_le_bytes(record[4..].try_into().expect("4 bytes"));
            if len < 0 || len as u32 > max {
                return Err(TokenizerError::BadLength {
                    token,
                    len: len.into(),
                    max,
                });
            }
            at += 8;
            let piece = bytes
                .get(at..at + len as usize)
                .ok_or(TokenizerError::Truncated { token })?;
            at += len as usize;
            pieces.push(piece.to_vec());
            scores.push(score);
        }
        Self::new(pieces, scores, max)
    }

    /// The file form of this tokenizer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.max_token_length as i32).to_le_bytes());
        for (p, s) in self.pieces.iter().zip(&self.scores) {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&(p.len() as i32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Longest piece, as declared in the file.
    pub fn max_token_length(&self) -> u32 {
        self.max_token_length
    }

    /// The piece of `token` as stored (byte tokens as `<0xHH>`).
    pub fn piece(&self, token: u32) -> &[u8] {
        &self.pieces[token as usize]
    }

    /// The merge score of `token`.
    pub fn score(&self, token: u32) -> f32 {
        self.scores[token as usize]
    }

    /// Id of a piece, if the vocabulary has it.
    pub fn token_of(&self, piece: &[u8]) -> Option<u32> {
        self.lookup.get(piece).copied()
    }

    /// Fail unless this tokenizer has exactly `model_vocab` tokens.
    pub fn check_vocab(&self, model_vocab: usize) -> Result<(), TokenizerError> {
        if self.vocab_size() != model_vocab {
            return Err(TokenizerError::VocabMismatch {
                tokenizer: self.vocab_size(),
                model: model_vocab,
            });
        }
        Ok(())
    }

    /// A lower bound on the number of tokens `text` encodes to (BOS
    /// included): no token covers more than `max_token_length` bytes. Lets
    /// the server refuse huge prompts before running the quadratic merge.
    pub fn min_tokens(&self, text: &str) -> usize {
        1 + text.len().div_ceil(self.max_token_length.max(1) as usize)
    }

    /// Token for byte `b` when a character has no piece of its own.
    fn byte_fallback(&self, b: u8) -> u32 {
        let id = u32::from(b) + 3;
        if (id as usize) < self.pieces.len() {
            id
        } else {
            UNK
        }
    }

    /// Encode `text` the way run.c does (BOS first when `bos`, dummy prefix
    /// space, byte fallback, greedy highest-score merges; EOS last when `eos`).
    pub fn encode(&self, text: &str, bos: bool, eos: bool) -> Vec<u32> {
        let mut tokens: Vec<u32> = Vec::with_capacity(text.len() + 3);
        if !text.is_empty() {
            match self.token_of(b" ") {
                Some(id) => tokens.push(id),
                None => tokens.push(self.byte_fallback(b' ')),
            }
        }
        let mut buf = [0u8; 4];
        for ch in text.chars() {
            let bytes = ch.encode_utf8(&mut buf).as_bytes();
            match self.token_of(bytes) {
                Some(id) => tokens.push(id),
                None => tokens.extend(bytes.iter().map(|&b| self.byte_fallback(b))),
            }
        }
        self.merge(&mut tokens);
        if bos {
            tokens.insert(0, BOS);
        }
        if eos {
            tokens.push(EOS);
        }
        tokens
    }

    /// The merge of the pair starting at `i`, with its score.
    fn pair(&self, tokens: &[u32], i: usize, scratch: &mut Vec<u8>) -> Option<(f32, u32)> {
        scratch.clear();
        scratch.extend_from_slice(self.piece(tokens[i]));
        scratch.extend_from_slice(self.piece(tokens[i + 1]));
        self.token_of(scratch).map(|id| (self.score(id), id))
    }

    /// Greedy BPE: merge the best-scoring adjacent pair until none merges.
    /// Pair candidates are cached and only the two around a merge are
    /// recomputed, so each round costs one linear scan of floats.
    fn merge(&self, tokens: &mut Vec<u32>) {
        if tokens.len() < 2 {
            return;
        }
        let mut scratch = Vec::with_capacity(2 * self.max_token_length as usize);
        let mut pairs: Vec<Option<(f32, u32)>> = (0..tokens.len() - 1)
            .map(|i| self.pair(tokens, i, &mut scratch))
            .collect();
        loop {
            let mut best: Option<(usize, f32, u32)> = None;
            for (i, p) in pairs.iter().enumerate() {
                if let Some((score, id)) = *p {
                    if best.is_none_or(|(_, s, _)| score > s) {
                        best = Some((i, score, id));
                    }
                }
            }
            let Some((i, _, id)) = best else { break };
            tokens[i] = id;
            tokens.remove(i + 1);
            pairs.remove(i);
            if i < pairs.len() {
                pairs[i] = self.pair(tokens, i, &mut scratch);
            }
            if i > 0 {
                pairs[i - 1] = self.pair(tokens, i - 1, &mut scratch);
            }
        }
    }

    /// Append the bytes `token` contributes after `prev` (run.c's `decode`):
    /// byte pieces become their byte, and a leading space right after BOS is
    /// dropped.
    pub fn decode_into(&self, prev: u32, token: u32, out: &mut Vec<u8>) {
        if let Some(b) = self.raw_byte[token as usize] {
            out.push(b);
            return;
        }
        let mut piece = self.piece(token);
        if prev == BOS && piece.first() == Some(&b' ') {
            piece = &piece[1..];
        }
        out.extend_from_slice(piece);
    }

    /// Decode a whole sequence (each token after its predecessor; the first
    /// one is treated as following nothing).
    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = u32::MAX;
        for &t in tokens {
            if t == BOS {
                prev = t;
                continue;
            }
            self.decode_into(prev, t, &mut out);
            prev = t;
        }
        out
    }
}

/// `Some(b)` for a piece that is exactly `<0xHH>`.
fn parse_byte_piece(piece: &[u8]) -> Option<u8> {
    if piece.len() != 6 || !piece.starts_with(b"<0x") || piece[5] != b'>' {
        return None;
    }
    let hex = std::str::from_utf8(&piece[3..5]).ok()?;
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// specials, 256 byte tokens, the printable characters, then a few merges.
    fn small() -> Tokenizer {
        let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
        pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
        pieces.extend((0x20..0x7fu8).map(|b| vec![b]));
        let merges = [
            " t", " th", " the", "he", "the", "in", " in", "ing", "an", " an", " and",
        ];
        pieces.extend(merges.iter().map(|m| m.as_bytes().to_vec()));
        let n = pieces.len();
        let scores = (0..n)
            .map(|i| if i >= 354 { i as f32 } else { 0.0 })
            .collect();
        Tokenizer::new(pieces, scores, 8).unwrap()
    }

    #[test]
    fn encode_merges_and_decodes_back() {
        let t = small();
        let ids = t.encode("the and", true, false);
        assert_eq!(ids[0], BOS);
        let pieces: Vec<&[u8]> = ids[1..].iter().map(|&i| t.piece(i)).collect();
        assert_eq!(pieces, vec![&b" the"[..], b" and"]);
        assert_eq!(t.decode(&ids), b"the and");
    }

    #[test]
    fn byte_fallback_round_trips_any_text() {
        let t = small();
        for text in [
            "héllo wörld ✓",
            "tab\there\nnewline",
            "",
            " leading",
            "\u{1F600}",
        ] {
            let ids = t.encode(text, true, true);
            assert_eq!(*ids.last().unwrap(), EOS);
            let body = &ids[..ids.len() - 1];
            assert_eq!(t.decode(body), text.as_bytes(), "{text:?}");
        }
        // 'é' is two byte tokens: 0xC3 0xA9 -> ids 0xC3+3, 0xA9+3.
        let ids = t.encode("é", false, false);
        assert_eq!(ids, vec![t.token_of(b" ").unwrap(), 0xC3 + 3, 0xA9 + 3]);
    }

    #[test]
    fn file_round_trip_and_corruption() {
        let t = small();
        let bytes = t.to_bytes();
        let back = Tokenizer::from_bytes(&bytes).unwrap();
        assert_eq!(back.vocab_size(), t.vocab_size());
        assert_eq!(back.to_bytes(), bytes);
        // Every cut inside a record is detected (cuts at a record boundary
        // give a shorter, valid tokenizer: the vocab-size check catches those).
        let mut boundaries = vec![4usize];
        for p in &t.pieces {
            boundaries.push(boundaries.last().unwrap() + 8 + p.len());
        }
        for cut in 0..bytes.len() {
            let records = boundaries.iter().position(|&b| b == cut);
            match (Tokenizer::from_bytes(&bytes[..cut]), records) {
                (Ok(short), Some(k)) => {
                    assert_eq!(short.vocab_size(), k);
                    assert!(matches!(
                        short.check_vocab(t.vocab_size()),
                        Err(TokenizerError::VocabMismatch { .. })
                    ));
                }
                (Err(TokenizerError::TooSmall(k)), Some(k2)) => assert_eq!(k, k2),
                (Err(TokenizerError::Truncated { .. }), None) if cut > 4 => {}
                (Err(TokenizerError::InvalidHeader(_)), None) if cut < 4 => {}
                (other, _) => panic!("cut {cut}: {other:?}"),
            }
        }
        let mut neg = bytes.clone();
        neg[8..12].copy_from_slice(&(-1i32).to_le_bytes());
        assert!(matches!(
            Tokenizer::from_bytes(&neg),
            Err(TokenizerError::BadLength { .. })
        ));
        let mut nan = bytes.clone();
        nan[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            Tokenizer::from_bytes(&nan),
            Err(TokenizerError::NonFiniteScore { token: 0 })
        ));
        assert!(matches!(
            Tokenizer::from_bytes(&0i32.to_le_bytes()),
            Err(TokenizerError::InvalidHeader(_))
        ));
    }

    #[test]
    fn leftmost_pair_wins_ties() {
        // "aaa" with only "aa" mergeable: the left pair merges first.
        let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
        pieces.extend([b" ".to_vec(), b"a".to_vec(), b"aa".to_vec()]);
        let t = Tokenizer::new(pieces, vec![0.0; 6], 5).unwrap();
        assert_eq!(t.encode("aaa", false, false), vec![3, 5, 4]);
    }

    #[test]
    fn min_tokens_is_a_lower_bound() {
        let t = small();
        for text in ["the and the and", "xxxxxxxxxxxxxxxxxxxxxxxxx", "a"] {
            assert!(t.min_tokens(text) <= t.encode(text, true, false).len());
        }
    }
}
