//! Layer 4: a real ONNX classifier and Hugging Face tokenizer (made by
//! `tests/fixtures/onnx/gen_classifier.py`) against the reference outputs of Hugging Face
//! `tokenizers` (the windows of a long prompt) and onnxruntime (each window's
//! probability), then inside the guard.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use palisade_guard::onnx::{OnnxClassifier, OnnxConfig};
use palisade_guard::verdict::Layer;
use palisade_guard::{Guard, GuardConfig};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn config() -> OnnxConfig {
    let e = expected();
    OnnxConfig {
        model: fixture("classifier.onnx"),
        tokenizer: fixture("tokenizer.json"),
        label: 1,
        max_tokens: e["max_tokens"].as_u64().unwrap() as usize,
        stride: e["stride"].as_u64().unwrap() as usize,
        max_chunks: 64,
        threshold: 0.5,
    }
}

#[test]
fn windows_and_probabilities_match_hugging_face_tokenizers_and_onnxruntime() {
    let c = OnnxClassifier::load(&config()).unwrap();
    let e = expected();
    let cases = e["cases"].as_array().unwrap();
    assert!(
        cases.iter().any(|c| c["windows"].as_array().unwrap().len() > 3),
        "no long prompt"
    );
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<Vec<u32>> = serde_json::from_value(case["windows"].clone()).unwrap();
        assert_eq!(c.windows(text).unwrap(), want, "{text:?}");
        let (best, each) = c.score(text).unwrap();
        let probs: Vec<f64> = serde_json::from_value(case["probabilities"].clone()).unwrap();
        assert_eq!(each.len(), probs.len());
        for (got, want) in each.iter().zip(&probs) {
            assert!(
                (f64::from(*got) - want).abs() < 1e-4,
                "{text:?}: {got} vs onnxruntime {want}"
            );
        }
        let top = probs.iter().copied().fold(0.0, f64::max);
        assert!((f64::from(best) - top).abs() < 1e-4);
    }
}

#[test]
fn the_guard_reports_the_onnx_layer_for_an_attack_at_the_end_of_a_long_prompt() {
    let e = expected();
    let long = e["cases"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|c| c["windows"].as_array().unwrap().len())
        .unwrap();
    let text = long["text"].as_str().unwrap();
    let probs: Vec<f64> = serde_json::from_value(long["probabilities"].clone()).unwrap();
    // The attack is in the last window only.
    assert!(*probs.last().unwrap() >= 0.5 && probs[..probs.len() - 1].iter().all(|p| *p < 0.5));

    let mut cfg = GuardConfig::default();
    cfg.injection.onnx = Some(config());
    let guard = Guard::from_config(&cfg).unwrap();
    let v = guard.check_input(text);
    let onnx: Vec<_> = v.detections.iter().filter(|d| d.layer == Layer::Onnx).collect();
    assert_eq!(onnx.len(), 1, "{:?}", v.detections);
    assert!((f64::from(onnx[0].score) - probs.last().unwrap()).abs() < 1e-4);
    assert!(v.injection_score >= onnx[0].score);
    let benign = guard.check_input("What is the capital of France?");
    assert!(
        benign.detections.iter().all(|d| d.layer != Layer::Onnx),
        "{:?}",
        benign.detections
    );

    // With fewer windows than the prompt needs, the layer does not read the end.
    let mut few = config();
    few.max_chunks = 3;
    let c = OnnxClassifier::load(&few).unwrap();
    assert_eq!(c.windows(text).unwrap().len(), 3);
    assert!(c.score(text).unwrap().0 < 0.5);
}

#[test]
fn bad_files_and_settings_are_clear_errors() {
    let err = |c: OnnxConfig| OnnxClassifier::load(&c).unwrap_err();
    let mut c = config();
    c.model = fixture("missing.onnx");
    assert!(err(c).contains("missing.onnx"));
    let mut c = config();
    c.tokenizer = fixture("expected.json");
    assert!(err(c).starts_with("tokenizer"));
    let mut c = config();
    c.stride = c.max_tokens;
    assert!(err(c).contains("leaves no room"));
    let mut c = config();
    c.label = 2;
    assert!(err(c).contains("2 output classes"));
    // A model that is not a text classifier (the gateway's iris MLP takes floats).
    let mut c = config();
    c.model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../palisade-gateway/tests/fixtures/iris_mlp.onnx");
    assert!(err(c).contains("is not one of input_ids"));
    let mut c = config();
    c.model = fixture("tokenizer.json");
    assert!(err(c).starts_with("model"));
}
