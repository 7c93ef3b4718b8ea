//! LLM guardrails: prompt-injection and jailbreak detection on input, personal data and
//! secret detection with redaction, and output checks (HTML, markdown exfiltration,
//! canary leakage, JSON schema), also on streams.
//!
//! Layers, each reporting what fired ([`Layer`]):
//! 1. [`normalize`] (Unicode tricks) and [`decode`] (encoded segments, rescanned);
//! 2. [`signatures`]: named rule signatures;
//! 3. [`classifier`]: a hashed-n-gram logistic regression, embedded in the binary.
//!
//! The guard never calls the network and never loads anything at run time except a
//! model file the caller names. Entry point: [`Guard`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod classifier;
pub mod config;
pub mod decode;
pub mod eval;
mod guard;
pub mod normalize;
pub mod onnx;
pub mod output;
pub mod pii;
pub mod redact;
pub mod rules;
pub mod secrets;
pub mod signatures;
pub mod stream;
pub mod verdict;

pub use classifier::Model;
pub use config::{GuardConfig, RedactionMode};
pub use guard::{Context, Guard, InjectionReport};
pub use redact::Vault;
pub use stream::{StreamGuard, StreamOutput};
pub use verdict::{Action, Decision, Detection, Layer, Span, Verdict};

/// Errors of the guard library.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("guard model: {0}")]
    Model(String),
    #[error("guard configuration: {0}")]
    Config(String),
    #[error("JSON schema: {0}")]
    Schema(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Data { path: String, line: usize, message: String },
}
