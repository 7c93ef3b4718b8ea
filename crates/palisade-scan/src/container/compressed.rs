//! Compressed streams: gzip, zlib (joblib's `compress=` formats, and its pre-0.10
//! "Z-file": `ZF`, the uncompressed length in hex left-justified to 19 bytes, then zlib —
//! joblib's `numpy_pickle_compat.py`), bzip2, xz and zstd. Decompressed on the fly
//! through a guard that stops decompression bombs, and scanned as a stream.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use flate2::bufread::{GzDecoder, ZlibDecoder};
use palisade_core::{FileReport, Finding, Location};

use crate::{rules, Kind, ScanCtx};

/// Expansion ratio above which decompressed data is a bomb (once past `BOMB_FLOOR`).
pub const BOMB_RATIO: u64 = 100;
/// Below this many decompressed bytes nothing is a bomb.
pub const BOMB_FLOOR: u64 = 64 << 20;

/// Counts decompressed bytes and fails the read once they pass `limit`.
pub struct BombGuard<R> {
    inner: R,
    count: u64,
    limit: u64,
    tripped: Rc<Cell<bool>>,
}

impl<R> BombGuard<R> {
    pub fn new(inner: R, limit: u64) -> (Self, Rc<Cell<bool>>) {
        let tripped = Rc::new(Cell::new(false));
        (
            BombGuard {
                inner,
                count: 0,
                limit,
                tripped: tripped.clone(),
            },
            tripped,
        )
    }
}

impl<R: Read> Read for BombGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.count > self.limit {
            self.tripped.set(true);
            return Err(io::Error::other(format!(
                "decompressed data exceeds {} bytes",
                self.limit
            )));
        }
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// The most a stream of `compressed` bytes may expand to before it is treated as a bomb.
pub fn bomb_limit(compressed: Option<u64>, ctx: &ScanCtx) -> u64 {
    match compressed {
        Some(c) => c
            .saturating_mul(BOMB_RATIO)
            .max(BOMB_FLOOR)
            .min(ctx.opts.limits.max_decompressed),
        None => ctx.opts.limits.max_decompressed,
    }
}

pub fn bomb_finding(report: &mut FileReport, loc: &Location, what: &str, limit: u64, compressed: Option<u64>) {
    let ratio = compressed.map_or(String::new(), |c| format!(" from {c} compressed bytes"));
    report.findings.push(Finding::new(
        &rules::ARC004,
        loc.clone(),
        format!("{what} expands past {limit} bytes{ratio}: a decompression bomb (stopped there)"),
    ));
    report.mark_incomplete(format!("{loc}: decompression stopped at {limit} bytes"));
}

pub fn scan(
    kind: Kind,
    r: &mut dyn BufRead,
    compressed: Option<u64>,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) {
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
    let (name, decoder): (&str, Box<dyn Read + '_>) = match kind {
        Kind::Gzip => ("gzip", Box::new(GzDecoder::new(r))),
        Kind::JoblibZfile => ("joblib-zfile", Box::new(ZlibDecoder::new(r))),
        Kind::Bzip2 => ("bzip2", Box::new(bzip2::bufread::MultiBzDecoder::new(r))),
        Kind::Xz => ("xz", Box::new(lzma_rust2::XzReader::new(r, true))),
        Kind::Zstd => match ruzstd::decoding::StreamingDecoder::new(r) {
            Ok(d) => ("zstd", Box::new(d)),
            Err(_) => return,
        },
        _ => ("zlib", Box::new(ZlibDecoder::new(r))),
    };
    let limit = bomb_limit(compressed, ctx);
    let (mut guarded, tripped) = BombGuard::new(decoder, limit);
    // Probe: a stream that does not decompress is not this format.
    let mut probe = [0u8; 1];
    match guarded.read(&mut probe) {
        Ok(1) => {}
        Ok(_) | Err(_) => return,
    }
    report.add_format(name);
    let inner = loc.member(format!("{name} stream"));
    let mut chained = BufReader::new(std::io::Cursor::new(probe.to_vec()).chain(guarded));
    crate::scan_stream(&mut chained, &inner, &ctx.deeper(), report);
    // Drain what the scanners did not read, so bombs are measured, not skipped.
    let _ = io::copy(&mut chained, &mut io::sink());
    if tripped.get() {
        bomb_finding(report, loc, &format!("the {name} stream"), limit, compressed);
    }
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
    fn gzip_bomb_is_stopped() {
        let mut g = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            g.write_all(&zeros).unwrap();
        }
        let bomb = g.finish().unwrap();
        assert!(bomb.len() < 200_000);
        assert_eq!(codes(&bomb).0, vec!["ARC004".to_owned()]);
    }

    #[test]
    fn not_really_zlib_is_not_reported() {
        // 'x' + a valid zlib header checksum, then text.
        assert_eq!(codes(b"x^ this is not compressed"), (vec![], vec![]));
    }
}
