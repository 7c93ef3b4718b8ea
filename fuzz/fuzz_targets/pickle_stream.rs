//! The pickle engine (decoder + symbolic machine + driver) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::{FileReport, Location};
use palisade_scan::{Budget, ScanCtx, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let opts = ScanOptions::default();
    let budget = Budget::new(std::time::Duration::from_secs(5));
    let ctx = ScanCtx::root(&opts, &budget, None);
    let mut report = FileReport::new("fuzz", data.len() as u64);
    palisade_scan::pickle::scan_stream(data, 0, &Location::new("fuzz"), &ctx, &mut report);
    // Sniffing must agree with itself and never panic either.
    let _ = palisade_scan::pickle::sniff(&data[..data.len().min(4096)], &opts.policy);
});
