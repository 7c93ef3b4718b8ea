//! What a check returns: an action and the detections behind it. Serde-serialisable so
//! the gateway and the CLI can emit it as JSON unchanged.

use serde::{Deserialize, Serialize};

/// Which layer of the guard produced a detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Size limits.
    Limits,
    /// Unicode normalisation undid a trick (invisible, tag, bidi, homoglyph).
    Normalisation,
    /// A decoded (base64, hex, rot13, …) segment was rescanned.
    Decoder,
    /// A named rule signature matched.
    Signature,
    /// The learned classifier.
    Classifier,
    /// The user-provided ONNX classifier (layer 4).
    Onnx,
    /// Personal data.
    Pii,
    /// Credentials and keys.
    Secret,
    /// Markdown link or image exfiltration.
    Markdown,
    /// HTML or script in output.
    Html,
    /// A canary token leaked.
    Canary,
    /// Structured output failed its JSON schema.
    Schema,
}

/// A byte range `[start, end)` in the text that was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// One thing a layer found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Rule code, e.g. `GRD001`.
    pub code: String,
    pub layer: Layer,
    /// Sub-type, e.g. `EMAIL`, `AWS_ACCESS_KEY`, a signature name or an encoding chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Where, in the checked text (`None` when the layer judged the whole text or a
    /// decoded form of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// Confidence in 0..=1.
    pub score: f32,
    pub reason: String,
    /// What the configuration says to do about it.
    pub action: Action,
}

/// A configured response to a check: `block`, `redact`, `flag`, or `off`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The check does not run.
    Off,
    /// Report, let the text through unchanged.
    #[default]
    Flag,
    /// Replace the offending span (or sanitise) and let the rest through.
    Redact,
    /// Refuse the text.
    Block,
}

/// The decision about one text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Flag,
    /// Let the rewritten `text` through instead of the original.
    Redact {
        text: String,
    },
    Block,
}

impl Decision {
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Flag => "flag",
            Decision::Redact { .. } => "redact",
            Decision::Block => "block",
        }
    }
}

/// A decision, the detections behind it, and the prompt-injection score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub decision: Decision,
    /// Combined prompt-injection probability (0 for output checks).
    pub injection_score: f32,
    pub detections: Vec<Detection>,
}

impl Verdict {
    /// Anything other than a plain allow.
    pub fn is_flagged(&self) -> bool {
        !matches!(self.decision, Decision::Allow)
    }

    pub fn is_blocked(&self) -> bool {
        matches!(self.decision, Decision::Block)
    }

    /// The text to pass on: the rewritten text for `redact`, the original otherwise,
    /// `None` for `block`.
    pub fn text<'a>(&'a self, original: &'a str) -> Option<&'a str> {
        match &self.decision {
            Decision::Block => None,
            Decision::Redact { text } => Some(text),
            Decision::Allow | Decision::Flag => Some(original),
        }
    }
}
