//! The ONNX and TensorFlow protobuf decoders and their checks on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::{FileReport, Location};

fuzz_target!(|data: &[u8]| {
    let mut report = FileReport::new("fuzz", data.len() as u64);
    if let Some(m) = palisade_scan::formats::onnx::decode(data) {
        palisade_scan::formats::onnx::check(&m, None, &Location::new("fuzz"), &mut report);
    }
    if let Some(g) = palisade_scan::formats::tensorflow::decode(data) {
        palisade_scan::formats::tensorflow::check(&g, &Location::new("fuzz"), &mut report);
    }
});
