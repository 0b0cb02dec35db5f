//! llama2.c checkpoints (`model.bin`, the legacy format `run.c` reads).
//!
//! Layout, all little-endian: seven `i32` (dim, hidden_dim, n_layers,
//! n_heads, n_kv_heads, vocab_size, seq_len), then `f32` tensors in this
//! order: token embedding `[vocab][dim]`, rms_att `[L][dim]`, wq
//! `[L][dim][dim]`, wk and wv `[L][kv_dim][dim]`, wo `[L][dim][dim]`,
//! rms_ffn `[L][dim]`, w1 `[L][hidden][dim]`, w2 `[L][dim][hidden]`, w3
//! `[L][hidden][dim]`, rms_final `[dim]`, two unused RoPE tables of
//! `seq_len * head_size / 2` floats each, and finally the classifier
//! `[vocab][dim]` only when the header's vocab_size is negative (otherwise
//! the classifier is the token embedding). Matrices are row-major with one
//! row per output element, so `out[i] = sum_j w[i][j] * x[j]`.
//!
//! Invariants of a loaded [`Checkpoint`]: the config passed
//! [`Config::validate`], every tensor has exactly the length the config
//! implies, every weight is finite, and the file had no byte more or less
//! than the header describes.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes in the checkpoint header (seven `i32`).
pub const HEADER_BYTES: u64 = 28;

/// First `i32` of llama2.c's newer, versioned export ("ak42"), which run.c
/// does not read and neither do we.
const VERSIONED_MAGIC: i32 = 0x616b_3432;

/// Why a checkpoint could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Fewer bytes than the header needs.
    #[error("checkpoint is {actual} bytes, too short for its {HEADER_BYTES}-byte header")]
    MissingHeader {
        /// Size of the input.
        actual: u64,
    },
    /// The file is llama2.c's versioned export, not the legacy one.
    #[error("checkpoint uses llama2.c's versioned export format (magic \"ak42\"); export it in the legacy format that run.c reads")]
    VersionedExport,
    /// The header describes an impossible model.
    #[error("invalid checkpoint header: {0}")]
    InvalidConfig(String),
    /// The file ends before the weights the header announces.
    #[error("checkpoint is truncated: its header implies {expected} bytes but it has {actual}")]
    Truncated {
        /// Size implied by the header.
        expected: u64,
        /// Size of the input.
        actual: u64,
    },
    /// The file goes on after the weights the header announces.
    #[error("checkpoint has {actual} bytes but its header implies {expected}: corrupted header or not a llama2.c checkpoint")]
    TrailingBytes {
        /// Size implied by the header.
        expected: u64,
        /// Size of the input.
        actual: u64,
    },
    /// A weight is NaN or infinite.
    #[error("checkpoint tensor {tensor} holds a non-finite value at index {index}")]
    NonFinite {
        /// Tensor name, as in run.c.
        tensor: &'static str,
        /// Index inside the tensor.
        index: usize,
    },
}

/// Model hyper-parameters, from the checkpoint header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Width of the residual stream.
    pub dim: usize,
    /// Width of the feed-forward layer.
    pub hidden_dim: usize,
    /// Number of transformer layers.
    pub n_layers: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads (`< n_heads` for grouped-query attention).
    pub n_kv_heads: usize,
    /// Number of tokens.
    pub vocab_size: usize,
    /// Context length: the most positions a sequence may use.
    pub seq_len: usize,
    /// The classifier reuses the token embedding (header vocab_size > 0).
    pub shared_classifier: bool,
}

impl Config {
    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the key/value projections.
    pub fn kv_dim(&self) -> usize {
        self.head_size() * self.n_kv_heads
    }

    /// Decode and validate a raw header.
    pub fn from_header(raw: [i32; 7]) -> Result<Config, CheckpointError> {
        if raw[0] == VERSIONED_MAGIC {
            return Err(CheckpointError::VersionedExport);
        }
        let names = [
            "dim",
            "hidden_dim",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "vocab_size",
            "seq_len",
        ];
        for (i, (&v, name)) in raw.iter().zip(names).enumerate() {
            // vocab_size alone may be negative: its sign says "unshared classifier".
            let bad = if i == 5 { v == 0 } else { v <= 0 };
            if bad {
                return Err(CheckpointError::InvalidConfig(format!(
                    "{name} is {v}, it must be positive"
                )));
            }
        }
        let config = Config {
            dim: raw[0] as usize,
            hidden_dim: raw[1] as usize,
            n_layers: raw[2] as usize,
            n_heads: raw[3] as usize,
            n_kv_heads: raw[4] as usize,
            vocab_size: raw[5].unsigned_abs() as usize,
            seq_len: raw[6] as usize,
            shared_classifier: raw[5] > 0,
        };
        config.validate()?;
        Ok(config)
    }

    /// The header that encodes this config.
    pub fn to_header(&self) -> Result<[i32; 7], CheckpointError> {
        self.validate()?;
        let vocab = self.vocab_size as i32;
        Ok([
            self.dim as i32,
            self.hidden_dim as i32,
            self.n_layers as i32,
            self.n_heads as i32,
            self.n_kv_heads as i32,
            if self.shared_classifier {
                vocab
            } else {
                -vocab
            },
            self.seq_len as i32,
        ])
    }

    /// Check the shape constraints the forward pass relies on.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        let fail = |m: String| Err(CheckpointError::InvalidConfig(m));
        let fields = [
            self.dim,
            self.hidden_dim,
            self.n_layers,
            self.n_heads,
            self.n_kv_heads,
            self.vocab_size,
            self.seq_len,
        ];
        if fields.iter().any(|&v| v == 0 || v > i32::MAX as usize) {
            return fail(format!(
                "every dimension must be in 1..=2^31-1, got {self:?}"
            ));
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return fail(format!(
                "dim {} is not a multiple of n_heads {}",
                self.dim, self.n_heads
            ));
        }
        if self.n_kv_heads > self.n_heads || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return fail(format!(
                "n_heads {} is not a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !self.head_size().is_multiple_of(2) {
            return fail(format!(
                "head size {} is odd; rotary embeddings rotate pairs",
                self.head_size()
            ));
        }
        if self.vocab_size < 3 {
            return fail(format!(
                "vocab_size {} leaves no room for <unk>, <s>, </s>",
                self.vocab_size
            ));
        }
        Ok(())
    }

    /// Every tensor of the file, in file order, with its length in floats.
    /// The two RoPE tables are included (as `freq_cis_real`/`freq_cis_imag`).
    pub fn tensor_layout(&self) -> Result<Vec<(&'static str, usize)>, CheckpointError> {
        let overflow =
            || CheckpointError::InvalidConfig(format!("tensor sizes overflow: {self:?}"));
        let mul = |a: usize, b: usize| a.checked_mul(b).ok_or_else(overflow);
        let (d, h, l, v) = (self.dim, self.hidden_dim, self.n_layers, self.vocab_size);
        let kv = self.kv_dim();
        let rope = mul(self.seq_len, self.head_size() / 2)?;
        let mut layout = vec![
            ("token_embedding", mul(v, d)?),
            ("rms_att", mul(l, d)?),
            ("wq", mul(l, mul(d, d)?)?),
            ("wk", mul(l, mul(d, kv)?)?),
            ("wv", mul(l, mul(d, kv)?)?),
            ("wo", mul(l, mul(d, d)?)?),
            ("rms_ffn", mul(l, d)?),
            ("w1", mul(l, mul(d, h)?)?),
            ("w2", mul(l, mul(h, d)?)?),
            ("w3", mul(l, mul(d, h)?)?),
            ("rms_final", d),
            ("freq_cis_real", rope),
            ("freq_cis_imag", rope),
        ];
        if !self.shared_classifier {
            layout.push(("wcls", mul(v, d)?));
        }
        Ok(layout)
    }

    /// Size in bytes of a checkpoint with this config.
    pub fn file_bytes(&self) -> Result<u64, CheckpointError> {
        let mut floats: u64 = 0;
        for (_, n) in self.tensor_layout()? {
            floats = floats.checked_add(n as u64).ok_or_else(|| {
                CheckpointError::InvalidConfig("checkpoint size overflows".into())
            })?;
        }
        floats
            .checked_mul(4)
            .and_then(|b| b.checked_add(HEADER_BYTES))
            .ok_or_else(|| CheckpointError::InvalidConfig("checkpoint size overflows".into()))
    }
}

/// The weights of a model, one `Vec` per run.c tensor (layers concatenated).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// `[vocab][dim]`
    pub token_embedding: Vec<f32>,
    /// `[L][dim]`
    pub rms_att: Vec<f32>,
    /// `[L][dim][dim]`
    pub wq: Vec<f32>,
    /// `[L][kv_dim][dim]`
    pub wk: Vec<f32>,
    /// `[L][kv_dim][dim]`
    pub wv: Vec<f32>,
    /// `[L][dim][dim]`
    pub wo: Vec<f32>,
    /// `[L][dim]`
    pub rms_ffn: Vec<f32>,
    /// `[L][hidden][dim]`
    pub w1: Vec<f32>,
    /// `[L][dim][hidden]`
    pub w2: Vec<f32>,
    /// `[L][hidden][dim]`
    pub w3: Vec<f32>,
    /// `[dim]`
    pub rms_final: Vec<f32>,
    /// `[vocab][dim]`, `None` when the classifier is the token embedding.
    pub wcls: Option<Vec<f32>>,
}

impl Weights {
    /// The classifier matrix `[vocab][dim]`.
    pub fn classifier(&self) -> &[f32] {
        self.wcls.as_deref().unwrap_or(&self.token_embedding)
    }
}

/// A config together with weights of matching shapes. Fields are private so
/// that every value went through [`Checkpoint::new`] or a loader, which the
/// forward pass relies on to slice tensors without further checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    config: Config,
    weights: Weights,
}

impl Checkpoint {
    /// Hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Pair a config with weights, checking every tensor's length.
    pub fn new(config: Config, weights: Weights) -> Result<Checkpoint, CheckpointError> {
        if config.shared_classifier != weights.wcls.is_none() {
            return Err(CheckpointError::InvalidConfig(
                "shared_classifier must be true exactly when wcls is None".into(),
            ));
        }
        let ckpt = Checkpoint { config, weights };
        for ((name, want), got) in config
            .tensor_layout()?
            .into_iter()
            .filter(|(n, _)| !n.starts_with("freq_cis"))
            .zip(ckpt.tensors())
        {
            if got.len() != want {
                return Err(CheckpointError::InvalidConfig(format!(
                    "tensor {name} has {} floats, the config implies {want}",
                    got.len()
                )));
            }
        }
        Ok(ckpt)
    }

    /// The stored tensors in file order (RoPE tables excluded).
    fn tensors(&self) -> Vec<&[f32]> {
        let w = &self.weights;
        let mut t: Vec<&[f32]> = vec![
            &w.token_embedding,
            &w.rms_att,
            &w.wq,
            &w.wk,
            &w.wv,
            &w.wo,
            &w.rms_ffn,
            &w.w1,
            &w.w2,
            &w.w3,
            &w.rms_final,
        ];
        if let Some(c) = &w.wcls {
            t.push(c);
        }
        t
    }

    /// Load a checkpoint file.
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let io_err = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        Self::read(BufReader::with_capacity(1 << 20, file), len).map_err(|e| match e {
            CheckpointError::Io { source, .. } => io_err(source),
            other => other,
        })
    }

    /// Parse a checkpoint held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        Self::read(bytes, bytes.len() as u64)
    }

    /// Parse `len` bytes of checkpoint from `reader`. The size is checked
    /// against the header before any weight is allocated, so a corrupted
    /// header cannot make us allocate more than the input holds.
    pub fn read<R: Read>(mut reader: R, len: u64) -> Result<Checkpoint, CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: PathBuf::from("<input>"),
            source,
        };
        if len < HEADER_BYTES {
            return Err(CheckpointError::MissingHeader { actual: len });
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        reader.read_exact(&mut header).map_err(io)?;
        let mut raw = [0i32; 7];
        for (i, chunk) in header.chunks_exact(4).enumerate() {
            raw[i] = i32::from_le_bytes(chunk.try_into().expect("4-byte chunk"));
        }
        let config = Config::from_header(raw)?;
        let expected = config.file_bytes()?;
        if len < expected {
            return Err(CheckpointError::Truncated {
                expected,
                actual: len,
            });
        }
        if len > expected {
            return Err(CheckpointError::TrailingBytes {
                expected,
                actual: len,
            });
        }
        let mut tensors = Vec::new();
        for (name, count) in config.tensor_layout()? {
            let mut data = vec![0f32; count];
            ask_for_huge_pages(&mut data);
            read_f32s(&mut reader, &mut data).map_err(io)?;
            if name.starts_with("freq_cis") {
                continue;
            }
            if let Some(index) = first_non_finite(&data) {
                return Err(CheckpointError::NonFinite {
                    tensor: name,
                    index,
                });
            }
            tensors.push(data);
        }
        let mut it = tensors.into_iter();
        let mut next = || it.next().expect("layout yields every tensor");
        let weights = Weights {
            token_embedding: next(),
            rms_att: next(),
            wq: next(),
            wk: next(),
            wv: next(),
            wo: next(),
            rms_ffn: next(),
            w1: next(),
            w2: next(),
            w3: next(),
            rms_final: next(),
            wcls: if config.shared_classifier {
                None
            } else {
                Some(next())
            },
        };
        Ok(Checkpoint { config, weights })
    }

    /// Write the checkpoint in run.c's legacy format. The RoPE tables, which
    /// run.c skips, are written as zeros.
    pub fn write<W: Write>(&self, mut out: W) -> io::Result<()> {
        let header = self
            .config
            .to_header()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        for v in header {
            out.write_all(&v.to_le_bytes())?;
        }
        let tensors = self.tensors();
        let rope = self.config.seq_len * (self.config.head_size() / 2);
        let zeros = vec![0f32; rope];
        // File order: the 11 stored tensors, the two RoPE tables, then wcls.
        for t in &tensors[..11] {
            write_f32s(&mut out, t)?;
        }
        write_f32s(&mut out, &zeros)?;
        write_f32s(&mut out, &zeros)?;
        for t in &tensors[11..] {
            write_f32s(&mut out, t)?;
        }
        out.flush()
    }

    /// The checkpoint as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write(&mut v).expect("writing to a Vec cannot fail");
        v
    }
}

/// Ask the kernel to back `data` with transparent huge pages where it can
/// (2 MiB-aligned stretches; only honoured before the pages are touched).
/// The forward pass streams every weight once per token, and with 4 KiB
/// pages a large model costs a TLB miss every 1,024 floats; with huge
/// pages, one every 512 Ki. Advice only: failure changes nothing.
fn ask_for_huge_pages(data: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = data.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(data);
        let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: [lo, hi) lies inside `data`'s allocation; MADV_HUGEPAGE
            // changes no contents.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
}

/// Index of the first NaN or infinity. Scans in blocks with a branch-free
/// test so that it vectorizes (it runs over every weight at start-up).
fn first_non_finite(data: &[f32]) -> Option<usize> {
    const BLOCK: usize = 4096;
    data.chunks(BLOCK)
        .position(|block| block.iter().fold(false, |bad, v| bad | !v.is_finite()))
        .and_then(|b| {
            let at = b * BLOCK;
            data[at..]
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| at + i)
        })
}

/// Fill `out` with little-endian floats from `reader`, reading straight into
/// its memory (every bit pattern is some f32) and fixing the byte order
/// afterwards on big-endian machines.
fn read_f32s<R: Read>(reader: &mut R, out: &mut [f32]) -> io::Result<()> {
    // SAFETY: f32 has no invalid bit patterns and no padding; the byte view
    // covers exactly `out`'s memory and ends before `out` is used again.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(out))
    };
    reader.read_exact(bytes)?;
    if cfg!(target_endian = "big") {
        for v in out.iter_mut() {
            *v = f32::from_bits(u32::from_le(v.to_bits()));
        }
    }
    Ok(())
}

fn write_f32s<W: Write>(out: &mut W, values: &[f32]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    for chunk in values.chunks(16 * 1024) {
        buf.clear();
        for v in chunk {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(shared: bool) -> Checkpoint {
        let config = Config {
            dim: 8,
            hidden_dim: 12,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 1,
            vocab_size: 5,
            seq_len: 4,
            shared_classifier: shared,
        };
        let mut counter = 0f32;
        let mut fill = |n: usize| {
            (0..n)
                .map(|_| {
                    counter += 0.25;
                    counter
                })
                .collect::<Vec<f32>>()
        };
        let weights = Weights {
            token_embedding: fill(40),
            rms_att: fill(16),
            wq: fill(128),
            wk: fill(64),
            wv: fill(64),
            wo: fill(128),
            rms_ffn: fill(16),
            w1: fill(192),
            w2: fill(192),
            w3: fill(192),
            rms_final: fill(8),
            wcls: if shared { None } else { Some(fill(40)) },
        };
        Checkpoint::new(config, weights).unwrap()
    }

    #[test]
    fn round_trip_shared_and_unshared() {
        for shared in [true, false] {
            let c = tiny(shared);
            let bytes = c.to_bytes();
            assert_eq!(bytes.len() as u64, c.config.file_bytes().unwrap());
            let vocab = i32::from_le_bytes(bytes[20..24].try_into().unwrap());
            assert_eq!(vocab, if shared { 5 } else { -5 });
            assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), c);
        }
    }

    #[test]
    fn truncated_and_trailing_are_rejected() {
        let bytes = tiny(false).to_bytes();
        for cut in [0, 10, 27, 28, 100, bytes.len() - 1] {
            let err = Checkpoint::from_bytes(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    CheckpointError::MissingHeader { .. } | CheckpointError::Truncated { .. }
                ),
                "{cut}: {err}"
            );
        }
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 4]);
        assert!(matches!(
            Checkpoint::from_bytes(&long),
            Err(CheckpointError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn bad_headers_are_rejected() {
        let good = tiny(true).to_bytes();
        let patch = |field: usize, v: i32| {
            let mut b = good.clone();
            b[field * 4..field * 4 + 4].copy_from_slice(&v.to_le_bytes());
            Checkpoint::from_bytes(&b).unwrap_err()
        };
        for field in 0..7 {
            assert!(
                matches!(patch(field, 0), CheckpointError::InvalidConfig(_)),
                "{field}"
            );
            if field != 5 {
                assert!(
                    matches!(patch(field, -3), CheckpointError::InvalidConfig(_)),
                    "{field}"
                );
            }
        }
        // dim not divisible by heads, kv heads not dividing heads, odd head size.
        assert!(matches!(patch(3, 3), CheckpointError::InvalidConfig(_)));
        assert!(matches!(patch(4, 3), CheckpointError::InvalidConfig(_)));
        assert!(matches!(patch(3, 8), CheckpointError::InvalidConfig(_)));
        // Huge dimensions fail on size, not on allocation.
        assert!(matches!(
            patch(0, i32::MAX - 1),
            CheckpointError::InvalidConfig(_) | CheckpointError::Truncated { .. }
        ));
        assert!(matches!(
            patch(0, VERSIONED_MAGIC),
            CheckpointError::VersionedExport
        ));
    }

    #[test]
    fn first_non_finite_finds_the_first_across_blocks() {
        let mut v = vec![0.5f32; 10_000];
        assert_eq!(first_non_finite(&v), None);
        v[9_999] = f32::NEG_INFINITY;
        v[4_100] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(4_100));
        v[4_095] = f32::INFINITY;
        assert_eq!(first_non_finite(&v), Some(4_095));
    }

    #[test]
    fn non_finite_weights_are_rejected() {
        let mut bytes = tiny(true).to_bytes();
        bytes[28..32].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            Checkpoint::from_bytes(&bytes),
            Err(CheckpointError::NonFinite {
                tensor: "token_embedding",
                index: 0
            })
        ));
    }

    #[test]
    fn load_reports_the_path() {
        let err = Checkpoint::load(Path::new("/nonexistent/model.bin")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/model.bin"), "{err}");
    }
}
