//! 7z archives, read with `sevenz-rust2` (no passwords: encrypted entries are reported
//! incomplete). Entry names are checked for traversal; every entry is sniffed and
//! scanned as a stream through the decompression-bomb guard.

use std::io::BufReader;

use palisade_core::{FileReport, Location};

use super::compressed::{bomb_finding, bomb_limit, BombGuard};
use crate::{ReadSeek, ScanCtx};

pub fn scan(r: &mut dyn ReadSeek, size: u64, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    if ctx.too_deep(report, "7z archive") {
        return;
    }
    report.add_format("7z");
    let _ = r.rewind();
    let mut archive = match sevenz_rust2::ArchiveReader::new(r, sevenz_rust2::Password::empty()) {
        Ok(a) => a,
        Err(e) => {
            report.mark_incomplete(format!("unreadable 7z archive: {e}"));
            return;
        }
    };
    let limit = bomb_limit(Some(size), ctx);
    let mut total = 0u64;
    let inner = ctx.deeper();
    let result = archive.for_each_entries(|entry, reader| {
        let mloc = loc.member(entry.name.clone());
        super::path_finding(report, &mloc, &entry.name);
        if entry.is_directory || !entry.has_stream {
            return Ok(true);
        }
        if let Some(reason) = ctx.budget.exhausted() {
            report.mark_incomplete(reason);
            return Ok(false);
        }
        let (guarded, tripped) = BombGuard::new(reader, limit.saturating_sub(total));
        let mut buffered = BufReader::new(guarded);
        crate::scan_stream(&mut buffered, &mloc, &inner, report);
        let drained = std::io::copy(&mut buffered, &mut std::io::sink()).unwrap_or(0);
        total += drained;
        if tripped.get() {
            bomb_finding(report, loc, "the 7z archive", limit, Some(size));
            return Ok(false);
        }
        Ok(true)
    });
    if let Err(e) = result {
        report.mark_incomplete(format!("7z archive: {e}"));
    }
}
