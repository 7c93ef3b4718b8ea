//! GGUF (llama.cpp's model format; `ggml/docs/gguf.md`): magic `GGUF`, a version (1–3),
//! tensor and metadata counts, typed key/value metadata, tensor descriptors, then
//! aligned tensor data. Parsed sequentially with bounds on every count and length; tensor
//! data is never read. Chat templates in the metadata are analysed as Jinja
//! ([`super::template`]).

use std::io::{self, BufRead, Read};

use palisade_core::{FileReport, Finding, Location};

use super::template;
use crate::{rules, ScanCtx};

/// Metadata entries and tensors a file may declare (real models have a few hundred to a
/// few thousand).
const MAX_COUNT: u64 = 1 << 20;
/// Longest string kept in memory (chat templates); longer ones are skipped.
const MAX_KEPT_STRING: u64 = 4 << 20;
/// Longest string accepted at all.
const MAX_STRING: u64 = 1 << 30;
/// `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(b"GGUF")
}

struct Reader<'a> {
    r: &'a mut dyn BufRead,
    pos: u64,
    /// Total size when known (files), for bounds on declared lengths.
    size: Option<u64>,
    version: u32,
}

#[derive(Debug)]
enum Bad {
    Malformed(String),
    Io(io::Error),
}

impl From<io::Error> for Bad {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Bad::Malformed("file ends inside the header".to_owned())
        } else {
            Bad::Io(e)
        }
    }
}

impl Reader<'_> {
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }
    /// A count or length: 32-bit in version 1, 64-bit after.
    fn len(&mut self) -> Result<u64, Bad> {
        if self.version == 1 {
            Ok(u64::from(self.u32()?))
        } else {
            self.u64()
        }
    }
    fn remaining(&self) -> u64 {
        self.size.map_or(u64::MAX, |s| s.saturating_sub(self.pos))
    }
    fn skip(&mut self, n: u64) -> Result<(), Bad> {
        if n > self.remaining() {
            return Err(Bad::Malformed(format!(
                "declares {n} bytes at offset {} past the end of the file",
                self.pos
            )));
        }
        let got = io::copy(&mut (&mut *self.r).take(n), &mut io::sink())?;
        self.pos += got;
        if got < n {
            return Err(Bad::Malformed("file ends inside the header".to_owned()));
        }
        Ok(())
    }
    /// A string; kept when `keep` and short enough, else skipped.
    fn string(&mut self, keep: bool) -> Result<Option<String>, Bad> {
        let n = self.len()?;
        if n > MAX_STRING || n > self.remaining() {
            return Err(Bad::Malformed(format!(
                "string of {n} bytes at offset {} runs past the end of the file",
                self.pos
            )));
        }
        if keep && n <= MAX_KEPT_STRING {
            let mut buf = Vec::with_capacity(n as usize);
            (&mut *self.r).take(n).read_to_end(&mut buf)?;
            self.pos += buf.len() as u64;
            if (buf.len() as u64) < n {
                return Err(Bad::Malformed("file ends inside a string".to_owned()));
            }
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        self.skip(n)?;
        Ok(None)
    }
    /// A metadata value of type `ty`; returns the string when it is one worth keeping.
    fn value(&mut self, ty: u32, keep: bool, depth: u32) -> Result<Option<String>, Bad> {
        let fixed = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return self.string(keep),
            9 => {
                if depth >= 4 {
                    return Err(Bad::Malformed("arrays nested deeper than 4 levels".to_owned()));
                }
                let elem = self.u32()?;
                let count = self.len()?;
                match elem {
                    8 | 9 => {
                        if count > self.remaining() / 8 {
                            return Err(Bad::Malformed(format!("array of {count} items cannot fit in the file")));
                        }
                        for _ in 0..count {
                            self.value(elem, false, depth + 1)?;
                        }
                    }
                    _ => {
                        let size = match elem {
                            0 | 1 | 7 => 1,
                            2 | 3 => 2,
                            4..=6 => 4,
                            10..=12 => 8,
                            other => return Err(Bad::Malformed(format!("unknown array element type {other}"))),
                        };
                        let bytes = count
                            .checked_mul(size)
                            .ok_or_else(|| Bad::Malformed(format!("array of {count} items overflows")))?;
                        self.skip(bytes)?;
                    }
                }
                return Ok(None);
            }
            other => return Err(Bad::Malformed(format!("unknown metadata value type {other}"))),
        };
        if keep {
            let mut b = [0u8; 8];
            let width = fixed as usize;
            self.r
                .read_exact(&mut b[..width])
                .map_err(|_| Bad::Malformed("file ends inside a value".to_owned()))?;
            self.pos += fixed;
            let u = u64::from_le_bytes(b);
            let text = match ty {
                1 => (b[0] as i8).to_string(),
                3 => i16::from_le_bytes([b[0], b[1]]).to_string(),
                5 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
                6 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
                7 => (b[0] != 0).to_string(),
                11 => (u as i64).to_string(),
                12 => f64::from_bits(u).to_string(),
                _ => u.to_string(),
            };
            return Ok(Some(text));
        }
        self.skip(fixed)?;
        Ok(None)
    }
}

/// Name of a GGML tensor type (ggml.h `enum ggml_type`).
fn ggml_type(t: u32) -> String {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
        "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES
        .get(t as usize)
        .map_or_else(|| format!("type{t}"), |s| s.to_string())
}

/// What a GGUF header declares: `general.*` metadata, tensor count, parameters per type.
/// `None` when the header is malformed (the scan reports why).
pub fn describe(r: &mut dyn BufRead, size: Option<u64>) -> Option<palisade_core::facts::ModelFacts> {
    let mut rd = Reader {
        r,
        pos: 0,
        size,
        version: 0,
    };
    let mut facts = palisade_core::facts::ModelFacts {
        format: "gguf".to_owned(),
        ..Default::default()
    };
    rd.fixed::<4>().ok()?;
    rd.version = rd.u32().ok()?;
    if !(1..=3).contains(&rd.version) {
        return None;
    }
    let tensors = rd.len().ok()?;
    let kvs = rd.len().ok()?;
    if tensors > MAX_COUNT || kvs > MAX_COUNT {
        return None;
    }
    for _ in 0..kvs {
        let key = rd.string(true).ok()?.unwrap_or_default();
        let ty = rd.u32().ok()?;
        let keep = key.starts_with("general.") || key.ends_with(".context_length") || key.ends_with(".block_count");
        if let Some(v) = rd.value(ty, keep && ty != 9, 0).ok()? {
            if key == "general.architecture" {
                facts.architecture = Some(v.clone());
            }
            if v.len() <= 1024 {
                facts.properties.insert(key, v);
            }
        }
    }
    let mut params = 0u64;
    for _ in 0..tensors {
        rd.string(false).ok()?;
        let dims = rd.u32().ok()?;
        if dims > MAX_DIMS {
            return None;
        }
        let mut n = 1u64;
        for _ in 0..dims {
            n = n.saturating_mul(rd.u64().ok()?);
        }
        let ty = rd.u32().ok()?;
        rd.u64().ok()?;
        params = params.saturating_add(n);
        let slot = facts.dtypes.entry(ggml_type(ty)).or_default();
        *slot = slot.saturating_add(n);
    }
    facts.tensors = Some(tensors);
    facts.parameters = Some(params);
    Some(facts)
}

pub fn scan(r: &mut dyn BufRead, size: Option<u64>, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    report.add_format("gguf");
    let mut rd = Reader {
        r,
        pos: 0,
        size,
        version: 0,
    };
    match parse(&mut rd, loc, ctx, report) {
        Ok(()) => {}
        Err(Bad::Malformed(msg)) => report.findings.push(Finding::new(&rules::GGF001, loc.at(rd.pos), msg)),
        Err(Bad::Io(e)) => report.mark_incomplete(format!("read error in GGUF header: {e}")),
    }
}

fn parse(rd: &mut Reader, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) -> Result<(), Bad> {
    rd.fixed::<4>()?;
    rd.version = rd.u32()?;
    if !(1..=3).contains(&rd.version) {
        return Err(Bad::Malformed(format!("unsupported GGUF version {}", rd.version)));
    }
    let tensors = rd.len()?;
    let kvs = rd.len()?;
    for (what, n) in [("tensors", tensors), ("metadata entries", kvs)] {
        if n > MAX_COUNT {
            return Err(Bad::Malformed(format!("declares {n} {what} (limit {MAX_COUNT})")));
        }
    }
    for _ in 0..kvs {
        if let Some(reason) = ctx.budget.exhausted() {
            report.mark_incomplete(reason);
            return Ok(());
        }
        let key_pos = rd.pos;
        let key = rd.string(true)?.unwrap_or_default();
        let ty = rd.u32()?;
        let is_template = key == "tokenizer.chat_template" || key.starts_with("tokenizer.chat_template.");
        let value_pos = rd.pos;
        if let Some(tpl) = rd.value(ty, is_template, 0)? {
            check_template(&tpl, &key, &loc.member(format!("metadata `{key}`")), value_pos, report);
        } else if is_template && ty == 8 {
            report.mark_incomplete(format!(
                "chat template `{key}` at offset {key_pos} is larger than {MAX_KEPT_STRING} bytes (not analysed)"
            ));
        }
    }
    for i in 0..tensors {
        rd.string(false)?;
        let dims = rd.u32()?;
        if dims > MAX_DIMS {
            return Err(Bad::Malformed(format!(
                "tensor {i} declares {dims} dimensions (GGML allows {MAX_DIMS})"
            )));
        }
        for _ in 0..dims {
            rd.u64()?;
        }
        rd.u32()?;
        let offset = rd.u64()?;
        if let Some(size) = rd.size {
            if offset > size {
                return Err(Bad::Malformed(format!(
                    "tensor {i} data offset {offset} lies past the end of the file"
                )));
            }
        }
    }
    Ok(())
}

/// Analyses a chat template and reports what it finds.
pub fn check_template(tpl: &str, key: &str, loc: &Location, offset: u64, report: &mut FileReport) {
    let analysis = template::analyze(tpl);
    if !analysis.hits.is_empty() {
        let evidence = analysis
            .hits
            .iter()
            .take(6)
            .map(|h| format!("line {}: {}", h.line, h.what))
            .collect::<Vec<_>>()
            .join("; ");
        report.findings.push(
            Finding::new(
                &rules::GGF002,
                loc.at(offset),
                format!("chat template `{key}` reaches Python internals (server-side template injection)"),
            )
            .with_evidence(evidence),
        );
    }
    if let Some(err) = analysis.parse_error {
        report.findings.push(
            Finding::new(
                &rules::GGF003,
                loc.at(offset),
                format!("chat template `{key}` does not parse as Jinja"),
            )
            .with_evidence(err),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{scan_bytes, ScanOptions};

    fn s(v: &mut Vec<u8>, text: &str) {
        v.extend_from_slice(&(text.len() as u64).to_le_bytes());
        v.extend_from_slice(text.as_bytes());
    }

    fn gguf(template: &str) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes()); // tensors
        v.extend_from_slice(&3u64.to_le_bytes()); // kvs
        s(&mut v, "general.architecture");
        v.extend_from_slice(&8u32.to_le_bytes());
        s(&mut v, "llama");
        s(&mut v, "tokenizer.ggml.tokens");
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&8u32.to_le_bytes());
        v.extend_from_slice(&2u64.to_le_bytes());
        s(&mut v, "<s>");
        s(&mut v, "</s>");
        s(&mut v, "tokenizer.chat_template");
        v.extend_from_slice(&8u32.to_le_bytes());
        s(&mut v, template);
        s(&mut v, "w");
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&4u64.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend(std::iter::repeat_n(0u8, 32));
        v
    }

    fn codes(bytes: &[u8]) -> Vec<String> {
        let r = scan_bytes(bytes, "t", &ScanOptions::default());
        assert_eq!(r.formats, vec!["gguf"]);
        r.findings.into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn benign_and_malicious_templates() {
        assert_eq!(
            codes(&gguf("{% for m in messages %}{{ m['content'] }}{% endfor %}")),
            Vec::<String>::new()
        );
        assert_eq!(
            codes(&gguf("{{ cycler.__init__.__globals__.os.popen('id').read() }}")),
            vec!["GGF002"]
        );
    }

    #[test]
    fn malformed_headers() {
        let mut v = gguf("x");
        v[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(codes(&v), vec!["GGF001"]);
        let v = gguf("x");
        assert_eq!(codes(&v[..40]), vec!["GGF001"]);
        let mut v = gguf("x");
        v[4..8].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(codes(&v), vec!["GGF001"]);
    }

    /// Fuzz regression: per-type parameter counts summed past u64::MAX.
    #[test]
    fn describe_saturates_parameter_counts() {
        let mut input = b"GGUF".to_vec();
        input.extend_from_slice(&[
            1, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 191, 189, 239, 191, 189, 239, 191, 189,
            18, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        // Huge dimensions overflowed the per-type sum (a panic in checked builds); the header
        // then ends inside a tensor record, so there are no facts to report.
        assert!(super::describe(&mut &input[..], Some(input.len() as u64)).is_none());
    }
}
