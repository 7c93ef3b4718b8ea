//! The whole scanner — sniffing, every container (zip, tar, gzip, zlib, npy) and the
//! pickle engine — on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_scan::ScanOptions;

fuzz_target!(|data: &[u8]| {
    let report = palisade_scan::scan_bytes(data, "fuzz", &ScanOptions::default());
    assert!(report.size == data.len() as u64);
});
