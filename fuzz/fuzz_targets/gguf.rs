//! The GGUF header parser (chat-template analysis, metadata for the BOM) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::{FileReport, Location};
use palisade_scan::{Budget, ScanCtx, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let opts = ScanOptions::default();
    let budget = Budget::new(std::time::Duration::from_secs(5));
    let ctx = ScanCtx::root(&opts, &budget, None);
    let mut report = FileReport::new("fuzz", data.len() as u64);
    let mut input = b"GGUF".to_vec();
    input.extend_from_slice(data);
    let mut r: &[u8] = &input;
    palisade_scan::formats::gguf::scan(
        &mut r,
        Some(input.len() as u64),
        &Location::new("fuzz"),
        &ctx,
        &mut report,
    );
    // The AI-BOM's metadata reader walks the same header.
    let mut r: &[u8] = &input;
    let _ = palisade_scan::formats::gguf::describe(&mut r, Some(input.len() as u64));
});
