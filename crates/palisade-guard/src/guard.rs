//! [`Guard`]: the configured pipeline the CLI and the gateway call.

use crate::classifier::Model;
use crate::config::GuardConfig;
use crate::decode::decode_all;
use crate::normalize::normalize;
use crate::verdict::{Action, Decision, Detection, Layer, Span, Verdict};
use crate::{rules, signatures, GuardError};

/// Largest total logit boost signatures can add.
const MAX_BOOST: f32 = 8.0;

/// A configured guard. Cheap to share (`&Guard` is all checks need); build once.
#[derive(Debug)]
pub struct Guard {
    pub(crate) cfg: GuardConfig,
    pub(crate) model: Model,
    pub(crate) threshold: f32,
    pub(crate) hash_key: Vec<u8>,
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The prompt-injection layers' result for one text.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectionReport {
    /// Combined probability.
    pub score: f32,
    /// The classifier's probability on the normalised text alone.
    pub classifier: f32,
    pub detections: Vec<Detection>,
}

impl Guard {
    /// A guard with the embedded default model.
    pub fn from_config(cfg: &GuardConfig) -> Result<Guard, GuardError> {
        Guard::with_model(cfg, Model::embedded()?)
    }

    /// A guard with a caller-supplied model (`palisade guard --model FILE`).
    pub fn with_model(cfg: &GuardConfig, model: Model) -> Result<Guard, GuardError> {
        let threshold = cfg.injection.threshold.unwrap_or(model.threshold);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(GuardError::Config(format!(
                "injection.threshold {threshold} is outside 0..=1"
            )));
        }
        let hash_key = crate::redact::hash_key(&cfg.redaction)?;
        Ok(Guard {
            cfg: cfg.clone(),
            model,
            threshold,
            hash_key,
        })
    }

    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The injection threshold in force.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Runs layers 1–3 on a prompt.
    pub fn injection(&self, text: &str) -> InjectionReport {
        let icfg = &self.cfg.injection;
        let norm = normalize(text);
        let mut detections = Vec::new();
        let mut buf = Vec::new();
        let classifier = self.model.score_normalized(&norm.text, &mut buf);
        let mut boost = 0.0f32;
        let mut hits = Vec::new();
        if icfg.signatures {
            hits = signatures::scan(&norm.text);
            boost = hits.iter().map(|h| h.signature.boost).sum::<f32>().min(MAX_BOOST);
        }
        let mut score = sigmoid(logit(classifier) + boost);
        let mut decoded_best: Option<(String, f32)> = None;
        if icfg.decode {
            let budget = (text.len() * 4).max(64 * 1024);
            for d in decode_all(&norm.text, self.cfg.max_decode_depth, budget) {
                let dn = normalize(&d.text);
                let c = self.model.score_normalized(&dn.text, &mut buf);
                let b = if icfg.signatures {
                    signatures::scan(&dn.text)
                        .iter()
                        .map(|h| h.signature.boost)
                        .sum::<f32>()
                        .min(MAX_BOOST)
                } else {
                    0.0
                };
                let s = sigmoid(logit(c) + b);
                let chain = d.chain.iter().map(|e| e.as_str()).collect::<Vec<_>>().join("+");
                tracing::debug!(%chain, score = s, "decoded segment rescanned");
                if s >= self.threshold {
                    detections.push(Detection {
                        code: rules::GRD003.code.to_owned(),
                        layer: Layer::Decoder,
                        kind: Some(chain.clone()),
                        span: None,
                        score: s,
                        reason: format!("{chain} payload decodes to text scoring {s:.2} as an injection"),
                        action: self.cfg.obfuscation.action,
                    });
                    if decoded_best.as_ref().is_none_or(|(_, b)| s > *b) {
                        decoded_best = Some((chain, s));
                    }
                }
            }
        }
        if let Some((_, s)) = &decoded_best {
            score = score.max(*s);
        }
        let injected = score >= self.threshold;
        let inj_action = match icfg.action {
            Action::Redact => Action::Block,
            a => a,
        };
        for h in hits {
            detections.push(Detection {
                code: rules::GRD002.code.to_owned(),
                layer: Layer::Signature,
                kind: Some(h.signature.name.to_owned()),
                span: Some(Span {
                    start: h.start,
                    end: h.end,
                })
                .filter(|_| norm.text == text),
                score: sigmoid(h.signature.boost - 1.0),
                reason: format!("signature `{}` matched", h.signature.name),
                action: if injected { inj_action } else { Action::Flag },
            });
        }
        if norm.tricks.suspicious() {
            detections.push(Detection {
                code: rules::GRD003.code.to_owned(),
                layer: Layer::Normalisation,
                kind: Some("unicode".to_owned()),
                span: None,
                score: if norm.tricks.tag_chars > 0 { 0.9 } else { 0.6 },
                reason: format!("normalisation undid: {}", norm.tricks.describe()),
                action: self.cfg.obfuscation.action,
            });
        }
        if injected {
            let mut why = format!("injection score {score:.2} (classifier {classifier:.2}");
            if boost > 0.0 {
                why.push_str(&format!(", signatures +{boost:.1} logit"));
            }
            if let Some((chain, s)) = &decoded_best {
                why.push_str(&format!(", decoded {chain} {s:.2}"));
            }
            why.push(')');
            detections.insert(
                0,
                Detection {
                    code: rules::GRD001.code.to_owned(),
                    layer: Layer::Classifier,
                    kind: None,
                    span: None,
                    score,
                    reason: why,
                    action: inj_action,
                },
            );
        }
        if icfg.action == Action::Off {
            detections.retain(|d| d.code != rules::GRD001.code && d.code != rules::GRD002.code);
        }
        if self.cfg.obfuscation.action == Action::Off {
            detections.retain(|d| d.code != rules::GRD003.code);
        }
        InjectionReport {
            score,
            classifier,
            detections,
        }
    }

    /// True when `text` is over the size limit; returns the blocking verdict.
    pub(crate) fn too_large(&self, text: &str) -> Option<Verdict> {
        (text.len() > self.cfg.max_input_bytes).then(|| Verdict {
            decision: Decision::Block,
            injection_score: 0.0,
            detections: vec![Detection {
                code: rules::GRD004.code.to_owned(),
                layer: Layer::Limits,
                kind: None,
                span: None,
                score: 1.0,
                reason: format!(
                    "{} bytes exceed max_input_bytes {}",
                    text.len(),
                    self.cfg.max_input_bytes
                ),
                action: Action::Block,
            }],
        })
    }
}

/// The strongest action among `detections`, as a decision; `redacted` is the rewritten
/// text when any detection asked for redaction.
pub(crate) fn decide(detections: &[Detection], redacted: Option<String>) -> Decision {
    let top = detections.iter().map(|d| d.action).max().unwrap_or(Action::Off);
    match top {
        Action::Block => Decision::Block,
        Action::Redact => match redacted {
            Some(text) => Decision::Redact { text },
            None => Decision::Flag,
        },
        Action::Flag => Decision::Flag,
        Action::Off => Decision::Allow,
    }
}
