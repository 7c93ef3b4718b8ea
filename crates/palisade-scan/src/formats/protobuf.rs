//! Protobuf model files have no magic number: a file that starts like a protobuf
//! message is read (up to the 2 GiB protobuf limit) and decoded as each candidate format
//! in turn; the first that decodes to something plausible wins.

use std::io::SeekFrom;

use palisade_core::{FileReport, Location};

use super::{onnx, tensorflow};
use crate::{ReadSeek, ScanCtx};

/// Protobuf messages are limited to 2 GiB.
const MAX_PROTOBUF: u64 = 2 << 30;

/// Could this be one of the protobuf model formats? (ONNX and SavedModel start with
/// field 1 as a varint, GraphDef with field 1 as a message.)
pub fn sniff(head: &[u8]) -> bool {
    matches!(head, [0x08, b, ..] if *b < 0x80) || matches!(head, [0x0a, _, ..])
}

pub fn scan(r: &mut dyn ReadSeek, size: u64, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    if size > MAX_PROTOBUF {
        return;
    }
    let mut bytes = Vec::with_capacity(size as usize);
    if r.seek(SeekFrom::Start(0)).is_err() || r.read_to_end(&mut bytes).is_err() {
        report.mark_incomplete("read error");
        return;
    }
    if let Some(model) = onnx::decode(&bytes) {
        let dir = ctx.origin.and_then(|p| p.parent());
        onnx::check(&model, dir, loc, report);
    } else if let Some(tf) = tensorflow::decode(&bytes) {
        tensorflow::check(&tf, loc, report);
    }
}
