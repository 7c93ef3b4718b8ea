//! The minimal HDF5 reader (superblock, object headers, attributes, global heap).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = b"\x89HDF\r\n\x1a\n".to_vec();
    input.extend_from_slice(data);
    let len = input.len() as u64;
    let _ = palisade_scan::formats::hdf5::root_attributes(&mut std::io::Cursor::new(input), len);
});
