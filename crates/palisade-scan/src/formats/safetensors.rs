//! safetensors: an 8-byte little-endian header length, a JSON header mapping tensor names
//! to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` of strings), then
//! the data buffer. Checks follow the reference implementation's own validation
//! (`safetensors/src/tensor.rs`): the header fits the file and Hugging Face's 100 MB
//! limit, is a JSON object without duplicate keys, every tensor's byte length matches
//! dtype × shape, and the ranges tile the buffer with no overlap, hole or overrun.
//! Tensor data is never read.

use std::collections::HashSet;
use std::fmt;
use std::io::{Read, SeekFrom};

use palisade_core::{FileReport, Finding, Location};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::{rules, ReadSeek, ScanCtx};

/// Hugging Face refuses headers larger than this (`MAX_HEADER_SIZE` in safetensors).
pub const MAX_HEADER: u64 = 100_000_000;

/// Does this look like a safetensors file? An 8-byte length then `{`.
pub fn sniff(head: &[u8]) -> bool {
    head.len() >= 10 && head[8] == b'{' && u64::from_le_bytes(head[..8].try_into().unwrap_or([0xff; 8])) >= 2
}

/// A JSON object read as its entries in order, duplicates kept.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Bytes per element; `None` for sub-byte or unknown dtypes (sizes checked in bits).
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

struct Tensor {
    name: String,
    begin: u64,
    end: u64,
}

pub fn scan(r: &mut dyn ReadSeek, size: u64, loc: &Location, _ctx: &ScanCtx, report: &mut FileReport) {
    report.add_format("safetensors");
    let bad_header = |report: &mut FileReport, msg: String, evidence: Option<String>| {
        let mut f = Finding::new(&rules::SFT001, loc.clone(), msg);
        if let Some(e) = evidence {
            f = f.with_evidence(e);
        }
        report.findings.push(f);
    };
    let mut len8 = [0u8; 8];
    if r.seek(SeekFrom::Start(0)).is_err() || r.read_exact(&mut len8).is_err() {
        bad_header(report, "file is too short for a safetensors header".to_owned(), None);
        return;
    }
    let n = u64::from_le_bytes(len8);
    if n > MAX_HEADER {
        bad_header(
            report,
            format!("header length {n} exceeds the 100 MB limit Hugging Face enforces"),
            Some(format!("file is {size} bytes")),
        );
        return;
    }
    if n.saturating_add(8) > size {
        bad_header(
            report,
            format!("header length {n} runs past the end of the {size}-byte file"),
            None,
        );
        return;
    }
    let mut header = Vec::with_capacity(n as usize);
    if r.take(n).read_to_end(&mut header).map_or(true, |got| got as u64 != n) {
        report.mark_incomplete("read error in safetensors header");
        return;
    }
    let entries = match std::str::from_utf8(&header)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str::<Entries>(s).map_err(|e| e.to_string()))
    {
        Ok(e) => e.0,
        Err(e) => {
            bad_header(report, format!("header is not a valid JSON object: {e}"), None);
            return;
        }
    };
    let buffer = size - 8 - n;
    let mut seen = HashSet::new();
    let mut tensors = Vec::new();
    let layout = |report: &mut FileReport, msg: String| {
        report.findings.push(Finding::new(&rules::SFT002, loc.at(8), msg));
    };
    for (name, value) in entries {
        if !seen.insert(name.clone()) {
            bad_header(
                report,
                format!("key `{name}` appears more than once; parsers disagree on which one wins"),
                None,
            );
            continue;
        }
        if name == "__metadata__" {
            match value.as_object() {
                Some(meta) => {
                    for (k, v) in meta {
                        if !v.is_string() {
                            let mut ev = v.to_string();
                            ev.truncate(120);
                            report.findings.push(
                                Finding::new(
                                    &rules::SFT003,
                                    loc.at(8),
                                    format!("`__metadata__` value `{k}` is not a string"),
                                )
                                .with_evidence(ev),
                            );
                        }
                    }
                }
                None => report.findings.push(Finding::new(
                    &rules::SFT003,
                    loc.at(8),
                    "`__metadata__` is not an object of strings".to_owned(),
                )),
            }
            continue;
        }
        let Some(obj) = value.as_object() else {
            layout(report, format!("tensor `{name}` is not an object"));
            continue;
        };
        let dtype = obj.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
        let shape: Option<Vec<u64>> = obj
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        let offsets: Option<Vec<u64>> = obj
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        let (Some(shape), Some([begin, end])) = (shape, offsets.as_deref()) else {
            layout(report, format!("tensor `{name}` lacks a valid shape or data_offsets"));
            continue;
        };
        let (begin, end) = (*begin, *end);
        let Some(bits) = dtype_bits(dtype) else {
            layout(report, format!("tensor `{name}` has unknown dtype `{dtype}`"));
            continue;
        };
        let expected = shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .and_then(|n| n.checked_mul(bits))
            .map(|b| b.div_ceil(8));
        if end < begin {
            layout(
                report,
                format!("tensor `{name}` has data_offsets [{begin}, {end}] that run backwards"),
            );
            continue;
        }
        if expected != Some(end - begin) {
            layout(
                report,
                format!(
                    "tensor `{name}` ({dtype} {shape:?}) needs {} bytes but data_offsets give {}",
                    expected.map_or("an overflowing number of".to_owned(), |e| e.to_string()),
                    end - begin
                ),
            );
        }
        if end > buffer {
            layout(
                report,
                format!("tensor `{name}` ends at byte {end} of a {buffer}-byte data buffer"),
            );
        }
        tensors.push(Tensor { name, begin, end });
    }
    tensors.sort_by_key(|t| (t.begin, t.end));
    let mut cursor = 0u64;
    for t in &tensors {
        if t.begin < cursor {
            layout(
                report,
                format!("tensor `{}` overlaps the previous tensor's data", t.name),
            );
        } else if t.begin > cursor {
            layout(
                report,
                format!(
                    "{} unreferenced bytes before tensor `{}` (a hole in the data buffer)",
                    t.begin - cursor,
                    t.name
                ),
            );
        }
        cursor = cursor.max(t.end);
    }
    if cursor < buffer && !tensors.is_empty() {
        layout(
            report,
            format!(
                "{} bytes after the last tensor are not referenced by the header",
                buffer - cursor
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{scan_bytes, ScanOptions};

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data_len));
        out
    }

    fn findings(bytes: &[u8]) -> Vec<(String, String)> {
        let r = scan_bytes(bytes, "t", &ScanOptions::default());
        assert_eq!(r.formats, vec!["safetensors"]);
        r.findings.into_iter().map(|f| (f.code, f.message)).collect()
    }

    #[test]
    fn valid_file_is_clean() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;
        assert_eq!(findings(&file(h, 22)), vec![]);
    }

    #[test]
    fn layout_problems() {
        let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        let f = findings(&file(overlap, 12));
        assert!(f.iter().any(|(c, m)| c == "SFT002" && m.contains("overlaps")), "{f:?}");
        let hole = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        assert!(findings(&file(hole, 8)).iter().any(|(_, m)| m.contains("hole")));
        let oob = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        assert!(findings(&file(oob, 8))
            .iter()
            .any(|(_, m)| m.contains("ends at byte 16")));
        let mismatch = r#"{"a":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}}"#;
        assert!(findings(&file(mismatch, 16))
            .iter()
            .any(|(_, m)| m.contains("needs 32 bytes")));
    }

    #[test]
    fn header_problems() {
        let dup = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        assert!(findings(&file(dup, 1))
            .iter()
            .any(|(c, m)| c == "SFT001" && m.contains("more than once")));
        let mut big = file(r#"{"a":1}"#, 0);
        big[..8].copy_from_slice(&(200_000_000u64).to_le_bytes());
        assert!(findings(&big).iter().any(|(_, m)| m.contains("100 MB")));
        let mut past = file(r#"{"a":1}"#, 0);
        past[..8].copy_from_slice(&(5_000u64).to_le_bytes());
        assert!(findings(&past).iter().any(|(_, m)| m.contains("past the end")));
        assert!(findings(&file("{not json", 0))
            .iter()
            .any(|(_, m)| m.contains("not a valid JSON")));
        let meta = r#"{"__metadata__":{"x":{"nested":1}}}"#;
        assert!(findings(&file(meta, 0)).iter().any(|(c, _)| c == "SFT003"));
    }
}
