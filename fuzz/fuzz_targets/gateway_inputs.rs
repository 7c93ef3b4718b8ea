//! Hostile Open Inference Protocol bodies: the JSON depth check on the raw bytes, then
//! request tensors validated against real ONNX signatures (iris: dynamic batch with a data
//! profile; multi_input: two fixed-shape inputs of different types) and, when valid, run
//! through tract. Nothing may panic, hang or allocate without bound.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade_gateway::onnx::{InputTensor, OnnxModel, Profile};

fn models() -> &'static [OnnxModel] {
    static MODELS: OnceLock<Vec<OnnxModel>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/palisade-gateway/tests/fixtures/");
        let read = |f: &str| std::fs::read(format!("{dir}{f}")).unwrap_or_default();
        let profile: Option<Profile> = serde_json::from_slice(&read("iris_mlp.profile.json")).ok();
        [("iris_mlp.onnx", profile), ("multi_input.onnx", None)]
            .into_iter()
            .filter_map(|(f, p)| OnnxModel::load(&read(f), p).ok())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if palisade_gateway::limits::check_depth(data, 64).is_err() {
        return;
    }
    let Ok(inputs) = serde_json::from_slice::<Vec<InputTensor>>(data) else {
        return;
    };
    for m in models() {
        let _ = m.infer(&inputs, &[], 16, true);
    }
});
