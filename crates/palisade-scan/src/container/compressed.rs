//! gzip and zlib streams (joblib's `compress=` formats): decompressed on the fly and
//! scanned as a stream.

use std::io::{BufRead, BufReader, Read};

use flate2::bufread::{GzDecoder, ZlibDecoder};
use palisade_core::{FileReport, Location};

use crate::{Kind, ScanCtx};

pub fn scan(kind: Kind, r: &mut dyn BufRead, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    if ctx.too_deep(report, "compressed stream") {
        return;
    }
    let (name, mut decoder): (&str, Box<dyn Read + '_>) = match kind {
        Kind::Gzip => ("gzip", Box::new(GzDecoder::new(r))),
        _ => ("zlib", Box::new(ZlibDecoder::new(r))),
    };
    // Probe: a stream that does not decompress is not this format.
    let mut probe = [0u8; 1];
    match decoder.read(&mut probe) {
        Ok(1) => {}
        Ok(_) | Err(_) => return,
    }
    report.add_format(name);
    let inner = loc.member(format!("{name} stream"));
    let mut chained = BufReader::new(std::io::Cursor::new(probe.to_vec()).chain(decoder));
    crate::scan_stream(&mut chained, &inner, &ctx.deeper(), report);
}
