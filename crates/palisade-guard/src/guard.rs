//! [`Guard`]: the configured pipeline the CLI and the gateway call.

use std::sync::Arc;

use crate::classifier::Model;
use crate::config::{GuardConfig, RedactionMode};
use crate::decode::decode_all;
use crate::normalize::normalize;
use crate::pii::Entity;
use crate::redact::{Redactor, Vault};
use crate::stream::StreamGuard;
use crate::verdict::{Action, Decision, Detection, Layer, Span, Verdict};
use crate::{output, pii, rules, secrets, signatures, GuardError};

/// Largest total logit boost signatures can add.
const MAX_BOOST: f32 = 8.0;

/// A configured guard. Cheap to share (`&Guard` is all checks need); build once.
#[derive(Debug)]
pub struct Guard {
    pub(crate) cfg: GuardConfig,
    pub(crate) model: Model,
    pub(crate) threshold: f32,
    pub(crate) hash_key: Vec<u8>,
    /// Layer 4, when configured.
    pub(crate) onnx: Option<std::sync::Arc<crate::onnx::OnnxClassifier>>,
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
        let onnx = match &cfg.injection.onnx {
            Some(o) => Some(crate::onnx::OnnxClassifier::load(o).map_err(GuardError::Config)?),
            None => None,
        };
        Ok(Guard {
            cfg: cfg.clone(),
            model,
            threshold,
            hash_key,
            onnx,
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
        let found = self.all_sensitive(text);
        self.injection_masked(text, &found)
    }

    /// Personal data and secrets at confidence ≥ min(0.5, pii.min_score), every kind.
    fn all_sensitive(&self, text: &str) -> Vec<Entity> {
        let min = self.cfg.pii.min_score.min(0.5);
        let mut found = pii::find(text, min, &[]);
        found.extend(secrets::find(text, min));
        pii::resolve_overlaps(found)
    }

    /// Layers 1–3 with `found` (sensitive values) removed from the classifier's view:
    /// personal data and secrets are values, not language, and an unseen card number
    /// must not sway the score either way.
    fn injection_masked(&self, text: &str, found: &[Entity]) -> InjectionReport {
        let icfg = &self.cfg.injection;
        let found: Vec<&Entity> = found.iter().filter(|e| e.score >= 0.5).collect();
        let unmasked = found.is_empty();
        let masked;
        let text = if found.is_empty() {
            text
        } else {
            let mut edits: Vec<Edit> = found
                .iter()
                .map(|e| Edit {
                    start: e.start,
                    end: e.end,
                    replacement: String::new(),
                })
                .collect();
            masked = apply_edits(text, &mut edits);
            masked.as_str()
        };
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
        // Layer 4: the user's ONNX classifier on the normalised text; its probability
        // joins the score when it fires. A runtime failure leaves layers 1-3 to judge.
        let mut onnx_fired = None;
        if let Some(o) = &self.onnx {
            match o.score(&norm.text) {
                Ok((s, windows)) if s >= o.config().threshold => {
                    score = score.max(s);
                    onnx_fired = Some(s);
                    detections.push(Detection {
                        code: rules::GRD001.code.to_owned(),
                        layer: Layer::Onnx,
                        kind: Some("onnx".to_owned()),
                        span: None,
                        score: s,
                        reason: format!(
                            "ONNX classifier: injection probability {s:.2} (highest of {} window{})",
                            windows.len(),
                            if windows.len() == 1 { "" } else { "s" }
                        ),
                        action: Action::Flag,
                    });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ONNX classifier failed; layers 1-3 decide"),
            }
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
                .filter(|_| unmasked && text.is_ascii() && norm.text == text),
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
            if let Some(s) = onnx_fired {
                why.push_str(&format!(", ONNX classifier {s:.2}"));
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

/// Per-request output context: the request's vault (to restore pseudonymised values),
/// its JSON schema for structured output, and extra canary tokens. Owned and cheap to
/// clone, so a [`StreamGuard`] can live in an async response body (`'static + Send`).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub vault: Option<Arc<Vault>>,
    pub schema: Option<Arc<serde_json::Value>>,
    pub canary_tokens: Vec<String>,
}

impl Context {
    /// A context that restores the pseudonyms recorded in `vault`.
    pub fn with_vault(vault: Vault) -> Context {
        Context {
            vault: Some(Arc::new(vault)),
            ..Context::default()
        }
    }

    /// A context whose response must validate against `schema`.
    pub fn with_schema(schema: serde_json::Value) -> Context {
        Context {
            schema: Some(Arc::new(schema)),
            ..Context::default()
        }
    }
}

/// A replacement of `start..end` in a text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Edit {
    pub start: usize,
    pub end: usize,
    pub replacement: String,
}

/// Applies non-overlapping edits (overlaps: the earlier-starting one wins).
pub(crate) fn apply_edits(text: &str, edits: &mut [Edit]) -> String {
    edits.sort_by_key(|e| (e.start, std::cmp::Reverse(e.end)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in edits.iter() {
        if e.start < at || e.end > text.len() || e.start > e.end {
            continue;
        }
        let (Some(keep), true) = (text.get(at..e.start), text.is_char_boundary(e.end)) else {
            continue;
        };
        out.push_str(keep);
        out.push_str(&e.replacement);
        at = e.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

impl Guard {
    fn redactor(&self, allow_pseudonyms: bool) -> Redactor<'_> {
        let mode = match self.cfg.redaction.mode {
            RedactionMode::Pseudonymise if !allow_pseudonyms => RedactionMode::Mask,
            m => m,
        };
        Redactor {
            mode,
            key: &self.hash_key,
            hex_digits: self.cfg.redaction.hash_hex_digits.unwrap_or(8),
        }
    }

    /// Personal data and secrets in `text`, as configured (overlaps resolved).
    pub fn sensitive(&self, text: &str) -> Vec<Entity> {
        let all = self.all_sensitive(text);
        self.configured(all)
    }

    /// The entities the configuration asks about.
    fn configured(&self, all: Vec<Entity>) -> Vec<Entity> {
        let pcfg = &self.cfg.pii;
        all.into_iter()
            .filter(|e| e.score >= pcfg.min_score)
            .filter(|e| {
                if Guard::is_secret(e.kind) {
                    self.cfg.secrets.action != Action::Off
                } else {
                    pcfg.action != Action::Off
                        && (pcfg.kinds.is_empty() || pcfg.kinds.iter().any(|k| k.eq_ignore_ascii_case(e.kind)))
                }
            })
            .collect()
    }

    fn is_secret(kind: &str) -> bool {
        !pii::KINDS.contains(&kind)
    }

    fn sensitive_detections(
        &self,
        text: &str,
        entities: Vec<Entity>,
        vault: &mut Vault,
        pseudonyms: bool,
    ) -> (Vec<Detection>, Vec<Edit>) {
        let mut dets = Vec::new();
        let mut edits = Vec::new();
        let redactor = self.redactor(pseudonyms);
        for e in self.configured(entities) {
            let secret = Guard::is_secret(e.kind);
            let (rule, layer, action) = if secret {
                (&rules::GRD011, Layer::Secret, self.cfg.secrets.action)
            } else {
                (&rules::GRD010, Layer::Pii, self.cfg.pii.action)
            };
            if action == Action::Redact {
                let value = text.get(e.start..e.end).unwrap_or_default();
                edits.push(Edit {
                    start: e.start,
                    end: e.end,
                    replacement: redactor.replacement(e.kind, value, vault, text),
                });
            }
            dets.push(Detection {
                code: rule.code.to_owned(),
                layer,
                kind: Some(e.kind.to_owned()),
                span: Some(Span {
                    start: e.start,
                    end: e.end,
                }),
                score: e.score,
                reason: e.reason,
                action,
            });
        }
        (dets, edits)
    }

    /// Checks a prompt (input) with a throw-away vault.
    pub fn check_input(&self, text: &str) -> Verdict {
        let mut vault = Vault::new();
        self.check_input_with(text, &mut vault)
    }

    /// Checks a prompt; pseudonymised values are recorded in `vault` so that
    /// [`check_output`](Self::check_output) with the same vault restores them.
    pub fn check_input_with(&self, text: &str, vault: &mut Vault) -> Verdict {
        if let Some(v) = self.too_large(text) {
            return v;
        }
        let found = self.all_sensitive(text);
        let mut report = if self.cfg.injection.action == Action::Off && self.cfg.obfuscation.action == Action::Off {
            InjectionReport {
                score: 0.0,
                classifier: 0.0,
                detections: Vec::new(),
            }
        } else {
            self.injection_masked(text, &found)
        };
        let (dets, mut edits) = self.sensitive_detections(text, found, vault, true);
        report.detections.extend(dets);
        let redacted = (!edits.is_empty()).then(|| apply_edits(text, &mut edits));
        Verdict {
            decision: decide(&report.detections, redacted),
            injection_score: report.score,
            detections: report.detections,
        }
    }

    /// Output findings except the schema (which needs the whole response).
    pub(crate) fn output_findings(&self, text: &str, ctx: &Context) -> (Vec<Detection>, Vec<Edit>) {
        let ocfg = &self.cfg.output;
        let mut dets = Vec::new();
        let mut edits = Vec::new();
        let mut add =
            |rule: &palisade_core::Rule, layer: Layer, action: Action, f: output::Finding, edits: &mut Vec<Edit>| {
                if action == Action::Off {
                    return;
                }
                if action == Action::Redact {
                    edits.push(Edit {
                        start: f.start,
                        end: f.end,
                        replacement: f.replacement.clone(),
                    });
                }
                dets.push(Detection {
                    code: rule.code.to_owned(),
                    layer,
                    kind: Some(f.kind.to_owned()),
                    span: (f.end > f.start).then_some(Span {
                        start: f.start,
                        end: f.end,
                    }),
                    score: f.score,
                    reason: f.reason,
                    action,
                });
            };
        let tokens: Vec<String> = ocfg.canary_tokens.iter().chain(&ctx.canary_tokens).cloned().collect();
        for f in output::canaries(text, &tokens) {
            add(&rules::GRD022, Layer::Canary, ocfg.canary.action, f, &mut edits);
        }
        for f in output::markdown_exfiltration(text, &ocfg.allowed_domains) {
            add(
                &rules::GRD020,
                Layer::Markdown,
                ocfg.markdown_exfiltration.action,
                f,
                &mut edits,
            );
        }
        for f in output::html(text) {
            add(&rules::GRD021, Layer::Html, ocfg.html.action, f, &mut edits);
        }
        let mut scratch = Vault::new();
        let (d, e) = self.sensitive_detections(text, self.all_sensitive(text), &mut scratch, false);
        dets.extend(d);
        edits.extend(e);
        (dets, edits)
    }

    pub(crate) fn schema_detections(&self, text: &str, schema: &serde_json::Value) -> Vec<Detection> {
        let action = self.cfg.output.schema.action;
        if action == Action::Off {
            return Vec::new();
        }
        let mk = |path: String, msg: String| Detection {
            code: rules::GRD023.code.to_owned(),
            layer: Layer::Schema,
            kind: Some(if path.is_empty() { "/".to_owned() } else { path }),
            span: None,
            score: 1.0,
            reason: msg,
            action: if action == Action::Redact {
                Action::Block
            } else {
                action
            },
        };
        match output::schema_violations(text, schema) {
            Ok(v) => v.into_iter().map(|(p, m)| mk(p, m)).collect(),
            Err(e) => vec![mk(String::new(), format!("the request's schema does not compile: {e}"))],
        }
    }

    /// Checks a response. With a vault in `ctx`, pseudonymised values are restored in
    /// the returned text (decision `redact` when anything was restored).
    pub fn check_output(&self, text: &str, ctx: &Context) -> Verdict {
        if let Some(v) = self.too_large(text) {
            return v;
        }
        let (mut dets, mut edits) = self.output_findings(text, ctx);
        if let Some(schema) = ctx.schema.as_deref() {
            dets.extend(self.schema_detections(text, schema));
        }
        let mut rewritten = (!edits.is_empty()).then(|| apply_edits(text, &mut edits));
        if let Some(vault) = ctx.vault.as_deref().filter(|v| !v.is_empty()) {
            let base = rewritten.as_deref().unwrap_or(text);
            let restored = vault.restore(base);
            if restored != text {
                rewritten = Some(restored);
            }
        }
        let mut decision = decide(&dets, rewritten.clone());
        if let (Decision::Allow | Decision::Flag, Some(text)) = (&decision, rewritten) {
            if dets.iter().all(|d| d.action != Action::Redact) && ctx.vault.is_some() {
                decision = Decision::Redact { text };
            }
        }
        Verdict {
            decision,
            injection_score: 0.0,
            detections: dets,
        }
    }

    /// A guard for a streamed response (SSE): feed chunks, release what is safe. It
    /// holds an `Arc` of the guard, so it can be moved into a response stream.
    pub fn stream(self: &Arc<Self>, ctx: Context) -> StreamGuard {
        StreamGuard::new(Arc::clone(self), ctx)
    }

    /// A fresh random canary token to plant in a system prompt.
    pub fn new_canary() -> String {
        use rand_core::RngCore;
        let mut b = [0u8; 8];
        rand_core::OsRng.fill_bytes(&mut b);
        format!("pal-canary-{}", hex::encode(b))
    }
}
