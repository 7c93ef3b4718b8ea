//! Layer 4 (optional): a user-provided ONNX text classifier — for example a fine-tuned
//! DeBERTa or DistilBERT prompt-injection model — run in process with tract, with its
//! Hugging Face `tokenizer.json`.
//!
//! A prompt longer than the model's token limit is cut into windows of `max_tokens`
//! (special tokens included) that overlap by `stride` tokens, as Hugging Face's
//! `return_overflowing_tokens` does (the tokenizer's own truncation is not used: its
//! overflow differs between library versions); every window is scored, up to `max_chunks`, and the
//! prompt's score is the highest. Each window is padded to `max_tokens`, so the model is
//! optimised once for one fixed shape.
//!
//! Nothing is downloaded: both files are read from the configured paths at start-up.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokenizers::{PostProcessor as _, Tokenizer, TruncationDirection};
use tract_onnx::prelude::*;

/// `[guard.injection.onnx]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxConfig {
    /// The classifier (`.onnx`, weights inside the file).
    pub model: std::path::PathBuf,
    /// Its Hugging Face `tokenizer.json`.
    pub tokenizer: std::path::PathBuf,
    /// Index of the injection class among the model's output logits. Default 1.
    #[serde(default = "d_label")]
    pub label: usize,
    /// The model's token limit, special tokens included. Default 512.
    #[serde(default = "d_max_tokens")]
    pub max_tokens: usize,
    /// Tokens shared by consecutive windows of a long prompt. Default 64.
    #[serde(default = "d_stride")]
    pub stride: usize,
    /// Windows scored per prompt at most (the rest of a longer prompt is not read by this
    /// layer; layers 1–3 still read all of it). Default 8.
    #[serde(default = "d_max_chunks")]
    pub max_chunks: usize,
    /// Probability of the injection class at or above which this layer fires. Default 0.5.
    #[serde(default = "d_threshold")]
    pub threshold: f32,
}

fn d_label() -> usize {
    1
}
fn d_max_tokens() -> usize {
    512
}
fn d_stride() -> usize {
    64
}
fn d_max_chunks() -> usize {
    8
}
fn d_threshold() -> f32 {
    0.5
}

type Plan = Arc<TypedRunnableModel>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    Ids,
    Mask,
    TypeIds,
}

/// A loaded classifier; cheap to share between guards.
pub struct OnnxClassifier {
    config: OnnxConfig,
    tokenizer: Tokenizer,
    plan: Plan,
    feeds: Vec<Feed>,
    pad_id: i64,
    /// Special tokens added to each window.
    added: usize,
    labels: usize,
}

impl std::fmt::Debug for OnnxClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxClassifier")
            .field("model", &self.config.model)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// Largest model and tokenizer files read.
const MAX_MODEL_BYTES: u64 = 2 << 30;
const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if meta.len() > max {
        return Err(format!(
            "{what} {}: {} bytes, more than the {max} allowed",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

impl OnnxClassifier {
    pub fn load(config: &OnnxConfig) -> Result<Arc<OnnxClassifier>, String> {
        if !(3..=8192).contains(&config.max_tokens) {
            return Err(format!("onnx.max_tokens must be 3-8192, got {}", config.max_tokens));
        }
        if !(1..=256).contains(&config.max_chunks) {
            return Err(format!("onnx.max_chunks must be 1-256, got {}", config.max_chunks));
        }
        if !(0.0..=1.0).contains(&config.threshold) {
            return Err(format!("onnx.threshold {} is outside 0..=1", config.threshold));
        }
        let raw = read_bounded(&config.tokenizer, MAX_TOKENIZER_BYTES, "tokenizer")?;
        let mut tokenizer =
            Tokenizer::from_bytes(&raw).map_err(|e| format!("tokenizer {}: {e}", config.tokenizer.display()))?;
        let pad_id = tokenizer.get_padding().map_or(0, |p| i64::from(p.pad_id));
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| format!("tokenizer {}: {e}", config.tokenizer.display()))?;
        // Special tokens the post-processor adds to one sequence ([CLS] … [SEP]: 2).
        let added = tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(false));
        if added + config.stride + 1 > config.max_tokens {
            return Err(format!(
                "onnx.max_tokens ({}) leaves no room beyond the tokenizer's {added} special tokens and the stride",
                config.max_tokens
            ));
        }

        let bytes = read_bounded(&config.model, MAX_MODEL_BYTES, "model")?;
        let n = config.max_tokens;
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || -> TractResult<(Plan, Vec<Feed>, usize)> {
                let mut model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(&bytes))?;
                let mut feeds = Vec::new();
                for i in 0..model.inputs.len() {
                    let name = model.node(model.inputs[i].node).name.clone();
                    let feed = match name.as_str() {
                        "input_ids" => Feed::Ids,
                        "attention_mask" => Feed::Mask,
                        "token_type_ids" => Feed::TypeIds,
                        other => {
                            return Err(TractError::msg(format!(
                                "input `{other}` is not one of input_ids, attention_mask, token_type_ids"
                            )))
                        }
                    };
                    feeds.push(feed);
                    model.set_input_fact(i, InferenceFact::dt_shape(i64::datum_type(), tvec![1, n]))?;
                }
                if !feeds.contains(&Feed::Ids) {
                    return Err(TractError::msg("the model has no `input_ids` input"));
                }
                let typed = model.into_typed()?.into_decluttered()?;
                let out = typed.output_fact(0)?;
                let labels = out
                    .shape
                    .as_concrete()
                    .and_then(|s| s.last().copied())
                    .ok_or_else(|| TractError::msg("the first output has no fixed size"))?;
                let plan = typed.into_optimized()?.into_runnable()?;
                Ok((plan, feeds, labels))
            },
        ));
        let (plan, feeds, labels) = match built {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(format!("model {}: {e}", config.model.display())),
            Err(_) => return Err(format!("model {}: the runtime failed on it", config.model.display())),
        };
        if labels == 0 || (labels > 1 && config.label >= labels) {
            return Err(format!(
                "model {}: onnx.label is {}, but the model has {labels} output classes",
                config.model.display(),
                config.label
            ));
        }
        Ok(Arc::new(OnnxClassifier {
            config: config.clone(),
            tokenizer,
            plan,
            feeds,
            pad_id,
            added,
            labels,
        }))
    }

    pub fn config(&self) -> &OnnxConfig {
        &self.config
    }

    /// The token ids of each window of `text` (special tokens included, unpadded): the
    /// text's tokens cut into runs of `max_tokens` minus the special tokens, each starting
    /// `stride` tokens before the previous one ended, as Hugging Face's
    /// `return_overflowing_tokens` makes them; at most `max_chunks`.
    pub fn windows(&self, text: &str) -> Result<Vec<Vec<u32>>, String> {
        // Tokenize no more text than the windows can hold (a token is rarely longer
        // than 16 bytes; the cut is generous).
        let mut end = text.len().min(self.config.max_chunks * self.config.max_tokens * 16);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut enc = self
            .tokenizer
            .encode(&text[..end], false)
            .map_err(|e| format!("tokenizer: {e}"))?;
        enc.truncate(
            self.config.max_tokens - self.added,
            self.config.stride,
            TruncationDirection::Right,
        );
        let enc = self
            .tokenizer
            .post_process(enc, None, true)
            .map_err(|e| format!("tokenizer: {e}"))?;
        let mut out = vec![enc.get_ids().to_vec()];
        out.extend(
            enc.get_overflowing()
                .iter()
                .take(self.config.max_chunks.saturating_sub(1))
                .map(|o| o.get_ids().to_vec()),
        );
        Ok(out)
    }

    /// The injection probability of one window.
    fn score_window(&self, ids: &[u32]) -> Result<f32, String> {
        let n = self.config.max_tokens;
        let mut input_ids = vec![self.pad_id; n];
        let mut mask = vec![0i64; n];
        for (i, &t) in ids.iter().take(n).enumerate() {
            input_ids[i] = i64::from(t);
            mask[i] = 1;
        }
        let mut inputs: TVec<TValue> = TVec::new();
        for f in &self.feeds {
            let v = match f {
                Feed::Ids => input_ids.clone(),
                Feed::Mask => mask.clone(),
                Feed::TypeIds => vec![0i64; n],
            };
            let t = Tensor::from_shape(&[1, n], &v).map_err(|e| e.to_string())?;
            inputs.push(t.into());
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.plan.run(inputs)));
        let out = match run {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(format!("onnx classifier: {e}")),
            Err(_) => return Err("onnx classifier: the runtime failed on this input".into()),
        };
        let logits: Vec<f32> = out[0]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
            .map_err(|e| format!("onnx classifier output: {e}"))?;
        if logits.len() != self.labels || logits.iter().any(|v| !v.is_finite()) {
            return Err("onnx classifier: unexpected output".into());
        }
        Ok(if self.labels == 1 {
            1.0 / (1.0 + (-logits[0]).exp())
        } else {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = logits.iter().map(|v| (v - max).exp()).sum();
            (logits[self.config.label] - max).exp() / sum
        })
    }

    /// The highest injection probability over the windows of `text`, and each window's.
    pub fn score(&self, text: &str) -> Result<(f32, Vec<f32>), String> {
        let mut each = Vec::new();
        for w in self.windows(text)? {
            each.push(self.score_window(&w)?);
        }
        let best = each.iter().copied().fold(0.0f32, f32::max);
        Ok((best, each))
    }
}
