//! The protobuf payload filter and the ONNX and TensorFlow decoders and checks on
//! arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::{FileReport, Location};
use palisade_scan::formats::{onnx, pbstrip, tensorflow};

fuzz_target!(|data: &[u8]| {
    let mut report = FileReport::new("fuzz", data.len() as u64);
    for (schema, root) in [
        (pbstrip::ONNX, 0),
        (pbstrip::TENSORFLOW, 0),
        (pbstrip::TENSORFLOW, pbstrip::TF_GRAPHDEF),
    ] {
        if let Ok(stripped) = pbstrip::strip(&mut &data[..], schema, root) {
            assert!(stripped.len() <= data.len() + 16 * 1024);
        }
    }
    if let Some(m) = onnx::decode(data) {
        onnx::check(&m, None, &Location::new("fuzz"), &mut report);
    }
    if let Some(g) = tensorflow::decode(data) {
        tensorflow::check(&g, &Location::new("fuzz"), &mut report);
    }
});
