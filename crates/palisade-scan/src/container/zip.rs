//! A lenient zip reader, read the way PyTorch's loader (miniz) reads: names, sizes and
//! methods from the central directory, data located through the local header's lengths,
//! no CRC check. Unlike miniz it also walks local headers to find members the central
//! directory hides, and reports every inconsistency as an `ARC001` finding rather than
//! refusing the file — so what PyTorch loads, Palisade scans.
//!
//! Tensor data members are never read beyond a short head used to sniff them.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use flate2::read::DeflateDecoder;
use palisade_core::{FileReport, Finding, Location};

use crate::{rules, ReadSeek, ScanCtx};

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const EOCD64_LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const EOCD64_SIG: &[u8; 4] = b"PK\x06\x06";
const CDH_SIG: &[u8; 4] = b"PK\x01\x02";
const LFH_SIG: &[u8; 4] = b"PK\x03\x04";
/// Members beyond this count are not scanned (the report is marked incomplete).
const MAX_ENTRIES: usize = 200_000;
/// CRCs are verified for sniffed members up to this size.
const MAX_CRC_BYTES: u64 = 256 << 20;

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    csize: u64,
    usize: u64,
    local_offset: u64,
    /// Central-directory external attributes (Unix mode in the high 16 bits).
    external_attr: u32,
    /// Only in a local header, not in the central directory.
    orphan: bool,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64le(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

fn read_at(r: &mut dyn ReadSeek, at: u64, n: usize) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(at))?;
    let mut buf = Vec::with_capacity(n);
    (&mut *r).take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn printable(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A window `[start, start+len)` of a seekable stream, itself seekable.
struct Slice<'a> {
    inner: &'a mut dyn ReadSeek,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let want = buf.len().min((self.len - self.pos) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

/// Finds and parses the central directory. Returns the entries and the problems seen.
fn central_directory(r: &mut dyn ReadSeek, size: u64, issues: &mut Vec<String>) -> io::Result<Option<Vec<Entry>>> {
    let tail_len = size.min(65_557) as usize;
    let tail = read_at(r, size - tail_len as u64, tail_len)?;
    let Some(eocd_rel) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| &tail[i..i + 4] == EOCD_SIG)
    else {
        return Ok(None);
    };
    let eocd_at = size - tail_len as u64 + eocd_rel as u64;
    let e = &tail[eocd_rel..];
    let mut count = u64::from(u16le(e, 10));
    let mut cd_size = u64::from(u32le(e, 12));
    let mut cd_offset = u64::from(u32le(e, 16));
    if (count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff) && eocd_at >= 20 {
        let loc = read_at(r, eocd_at - 20, 20)?;
        if loc.get(..4) == Some(EOCD64_LOCATOR_SIG) {
            let rec = read_at(r, u64le(&loc, 8), 56)?;
            if rec.get(..4) == Some(EOCD64_SIG) {
                count = u64le(&rec, 32);
                cd_size = u64le(&rec, 40);
                cd_offset = u64le(&rec, 48);
            }
        }
    }
    if cd_offset.saturating_add(cd_size) > size {
        issues.push(format!(
            "central directory ({cd_size} bytes at {cd_offset}) extends past the end of the file"
        ));
        return Ok(None);
    }
    if cd_size > 512 << 20 {
        issues.push(format!(
            "central directory of {cd_size} bytes exceeds the 512 MiB limit"
        ));
        return Ok(None);
    }
    let cd = read_at(r, cd_offset, cd_size as usize)?;
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at + 46 <= cd.len() && &cd[at..at + 4] == CDH_SIG {
        if entries.len() >= MAX_ENTRIES {
            issues.push(format!("more than {MAX_ENTRIES} entries"));
            break;
        }
        let flags = u16le(&cd, at + 8);
        let method = u16le(&cd, at + 10);
        let crc = u32le(&cd, at + 16);
        let mut csize = u64::from(u32le(&cd, at + 20));
        let mut usize_ = u64::from(u32le(&cd, at + 24));
        let name_len = usize::from(u16le(&cd, at + 28));
        let extra_len = usize::from(u16le(&cd, at + 30));
        let comment_len = usize::from(u16le(&cd, at + 32));
        let external_attr = u32le(&cd, at + 38);
        let mut local_offset = u64::from(u32le(&cd, at + 42));
        let name_start = at + 46;
        let Some(name) = cd.get(name_start..name_start + name_len) else {
            break;
        };
        let extra = cd
            .get(name_start + name_len..name_start + name_len + extra_len)
            .unwrap_or(&[]);
        // Zip64 extended information: the fields that overflowed, in order.
        let mut x = 0;
        while x + 4 <= extra.len() {
            let id = u16le(extra, x);
            let len = usize::from(u16le(extra, x + 2));
            if id == 0x0001 {
                let mut f = x + 4;
                if usize_ == 0xffff_ffff {
                    usize_ = u64le(extra, f);
                    f += 8;
                }
                if csize == 0xffff_ffff {
                    csize = u64le(extra, f);
                    f += 8;
                }
                if local_offset == 0xffff_ffff {
                    local_offset = u64le(extra, f);
                }
            }
            x += 4 + len;
        }
        entries.push(Entry {
            name: printable(name),
            flags,
            method,
            crc,
            csize,
            usize: usize_,
            local_offset,
            external_attr,
            orphan: false,
        });
        at = name_start + name_len + extra_len + comment_len;
    }
    if (entries.len() as u64) != count && entries.len() < MAX_ENTRIES {
        issues.push(format!(
            "central directory declares {count} entries but holds {}",
            entries.len()
        ));
    }
    Ok(Some(entries))
}

/// A parsed local file header: (name, flags, method, crc, csize, usize, data offset).
struct Local {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    csize: u64,
    usize: u64,
    data_offset: u64,
}

fn local_header(r: &mut dyn ReadSeek, at: u64) -> io::Result<Option<Local>> {
    let h = read_at(r, at, 30)?;
    if h.len() < 30 || &h[..4] != LFH_SIG {
        return Ok(None);
    }
    let name_len = u16le(&h, 26);
    let extra_len = u16le(&h, 28);
    let name = read_at(r, at + 30, usize::from(name_len))?;
    Ok(Some(Local {
        name: printable(&name),
        flags: u16le(&h, 6),
        method: u16le(&h, 8),
        crc: u32le(&h, 14),
        csize: u64::from(u32le(&h, 18)),
        usize: u64::from(u32le(&h, 22)),
        data_offset: at + 30 + u64::from(name_len) + u64::from(extra_len),
    }))
}

/// Walks local headers from the start of the file (bounded), to find members the central
/// directory does not list.
fn walk_locals(r: &mut dyn ReadSeek, size: u64) -> io::Result<Vec<(u64, Local)>> {
    let mut out = Vec::new();
    let mut at = 0u64;
    while at + 30 <= size && out.len() < MAX_ENTRIES {
        let Some(l) = local_header(r, at)? else { break };
        // A data descriptor with zero sizes: the next header cannot be located.
        if l.flags & 0x8 != 0 && l.csize == 0 {
            out.push((at, l));
            break;
        }
        let next = l.data_offset.saturating_add(l.csize);
        out.push((at, l));
        at = next;
    }
    Ok(out)
}

fn container_label(names: &[&str]) -> &'static str {
    let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix) || *n == &suffix[1..]);
    let root = |name: &str| names.contains(&name);
    if root("config.json") && (root("metadata.json") || root("model.weights.h5")) {
        "keras-v3"
    } else if has("/constants.pkl") || names.iter().any(|n| n.contains("/code/__torch__")) {
        "torchscript"
    } else if has("/data.pkl") {
        "pytorch-zip"
    } else if !names.is_empty() && names.iter().all(|n| n.ends_with(".npy")) {
        "npz"
    } else {
        "zip"
    }
}

fn arc(report: &mut FileReport, loc: Location, message: String, evidence: Option<String>) {
    let mut f = Finding::new(&rules::ARC001, loc, message);
    if let Some(ev) = evidence {
        f = f.with_evidence(ev);
    }
    report.findings.push(f);
}

pub fn scan(r: &mut dyn ReadSeek, size: u64, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    if ctx.too_deep(report, "zip archive") {
        return;
    }
    if let Err(e) = scan_inner(r, size, loc, ctx, report) {
        report.mark_incomplete(format!("read error in zip archive: {e}"));
    }
}

fn scan_inner(
    r: &mut dyn ReadSeek,
    size: u64,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) -> io::Result<()> {
    let mut issues = Vec::new();
    let central = central_directory(r, size, &mut issues)?;
    let locals = walk_locals(r, size)?;
    let mut entries = match central {
        Some(e) => e,
        None => {
            issues.push("no readable central directory; members were found through their local headers".to_owned());
            Vec::new()
        }
    };
    let listed: HashSet<u64> = entries.iter().map(|e| e.local_offset).collect();
    for (at, l) in &locals {
        if !listed.contains(at) {
            if !entries.is_empty() {
                arc(
                    report,
                    loc.member(l.name.clone()),
                    format!(
                        "member `{}` is present only in a local header: the central directory hides it",
                        l.name
                    ),
                    None,
                );
            }
            entries.push(Entry {
                name: l.name.clone(),
                flags: l.flags,
                method: l.method,
                crc: l.crc,
                csize: l.csize,
                usize: l.usize,
                local_offset: *at,
                external_attr: 0,
                orphan: true,
            });
        }
    }
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let label = container_label(&names);
    report.add_format(label);
    if label == "keras-v3" {
        if let Some(e) = entries.iter().find(|e| e.name == "config.json") {
            keras_config(r, e, loc, ctx, report)?;
        }
    }
    for issue in issues {
        arc(report, loc.clone(), format!("zip structure: {issue}"), None);
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for e in &entries {
        *seen.entry(e.name.to_ascii_lowercase()).or_default() += 1;
    }
    for (name, n) in seen.iter().filter(|(_, n)| **n > 1) {
        arc(report, loc.clone(), format!("{n} members are named `{name}` (names compared without case, as PyTorch looks them up); loaders disagree on which one is read"), None);
    }
    let declared: u64 = entries.iter().map(|e| e.usize).fold(0, u64::saturating_add);
    if declared > ctx.opts.limits.max_decompressed {
        super::compressed::bomb_finding(
            report,
            loc,
            "the archive's members",
            ctx.opts.limits.max_decompressed,
            Some(size),
        );
    }
    entries.sort_by_key(|e| e.local_offset);
    for e in &entries {
        if let Some(reason) = ctx.budget.exhausted() {
            report.mark_incomplete(reason);
            return Ok(());
        }
        scan_member(r, size, e, loc, ctx, report)?;
    }
    Ok(())
}

fn scan_member(
    r: &mut dyn ReadSeek,
    size: u64,
    e: &Entry,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) -> io::Result<()> {
    let mloc = loc.member(e.name.clone());
    super::path_finding(report, &mloc, &e.name);
    let Some(local) = local_header(r, e.local_offset)? else {
        arc(
            report,
            mloc,
            format!(
                "the central directory points `{}` at offset {} where there is no local header",
                e.name, e.local_offset
            ),
            None,
        );
        return Ok(());
    };
    if !e.orphan && local.name != e.name {
        arc(
            report,
            mloc.clone(),
            format!(
                "local header names the member `{}` but the central directory names it `{}`",
                local.name, e.name
            ),
            Some(format!("local: {:?}, central: {:?}", local.name, e.name)),
        );
    }
    if e.flags & 0x1 != 0 {
        arc(
            report,
            mloc.clone(),
            format!("member `{}` has the encryption flag set", e.name),
            None,
        );
    }
    if e.name.ends_with('/') && e.csize == 0 {
        return Ok(());
    }
    let mut csize = e.csize;
    if local.data_offset.saturating_add(csize) > size {
        arc(
            report,
            mloc.clone(),
            format!("member `{}` extends past the end of the file", e.name),
            None,
        );
        csize = size.saturating_sub(local.data_offset);
    }
    let compressed_bomb =
        e.usize > super::compressed::BOMB_FLOOR && e.usize / e.csize.max(1) > super::compressed::BOMB_RATIO;
    if compressed_bomb {
        report.findings.push(Finding::new(
            &rules::ARC004,
            mloc.clone(),
            format!(
                "member `{}` declares {} bytes from {} compressed: a decompression bomb (not decompressed)",
                e.name, e.usize, e.csize
            ),
        ));
        return Ok(());
    }
    // Unix symbolic links store their target as the member's data.
    if (e.external_attr >> 16) & 0o170000 == 0o120000 {
        let mut target = Vec::new();
        if let Some(rd) = member_reader(r, local.data_offset, csize, e.method)? {
            rd.take(4096).read_to_end(&mut target).ok();
        }
        super::link_finding(
            report,
            &mloc,
            &e.name,
            &String::from_utf8_lossy(&target),
            "symbolic link",
        );
        return Ok(());
    }
    if e.method == 0 && e.csize != e.usize {
        arc(
            report,
            mloc.clone(),
            format!(
                "stored member `{}` declares {} compressed but {} uncompressed bytes",
                e.name, e.csize, e.usize
            ),
            None,
        );
    }
    let kind = {
        let mut head = Vec::new();
        match member_reader(r, local.data_offset, csize, e.method)? {
            Some(rd) => {
                rd.take(crate::pickle::SNIFF_BYTES as u64).read_to_end(&mut head).ok();
            }
            None => {
                report.mark_incomplete(format!(
                    "member `{}` uses compression method {}, which is not supported",
                    e.name, e.method
                ));
                return Ok(());
            }
        }
        crate::sniff::sniff(&head, &ctx.opts.policy)
    };
    if kind == crate::Kind::Unknown {
        return Ok(());
    }
    let inner = ctx.deeper();
    if e.method == 0 {
        let mut slice = Slice {
            inner: r,
            start: local.data_offset,
            len: csize,
            pos: 0,
        };
        crate::scan_seekable(&mut slice, csize, &mloc, &inner, report);
    } else if let Some(rd) = member_reader(r, local.data_offset, csize, e.method)? {
        crate::scan_stream(&mut BufReader::new(rd), &mloc, &inner, report);
    }
    // Verify the CRC of members that were scanned.
    if e.usize <= MAX_CRC_BYTES {
        if let Some(rd) = member_reader(r, local.data_offset, csize, e.method)? {
            let mut crc = flate2::CrcReader::new(rd);
            if io::copy(&mut crc, &mut io::sink()).is_ok() && crc.crc().sum() != e.crc {
                arc(
                    report,
                    mloc,
                    format!(
                        "member `{}` fails its CRC check (stored {:#010x}, computed {:#010x}): PyTorch loads it anyway, zipfile-based tools refuse it",
                        e.name,
                        e.crc,
                        crc.crc().sum()
                    ),
                    None,
                );
            }
        }
    }
    Ok(())
}

/// Judges a Keras v3 archive's `config.json`.
fn keras_config(
    r: &mut dyn ReadSeek,
    e: &Entry,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) -> io::Result<()> {
    const MAX_CONFIG: u64 = 64 << 20;
    let mloc = loc.member("config.json");
    let Some(local) = local_header(r, e.local_offset)? else {
        return Ok(());
    };
    let mut text = Vec::new();
    if let Some(rd) = member_reader(r, local.data_offset, e.csize, e.method)? {
        rd.take(MAX_CONFIG + 1).read_to_end(&mut text)?;
    }
    if text.len() as u64 > MAX_CONFIG {
        report.mark_incomplete(format!(
            "Keras config.json is larger than {MAX_CONFIG} bytes (not analysed)"
        ));
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(&text) {
        Ok(config) => crate::formats::keras::check_config(&config, &ctx.opts.policy, &mloc, report),
        Err(e) => report.mark_incomplete(format!("Keras config.json is not valid JSON: {e}")),
    }
    Ok(())
}

/// A reader of a member's uncompressed data, or `None` for unsupported methods.
fn member_reader<'a>(
    r: &'a mut dyn ReadSeek,
    offset: u64,
    csize: u64,
    method: u16,
) -> io::Result<Option<Box<dyn Read + 'a>>> {
    r.seek(SeekFrom::Start(offset))?;
    let raw = Slice {
        inner: r,
        start: offset,
        len: csize,
        pos: 0,
    };
    Ok(match method {
        0 => Some(Box::new(raw)),
        8 => Some(Box::new(DeflateDecoder::new(BufReader::new(raw)))),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::{scan_bytes, ScanOptions};

    /// A minimal stored zip: `(local name, central name, data)` per member.
    pub(crate) fn stored_zip(members: &[(&str, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (local_name, central_name, data) in members {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let offset = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(local_name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(local_name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
            central.extend_from_slice(&crc.sum().to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(central_name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(central_name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    const PAYLOAD: &[u8] = b"\x80\x02cos\nsystem\nX\x01\x00\x00\x00x\x85R.";

    fn codes(bytes: &[u8]) -> Vec<String> {
        let mut c: Vec<String> = scan_bytes(bytes, "t", &ScanOptions::default())
            .findings
            .iter()
            .map(|f| f.code.clone())
            .collect();
        c.sort();
        c
    }

    #[test]
    fn clean_zip_has_no_findings() {
        let z = stored_zip(&[
            ("archive/data.pkl", "archive/data.pkl", b"\x80\x02}q\x00."),
            ("archive/data/0", "archive/data/0", &[0u8; 64]),
        ]);
        assert_eq!(codes(&z), Vec::<String>::new());
    }

    #[test]
    fn pytorch_zip_name_mismatch_is_scanned_and_reported() {
        let z = stored_zip(&[("archive/data.txt", "archive/data.pkl", PAYLOAD)]);
        assert_eq!(codes(&z), vec!["ARC001", "PKL001"]);
    }

    #[test]
    fn member_hidden_from_central_directory_is_found() {
        let mut z = stored_zip(&[("archive/data.pkl", "archive/data.pkl", b"\x80\x02}q\x00.")]);
        // Prepend a member that no central directory entry points at.
        let hidden = stored_zip(&[("archive/evil.pkl", "archive/evil.pkl", PAYLOAD)]);
        let cd_at = hidden.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        let shift = cd_at as u32;
        let mut out = hidden[..cd_at].to_vec();
        // Fix the remaining central directory's offsets by the prepended length.
        let cd = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        let old = u32::from_le_bytes(z[cd + 42..cd + 46].try_into().unwrap());
        z[cd + 42..cd + 46].copy_from_slice(&(old + shift).to_le_bytes());
        let eocd = z.len() - 22;
        let old = u32::from_le_bytes(z[eocd + 16..eocd + 20].try_into().unwrap());
        z[eocd + 16..eocd + 20].copy_from_slice(&(old + shift).to_le_bytes());
        out.extend_from_slice(&z);
        assert_eq!(codes(&out), vec!["ARC001", "PKL001"]);
    }

    #[test]
    fn bad_crc_is_reported_and_member_still_scanned() {
        let mut z = stored_zip(&[("archive/data.pkl", "archive/data.pkl", PAYLOAD)]);
        let cd = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        z[cd + 16] ^= 0xff;
        assert_eq!(codes(&z), vec!["ARC001", "PKL001"]);
    }

    #[test]
    fn nested_torch_save_in_load_from_bytes() {
        let inner = stored_zip(&[("archive/data.pkl", "archive/data.pkl", PAYLOAD)]);
        let mut outer = b"\x80\x02ctorch.storage\n_load_from_bytes\nB".to_vec();
        outer.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        outer.extend_from_slice(&inner);
        outer.extend_from_slice(b"\x85R.");
        assert_eq!(codes(&outer), vec!["PKL001", "PKL008"]);
    }

    #[test]
    fn truncated_zip_without_central_directory() {
        let z = stored_zip(&[("archive/data.pkl", "archive/data.pkl", PAYLOAD)]);
        let cd = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        assert_eq!(codes(&z[..cd]), vec!["ARC001", "PKL001"]);
    }
}
