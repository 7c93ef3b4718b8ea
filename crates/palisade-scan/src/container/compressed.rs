//! gzip and zlib streams (joblib's `compress=` formats, and its pre-0.10 "Z-file": `ZF`,
//! the uncompressed length in hex left-justified to 19 bytes, then zlib — joblib's
//! `numpy_pickle_compat.py`): decompressed on the fly and scanned as a stream.

use std::io::{BufRead, BufReader, Read};

use flate2::bufread::{GzDecoder, ZlibDecoder};
use palisade_core::{FileReport, Location};

use crate::{Kind, ScanCtx};

pub fn scan(kind: Kind, r: &mut dyn BufRead, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    if ctx.too_deep(report, "compressed stream") {
        return;
    }
    if kind == Kind::JoblibZfile {
        // Skip the prefix up to the zlib header (old Python 2 writers added one space).
        let mut prefix = [0u8; 21];
        if r.read_exact(&mut prefix).is_err() {
            return;
        }
        if r.fill_buf().ok().and_then(|b| b.first().copied()) == Some(b' ') {
            r.consume(1);
        }
    }
    let (name, mut decoder): (&str, Box<dyn Read + '_>) = match kind {
        Kind::Gzip => ("gzip", Box::new(GzDecoder::new(r))),
        Kind::JoblibZfile => ("joblib-zfile", Box::new(ZlibDecoder::new(r))),
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;

    use crate::{scan_bytes, ScanOptions};

    const PAYLOAD: &[u8] = b"\x80\x02cos\nsystem\nq\x00X\x01\x00\x00\x00xq\x01\x85q\x02Rq\x03.";

    fn codes(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
        let r = scan_bytes(bytes, "t", &ScanOptions::default());
        (r.findings.iter().map(|f| f.code.clone()).collect(), r.formats)
    }

    #[test]
    fn zlib_gzip_and_zfile_payloads_are_found() {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(PAYLOAD).unwrap();
        let zlib = z.finish().unwrap();
        assert_eq!(
            codes(&zlib),
            (vec!["PKL001".to_owned()], vec!["zlib".to_owned(), "pickle".to_owned()])
        );

        let mut g = GzEncoder::new(Vec::new(), Compression::default());
        g.write_all(PAYLOAD).unwrap();
        assert_eq!(codes(&g.finish().unwrap()).0, vec!["PKL001".to_owned()]);

        let mut zfile = format!("ZF{:<19}", format!("{:#x}", PAYLOAD.len())).into_bytes();
        zfile.extend_from_slice(&zlib);
        assert_eq!(
            codes(&zfile),
            (
                vec!["PKL001".to_owned()],
                vec!["joblib-zfile".to_owned(), "pickle".to_owned()]
            )
        );
    }

    #[test]
    fn not_really_zlib_is_not_reported() {
        // 'x' + a valid zlib header checksum, then text.
        assert_eq!(codes(b"x^ this is not compressed"), (vec![], vec![]));
    }
}
