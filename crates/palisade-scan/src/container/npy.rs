//! NumPy `.npy`: magic `\x93NUMPY`, version, a little-endian header length (2 bytes in
//! v1, 4 in v2/v3), a Python-literal header dict, then the data. Object arrays store a
//! pickle as their data (numpy `lib/format.py`).

use std::io::{BufRead, Read};

use palisade_core::{FileReport, Finding, Location};

use crate::{pickle, rules, ScanCtx};

/// numpy itself refuses headers over 10,000 bytes unless `allow_pickle`; we bound at 1 MiB.
const MAX_HEADER: u64 = 1 << 20;

pub fn scan(r: &mut dyn BufRead, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    report.add_format("npy");
    let mut fixed = [0u8; 8];
    if r.read_exact(&mut fixed).is_err() {
        report.mark_incomplete("truncated .npy header");
        return;
    }
    let major = fixed[6];
    let len = match major {
        1 => {
            let mut b = [0u8; 2];
            if r.read_exact(&mut b).is_err() {
                report.mark_incomplete("truncated .npy header");
                return;
            }
            u64::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            if r.read_exact(&mut b).is_err() {
                report.mark_incomplete("truncated .npy header");
                return;
            }
            u64::from(u32::from_le_bytes(b))
        }
        v => {
            report.mark_incomplete(format!("unsupported .npy format version {v}"));
            return;
        }
    };
    if len > MAX_HEADER {
        report.mark_incomplete(format!(
            ".npy header of {len} bytes exceeds the {MAX_HEADER} byte limit"
        ));
        return;
    }
    let mut header = Vec::new();
    if (&mut *r)
        .take(len)
        .read_to_end(&mut header)
        .map_or(true, |n| n as u64 != len)
    {
        report.mark_incomplete("truncated .npy header");
        return;
    }
    let header = String::from_utf8_lossy(&header);
    let Some(descr) = descr_of(&header) else {
        report.mark_incomplete(".npy header has no readable 'descr'");
        return;
    };
    if !descr.contains('O') {
        return;
    }
    let data_start = 6 + 2 + if major == 1 { 2 } else { 4 } + len;
    report.findings.push(
        Finding::new(
            &rules::NPY001,
            loc.at(data_start),
            "NumPy array with an object dtype: its data is a pickle that `numpy.load(allow_pickle=True)` runs",
        )
        .with_evidence(format!("descr {descr}")),
    );
    pickle::scan_stream(r, data_start, &loc.member("object array data"), ctx, report);
}

/// The value of `'descr'` in the header dict, as written (a quoted string or a list).
fn descr_of(header: &str) -> Option<String> {
    let start = header.find("'descr'").or_else(|| header.find("\"descr\""))? + 7;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('[') {
        // A structured dtype: up to the matching bracket.
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        end
    } else {
        // A Python string literal: only ASCII quotes delimit it.
        let quote = rest.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        rest[1..].find(quote)? + 2
    };
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::descr_of;

    #[test]
    fn descr_forms() {
        assert_eq!(
            descr_of("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }").as_deref(),
            Some("'<f4'")
        );
        assert_eq!(
            descr_of("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }").as_deref(),
            Some("'|O'")
        );
        assert_eq!(
            descr_of("{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }").as_deref(),
            Some("[('a', '<i4'), ('b', '|O')]")
        );
        assert_eq!(descr_of("{'shape': ()}"), None);
    }

    /// Found by the `zip_container` fuzz target: a multi-byte character where the quote
    /// should be sliced the header mid-character.
    #[test]
    fn npy_descr_with_multibyte_quote() {
        assert_eq!(descr_of("{'descr': \u{643}\u{530}, 'shape': (3,)}"), None);
    }
}
