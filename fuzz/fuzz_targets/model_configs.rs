//! Keras model configurations (v3 `config.json`, HDF5 `model_config` extraction) and
//! Hugging Face JSON configs on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::{FileReport, Location};

fuzz_target!(|data: &[u8]| {
    let mut report = FileReport::new("fuzz", data.len() as u64);
    let policy = palisade_scan::Policy::default();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        palisade_scan::formats::keras::check_config(&v, &policy, &Location::new("fuzz"), &mut report);
    }
    if let Some(v) = palisade_scan::formats::keras::find_h5_model_config(data) {
        palisade_scan::formats::keras::check_config(&v, &policy, &Location::new("fuzz"), &mut report);
    }
    let mut r: &[u8] = data;
    palisade_scan::formats::hfconfig::scan(&mut r, &Location::new("fuzz"), &mut report);
});
