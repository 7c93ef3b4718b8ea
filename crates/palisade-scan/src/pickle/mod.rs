//! The pickle engine: a streaming opcode decoder ([`reader`]), a symbolic machine that
//! follows CPython's unpickler ([`vm`]), and a deny-by-default judge ([`policy`]).

pub mod ops;
pub mod policy;
pub mod reader;
pub mod vm;

use std::io::{BufRead, BufReader, Read};

use base64::Engine as _;
use palisade_core::{FileReport, Finding, Location, Severity};

use crate::rules;
use crate::ScanCtx;
use ops::Opcode;
use policy::Verdict;
use reader::{looks_like_embedded_pickle, Arg, DecodeError, OpReader};
use vm::{AnomalyKind, InlineArray, Step, StepError, Vm, V};

/// The pickled magic number that starts a legacy (pre-1.6) `torch.save` file.
const TORCH_LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// How many stacked pickles a legacy torch file has before raw storage data.
const TORCH_LEGACY_PICKLES: u32 = 5;
/// How many pickles one stream may stack before the scan stops (incomplete).
const MAX_STACKED: u32 = 4096;
/// Bytes examined to decide whether an unprefixed stream is a protocol-0/1 pickle.
pub const SNIFF_BYTES: usize = 4096;

/// What a pickle that ended at STOP left on the stack, in the few shapes callers need.
#[derive(Debug, Default)]
pub struct Stopped {
    /// The value, when it is an integer.
    pub int: Option<i128>,
    /// Imported paths that are direct items of the value, when it is a tuple.
    pub tuple_globals: Vec<String>,
}

/// What scanning one stream found, besides the findings pushed into the report.
#[derive(Debug, Default)]
pub struct StreamResult {
    pub pickles: u32,
    pub legacy_torch: bool,
}

/// Is `head` (the first bytes of a stream) a pickle? Decides by running the head: a
/// stream is a pickle when it reaches STOP, when it decodes cleanly through the whole
/// head (a long pickle), or when it breaks only after importing something that it calls
/// or that is a known name — a broken stream that imports nothing cannot run anything,
/// so text files and random tensor bytes are not mistaken for pickles, while a broken
/// payload ("nullifAI") still is.
pub fn sniff(head: &[u8], policy: &policy::Policy) -> bool {
    let proto_start =
        matches!(head, [0x80, p, next, ..] if *p <= ops::HIGHEST_PROTOCOL && Opcode::from_byte(*next).is_some());
    if head.is_empty() || (head[0] == 0x80 && !proto_start) {
        return false;
    }
    let mut r = OpReader::new(head, reader::ReaderConfig::default());
    let mut vm = Vm::new(policy, vm::VmLimits::default());
    let meaningful_import = |vm: &Vm| {
        vm.imports
            .iter()
            .any(|i| i.invoked_at.is_some() || !matches!(i.judgement.verdict, Verdict::Unknown))
    };
    let mut n = 0u32;
    loop {
        let op = match r.next_op() {
            Ok(Some(op)) => op,
            // The head ended mid-stream: a long clean prefix is a pickle.
            Ok(None) | Err(DecodeError::Truncated { .. }) if head.len() >= SNIFF_BYTES => {
                return n >= 8 || meaningful_import(&vm);
            }
            Ok(None) | Err(_) => return meaningful_import(&vm),
        };
        n += 1;
        if let (Opcode::GLOBAL | Opcode::INST, Arg::Pair(pair)) = (op.code, &op.arg) {
            let (m, name) = pair.as_ref();
            if !proto_start && (!is_dotted_identifier(m) || !is_dotted_identifier(name)) {
                return false;
            }
        }
        match vm.step(&op) {
            Ok(Step::Stop(_)) => return true,
            Ok(_) => {}
            Err(_) => return meaningful_import(&vm),
        }
    }
}

fn is_dotted_identifier(s: &[u8]) -> bool {
    !s.is_empty()
        && s.split(|b| *b == b'.').all(|seg| {
            matches!(seg.first(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
                && seg.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        })
}

/// Scans every pickle stacked in `reader`, pushing findings into `report`.
pub fn scan_stream<R: Read>(
    reader: R,
    start: u64,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) -> StreamResult {
    // A concrete buffer here keeps the per-opcode reads static (callers often hand in
    // `&mut dyn BufRead`); the inner reader is only called once per 64 KiB.
    let mut r = OpReader::with_offset(BufReader::with_capacity(64 << 10, reader), ctx.reader_config(), start);
    let mut result = StreamResult::default();
    report.add_format("pickle");
    loop {
        let more = scan_one(&mut r, loc, ctx, report, &mut result);
        if more.is_none() {
            break;
        }
        if result.legacy_torch && result.pickles >= TORCH_LEGACY_PICKLES {
            break;
        }
        // Another pickle follows only if the next bytes start one.
        match r.peek_n(3) {
            Ok(head)
                if head.len() == 3
                    && head[0] == 0x80
                    && head[1] <= ops::HIGHEST_PROTOCOL
                    && Opcode::from_byte(head[2]).is_some() => {}
            _ => break,
        }
        if result.pickles >= MAX_STACKED {
            report.mark_incomplete(format!("more than {MAX_STACKED} stacked pickles in one stream"));
            break;
        }
    }
    result
}

/// Scans one pickle; returns what it left when it ended cleanly at STOP (so another may
/// follow), `None` when it broke or a budget ran out.
fn scan_one<R: BufRead>(
    r: &mut OpReader<R>,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
    result: &mut StreamResult,
) -> Option<Stopped> {
    let mut vm = Vm::new(&ctx.opts.policy, ctx.vm_limits());
    let first_pos = r.pos();
    let index = result.pickles;
    result.pickles += 1;
    let mut stopped = None;
    loop {
        if vm.ops.is_multiple_of(4096) {
            if let Some(reason) = ctx.budget.exhausted() {
                report.mark_incomplete(reason);
                break;
            }
        }
        let op = match r.next_op() {
            Ok(Some(op)) => op,
            Ok(None) => {
                if vm.ops > 0 {
                    broken_finding(report, loc, r.pos(), "the stream ends before STOP", &vm);
                }
                break;
            }
            Err(DecodeError::Io(e)) => {
                report.mark_incomplete(format!("read error inside pickle: {e}"));
                break;
            }
            Err(e) => {
                let pos = e.pos().unwrap_or(r.pos());
                broken_finding(report, loc, pos, &e.detail(), &vm);
                break;
            }
        };
        if matches!(op.arg, Arg::Bytes(_) | Arg::Text(_)) {
            if let Arg::Bytes(b) = &op.arg {
                if b.oversized_nested {
                    report.mark_incomplete(format!(
                        "a {}-byte argument at offset {} looks like an embedded pickle or archive but exceeds the in-memory limit; not scanned",
                        b.len, op.pos
                    ));
                }
            }
            scan_embedded(&op, loc, ctx, report);
        }
        match vm.step(&op) {
            Ok(Step::Continue) => {}
            Ok(Step::Stop(v)) => {
                if index == 0 && matches!(v, V::Int(TORCH_LEGACY_MAGIC)) {
                    result.legacy_torch = true;
                    report.add_format("pytorch-legacy");
                }
                stopped = Some(Stopped {
                    int: if let V::Int(i) = v { Some(i) } else { None },
                    tuple_globals: match &v {
                        V::Tuple(items) => items
                            .iter()
                            .filter_map(|i| vm.import_path(i).map(str::to_owned))
                            .collect(),
                        _ => Vec::new(),
                    },
                });
                break;
            }
            Ok(Step::InlineArray(a)) => {
                report.add_format("joblib");
                if !skip_inline_array(r, &a, loc, ctx, report) {
                    break;
                }
            }
            Err(StepError::Broken(b)) => {
                broken_finding(report, loc, b.pos, &b.message, &vm);
                break;
            }
            Err(StepError::Exhausted(e)) => {
                report.mark_incomplete(e.0);
                break;
            }
        }
    }
    let loc = if index > 0 {
        loc.member(format!("pickle #{} @ {first_pos:#x}", index + 1))
    } else {
        loc.clone()
    };
    emit(&vm, &loc, report);
    stopped
}

fn skip_inline_array<R: BufRead>(
    r: &mut OpReader<R>,
    a: &InlineArray,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) -> bool {
    match a {
        InlineArray::Raw { bytes, aligned } => {
            let mut want = *bytes;
            if *aligned {
                match r.peek() {
                    Ok(Some(pad)) => want += 1 + u64::from(pad),
                    _ => return false,
                }
            }
            matches!(r.skip(want), Ok(n) if n == want)
        }
        InlineArray::Pickle => {
            // joblib writes object arrays as a complete nested pickle; the outer stream
            // continues after its STOP.
            let start = r.pos();
            let nested_loc = loc.member(format!("joblib object array @ {start:#x}"));
            let mut vm_result = StreamResult::default();
            scan_one(r, &nested_loc, ctx, report, &mut vm_result).is_some()
        }
        InlineArray::Unknown(why) => {
            report.mark_incomplete(format!("joblib inline array of unknown size ({why})"));
            false
        }
    }
}

/// Bytes per element of a legacy storage class (`torch.FloatStorage` → 4).
fn storage_element_size(path: &str) -> Option<u64> {
    let name = path.rsplit('.').next()?.strip_suffix("Storage")?;
    Some(match name {
        "Double" | "Long" | "ComplexFloat" => 8,
        "Float" | "Int" | "QInt32" => 4,
        "Half" | "BFloat16" | "Short" => 2,
        "Char" | "Byte" | "Bool" | "QInt8" | "QUInt8" | "QUInt4x2" | "QUInt2x4" => 1,
        "ComplexDouble" => 16,
        _ => return None,
    })
}

/// The `storages` and `tensors` members of a legacy PyTorch tar interleave pickles with
/// raw data (`torch/serialization.py`, `_load` of the tar format): `storages` is a count,
/// then per storage a `(key, location, storage_type)` pickle, an 8-byte element count and
/// the data, then a pickle of storage views; `tensors` is a count, then per tensor a
/// `(key, storage_id, tensor_type)` pickle, a 4-byte rank, 4 skipped bytes, sizes,
/// strides and an 8-byte offset. Every pickle is scanned; the data is skipped.
pub fn scan_legacy_tar_member<R: BufRead>(
    reader: R,
    storages: bool,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) {
    let mut r = OpReader::with_offset(reader, ctx.reader_config(), 0);
    let mut result = StreamResult::default();
    report.add_format("pickle");
    let Some(count) = scan_one(&mut r, loc, ctx, report, &mut result).and_then(|s| s.int) else {
        return;
    };
    let Ok(count) = u64::try_from(count) else {
        report.mark_incomplete("legacy torch tar member declares a negative count");
        return;
    };
    for i in 0..count {
        // Each record is located by its own name, not as "pickle #n".
        let mut one = StreamResult::default();
        let Some(record) = scan_one(&mut r, &loc.member(format!("record {i}")), ctx, report, &mut one) else {
            return;
        };
        let mut fixed = [0u8; 8];
        if std::io::Read::read_exact(r.inner_mut(), &mut fixed).is_err() {
            report.mark_incomplete("legacy torch tar member ends inside a record");
            return;
        }
        let skip = if storages {
            let numel = u64::from_le_bytes(fixed);
            let Some(size) = record.tuple_globals.iter().find_map(|g| storage_element_size(g)) else {
                report.mark_incomplete(format!("legacy torch storage record {i} has no known storage type"));
                return;
            };
            numel.checked_mul(size)
        } else {
            let rank = u64::from(u32::from_le_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]));
            rank.checked_mul(16).map(|n| n + 8)
        };
        let Some(skip) = skip else {
            report.mark_incomplete("legacy torch record size overflows");
            return;
        };
        if r.skip(skip).ok() != Some(skip) {
            report.mark_incomplete("legacy torch tar member ends inside its data");
            return;
        }
    }
    if storages {
        scan_one(
            &mut r,
            &loc.member("storage views"),
            ctx,
            report,
            &mut StreamResult::default(),
        );
    }
}

/// Pickles hidden in byte or text arguments: raw, base64 or hex.
fn scan_embedded(op: &reader::Op, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    let data: &[u8] = match &op.arg {
        Arg::Bytes(b) if b.is_complete() => &b.data,
        Arg::Text(t) if !t.truncated => t.value.as_bytes(),
        _ => return,
    };
    if !looks_like_embedded_pickle(data) {
        return;
    }
    let (decoded, encoding): (Option<Vec<u8>>, &str) = match data.first() {
        Some(0x80 | b'P') => (Some(data.to_vec()), "raw"),
        Some(b'g' | b'U') => {
            let text: Vec<u8> = data.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            (base64::engine::general_purpose::STANDARD.decode(&text).ok(), "base64")
        }
        _ => (decode_hex(data), "hex"),
    };
    let Some(bytes) = decoded else { return };
    let is_zip = bytes.starts_with(b"PK\x03\x04");
    if !is_zip && !sniff(&bytes[..bytes.len().min(SNIFF_BYTES)], &ctx.opts.policy) {
        return;
    }
    if ctx.depth + 1 > ctx.opts.limits.max_depth {
        report.mark_incomplete(format!(
            "embedded data at offset {} nested deeper than {} levels",
            op.pos, ctx.opts.limits.max_depth
        ));
        return;
    }
    let what = if is_zip { "zip archive" } else { "pickle" };
    let nested = loc.member(format!("embedded {encoding} {what} @ {:#x}", op.pos));
    report.findings.push(
        Finding::new(
            &rules::PKL008,
            loc.at(op.pos),
            format!(
                "a {encoding} {what} is embedded in a {} argument; it was scanned too",
                op.code.name()
            ),
        )
        .with_evidence(format!("{} bytes", bytes.len())),
    );
    let inner = ctx.deeper();
    if is_zip {
        let len = bytes.len() as u64;
        crate::container::zip::scan(&mut std::io::Cursor::new(bytes), len, &nested, &inner, report);
    } else {
        scan_stream(bytes.as_slice(), 0, &nested, &inner, report);
    }
}

fn decode_hex(data: &[u8]) -> Option<Vec<u8>> {
    let text: Vec<u8> = data.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

fn broken_finding(report: &mut FileReport, loc: &Location, pos: u64, why: &str, vm: &Vm) {
    let called: Vec<&str> = vm
        .imports
        .iter()
        .filter(|i| i.invoked_at.is_some())
        .map(|i| i.judgement.path.as_str())
        .collect();
    let mut f = Finding::new(
        &rules::PKL005,
        loc.at(pos),
        format!("the pickle stream is broken at offset {pos} ({why}); a loader runs everything before the break and then fails"),
    );
    if !called.is_empty() {
        f = f.with_evidence(format!("called before the break: {}", called.join(", ")));
    }
    report.findings.push(f);
}

/// Turns the machine's imports and anomalies into findings.
fn emit(vm: &Vm, loc: &Location, report: &mut FileReport) {
    for imp in &vm.imports {
        let path = &imp.judgement.path;
        let invoked = imp.invoked_at.is_some();
        let at = loc.at(imp.invoked_at.unwrap_or(imp.pos));
        let times = if imp.calls > 1 {
            format!(" ({} times)", imp.calls)
        } else {
            String::new()
        };
        let evidence = imp.evidence.clone().unwrap_or_else(|| format!("{} {path}", imp.via));
        let finding = match &imp.judgement.verdict {
            Verdict::Allowed { .. } => continue,
            Verdict::Dangerous { resolved, reason } => {
                let via = if resolved == path {
                    String::new()
                } else {
                    format!(", reaching `{resolved}` through an attribute walk")
                };
                if invoked {
                    Finding::new(
                        &rules::PKL001,
                        at,
                        format!("`{path}` is called when the file is loaded{times} ({reason}){via}"),
                    )
                } else {
                    Finding::new(
                        &rules::PKL002,
                        at,
                        format!("`{path}` is imported by the pickle ({reason}){via}"),
                    )
                }
            }
            Verdict::DunderWalk { segment } => {
                let f = Finding::new(
                    &rules::PKL010,
                    at,
                    format!(
                        "`{path}` walks through `{segment}` to reach interpreter internals{}",
                        if invoked { " and is called" } else { "" }
                    ),
                );
                if invoked {
                    f.with_severity(Severity::Critical)
                } else {
                    f
                }
            }
            Verdict::Unknown => {
                if invoked {
                    Finding::new(
                        &rules::PKL003,
                        at,
                        format!("`{path}` is called when the file is loaded{times} and is not on any allowlist"),
                    )
                } else {
                    Finding::new(
                        &rules::PKL003,
                        at,
                        format!("`{path}` is referenced by the pickle and is not on any allowlist"),
                    )
                    .with_severity(Severity::Low)
                }
            }
        };
        report.findings.push(finding.with_evidence(evidence));
    }
    for a in &vm.anomalies {
        let rule = match a.kind {
            AnomalyKind::Unresolvable => &rules::PKL004,
            AnomalyKind::GlobalMutation => &rules::PKL006,
            AnomalyKind::ExtensionCode => &rules::PKL007,
            AnomalyKind::MemoReuse => &rules::PKL009,
        };
        let mut f = Finding::new(rule, loc.at(a.pos), a.message.clone());
        if let Some(ev) = &a.evidence {
            f = f.with_evidence(ev.clone());
        }
        report.findings.push(f);
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::{FileReport, FileStatus, Location};

    use crate::{Budget, ScanCtx, ScanOptions};

    #[test]
    fn legacy_tar_storages_records_are_all_scanned() {
        let mut member = b"\x80\x02K\x02.".to_vec();
        member.extend_from_slice(b"\x80\x02(X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\nt.");
        member.extend_from_slice(&2u64.to_le_bytes());
        member.extend_from_slice(&[0u8; 8]);
        // The second record hides a call among the storage fields.
        member.extend_from_slice(
            b"\x80\x02(X\x01\x00\x00\x001X\x03\x00\x00\x00cpuctorch\nFloatStorage\ncos\nsystem\nX\x01\x00\x00\x00x\x85Rt.",
        );
        member.extend_from_slice(&0u64.to_le_bytes());
        member.extend_from_slice(b"\x80\x02].");
        let opts = ScanOptions::default();
        let budget = Budget::new(std::time::Duration::from_secs(10));
        let ctx = ScanCtx::root(&opts, &budget, None);
        let mut report = FileReport::new("t", member.len() as u64);
        super::scan_legacy_tar_member(
            member.as_slice(),
            true,
            &Location::new("t").member("storages"),
            &ctx,
            &mut report,
        );
        assert_eq!(report.status, FileStatus::Complete);
        let f: Vec<_> = report
            .findings
            .iter()
            .map(|f| (f.code.as_str(), f.location.members.clone()))
            .collect();
        assert_eq!(f, vec![("PKL001", vec!["storages".to_owned(), "record 1".to_owned()])]);
    }

    #[test]
    fn legacy_tar_storage_of_unknown_type_is_incomplete() {
        let mut member = b"\x80\x02K\x01.".to_vec();
        member.extend_from_slice(b"\x80\x02(X\x01\x00\x00\x000X\x03\x00\x00\x00cput.");
        member.extend_from_slice(&2u64.to_le_bytes());
        let opts = ScanOptions::default();
        let budget = Budget::new(std::time::Duration::from_secs(10));
        let ctx = ScanCtx::root(&opts, &budget, None);
        let mut report = FileReport::new("t", member.len() as u64);
        super::scan_legacy_tar_member(member.as_slice(), true, &Location::new("t"), &ctx, &mut report);
        assert!(matches!(report.status, FileStatus::Incomplete { .. }));
    }
}
