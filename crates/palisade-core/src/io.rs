//! Small I/O helpers shared by the stage crates.

use std::io::Read;

/// Fills `buf` as far as the reader allows, retrying short and interrupted reads; returns
/// the number of bytes read (less than `buf.len()` only at end of input).
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
