//! The safetensors header checks on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::{FileReport, Location};
use palisade_scan::{Budget, ScanCtx, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let opts = ScanOptions::default();
    let budget = Budget::new(std::time::Duration::from_secs(5));
    let ctx = ScanCtx::root(&opts, &budget, None);
    let mut report = FileReport::new("fuzz", data.len() as u64);
    let mut cursor = std::io::Cursor::new(data);
    palisade_scan::formats::safetensors::scan(
        &mut cursor,
        data.len() as u64,
        &Location::new("fuzz"),
        &ctx,
        &mut report,
    );
});
