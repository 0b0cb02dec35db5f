//! lagic-enclave: the inference server that sits behind a lagic diode.
//!
//! - [`generator`]: the [`Generator`] trait the server calls;
//! - [`echo`]: a deterministic generator (prompt + seeded clean words);
//! - [`llama2`]: llama2.c-compatible checkpoints, tokenizer, forward pass and sampler;
//! - [`synth`]: small synthetic llama2.c models for tests and the lab;
//! - [`http`]: the HTTP/1.1 server speaking the hackathon's API;
//! - [`init`]: PID 1 of the enclave VM (mounts, modules, network from the kernel command line).

pub mod echo;
pub mod generator;
pub mod http;
pub mod init;
pub mod llama2;
pub mod synth;

pub use echo::EchoGenerator;
pub use generator::{GenerateError, GenerationRequest, Generator};
pub use llama2::Llama2Generator;
