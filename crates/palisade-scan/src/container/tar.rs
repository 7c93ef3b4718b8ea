//! tar archives (the legacy PyTorch tar format: `sys_info`, `pickle`, `storages`,
//! `tensors`). Every regular member is sniffed and scanned as a stream.

use std::io::{BufRead, BufReader};

use palisade_core::{FileReport, Location};

use crate::ScanCtx;

/// Members beyond this count are not scanned (the report is marked incomplete).
const MAX_MEMBERS: usize = 100_000;

pub fn scan(r: &mut dyn BufRead, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    if ctx.too_deep(report, "tar archive") {
        return;
    }
    report.add_format("tar");
    let mut archive = tar::Archive::new(r);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            report.mark_incomplete(format!("unreadable tar archive: {e}"));
            return;
        }
    };
    let mut legacy_torch = false;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_MEMBERS {
            report.mark_incomplete(format!("more than {MAX_MEMBERS} tar members"));
            return;
        }
        if let Some(reason) = ctx.budget.exhausted() {
            report.mark_incomplete(reason);
            return;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                report.mark_incomplete(format!("tar archive breaks after {i} members: {e}"));
                return;
            }
        };
        let printable = |bytes: &[u8]| -> String {
            bytes
                .iter()
                .map(|b| {
                    if b.is_ascii_graphic() || *b == b' ' {
                        char::from(*b)
                    } else {
                        '?'
                    }
                })
                .collect()
        };
        let name = printable(&entry.path_bytes());
        let mloc = loc.member(name.clone());
        super::path_finding(report, &mloc, &name);
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name_bytes().map(|t| printable(&t)).unwrap_or_default();
            // Hard link targets are archive paths (resolved from the root); symlink targets
            // are relative to the link's directory.
            let from = if kind.is_hard_link() { "x" } else { name.as_str() };
            let what = if kind.is_symlink() {
                "symbolic link"
            } else {
                "hard link"
            };
            super::link_finding(report, &mloc, from, &target, what);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let member = mloc;
        // The legacy PyTorch tar layout starts with `sys_info`.
        legacy_torch |= i == 0 && name == "sys_info";
        if legacy_torch && (name == "storages" || name == "tensors") {
            report.add_format("pytorch-legacy-tar");
            crate::pickle::scan_legacy_tar_member(
                BufReader::new(entry),
                name == "storages",
                &member,
                &ctx.deeper(),
                report,
            );
        } else {
            crate::scan_stream(&mut BufReader::new(entry), &member, &ctx.deeper(), report);
        }
    }
}
