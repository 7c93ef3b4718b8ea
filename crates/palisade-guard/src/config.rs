//! `GuardConfig`: every knob of the guard, with documented defaults. Unknown keys are
//! rejected (a misspelt key must not silently switch a check off). In `palisade.toml`
//! this is the `[guard]` table; see `docs/guard.md`.

use serde::{Deserialize, Serialize};

use crate::verdict::Action;

/// Guard configuration. `GuardConfig::default()` is the documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Texts longer than this are blocked unread (`GRD004`). Default 1 MiB.
    pub max_input_bytes: usize,
    /// Levels of nested encodings decoded for a rescan (base64 in hex in …). Default 3.
    pub max_decode_depth: u8,
    pub injection: InjectionConfig,
    /// Unicode tricks (tag characters, bidi controls, invisible characters, mixed
    /// scripts) and encoded payloads that did not score as injections. Default `flag`.
    pub obfuscation: CheckConfig,
    pub pii: PiiConfig,
    /// Credentials: cloud and provider keys, private keys, JWTs, high-entropy tokens.
    /// Default `redact`.
    pub secrets: CheckConfig,
    pub redaction: RedactionConfig,
    pub output: OutputConfig,
    pub stream: StreamConfig,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_input_bytes: 1 << 20,
            max_decode_depth: 3,
            injection: InjectionConfig::default(),
            obfuscation: CheckConfig { action: Action::Flag },
            pii: PiiConfig::default(),
            secrets: CheckConfig { action: Action::Redact },
            redaction: RedactionConfig::default(),
            output: OutputConfig::default(),
            stream: StreamConfig::default(),
        }
    }
}

/// A check with only an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub action: Action,
}

/// Prompt-injection detection (input).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InjectionConfig {
    /// `block` (default), `flag` or `off`; `redact` acts as `block` (an injection cannot
    /// be cut out safely).
    pub action: Action,
    /// Score at or above which a prompt is an injection; default: the model's own
    /// threshold (0.5 for the shipped model).
    pub threshold: Option<f32>,
    /// Run the named signatures (layer 2). Default true.
    pub signatures: bool,
    /// Decode encoded segments and rescan them (layer 1b). Default true.
    pub decode: bool,
    /// A user-provided ONNX classifier with its Hugging Face tokenizer (layer 4,
    /// `[guard.injection.onnx]`); none by default.
    pub onnx: Option<crate::onnx::OnnxConfig>,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        InjectionConfig {
            action: Action::Block,
            threshold: None,
            signatures: true,
            decode: true,
            onnx: None,
        }
    }
}

/// Personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// Default `redact`.
    pub action: Action,
    /// Minimum confidence (after context words) to report. Default 0.5.
    pub min_score: f32,
    /// Kinds to look for (`EMAIL`, `CREDIT_CARD`, `IBAN`, `US_SSN`, `PHONE`,
    /// `IP_ADDRESS`, `CRYPTO_WALLET`); empty (default) means all.
    pub kinds: Vec<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            action: Action::Redact,
            min_score: 0.5,
            kinds: Vec::new(),
        }
    }
}

/// How `redact` rewrites personal data and secrets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedactionMode {
    /// `<EMAIL>` (default).
    #[default]
    Mask,
    /// `<EMAIL:3f2a9c1d>`: HMAC-SHA256 of the value under `hash_key`, truncated; equal
    /// values give equal labels, so logs stay joinable without the values.
    Hash,
    /// `<EMAIL_1>`, stable within one request; the request's vault restores the
    /// originals in the response.
    Pseudonymise,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    pub mode: RedactionMode,
    /// Hex key (at least 16 bytes) for `hash` mode; default: a random key per process,
    /// so labels are stable within a process only.
    pub hash_key: Option<String>,
    /// Hex digits of the HMAC kept in a label. Default 8.
    pub hash_hex_digits: Option<usize>,
}

/// Output (response) checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// HTML tags, event handlers and `javascript:` URLs in the response. Default
    /// `redact` (sanitise with ammonia).
    pub html: CheckConfig,
    /// Markdown images and links that carry data to a domain outside
    /// `allowed_domains`. Default `redact` (the link is replaced).
    pub markdown_exfiltration: CheckConfig,
    /// Domains (and their subdomains) links and images may point at. Default empty.
    pub allowed_domains: Vec<String>,
    /// Secret strings planted in the system prompt; seeing one in a response means the
    /// prompt leaked. Default empty.
    pub canary_tokens: Vec<String>,
    /// Action for a leaked canary. Default `block`.
    pub canary: CheckConfig,
    /// Action when a response does not validate against the request's JSON schema.
    /// Default `block`.
    pub schema: CheckConfig,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            html: CheckConfig { action: Action::Redact },
            markdown_exfiltration: CheckConfig { action: Action::Redact },
            allowed_domains: Vec::new(),
            canary_tokens: Vec::new(),
            canary: CheckConfig { action: Action::Block },
            schema: CheckConfig { action: Action::Block },
        }
    }
}

/// Streaming (SSE) output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Bytes held back at the end of the stream so a secret or link split across
    /// chunks is seen whole before it is released. Default 512.
    pub lookbehind_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig { lookbehind_bytes: 512 }
    }
}
