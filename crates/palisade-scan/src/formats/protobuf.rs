//! Protobuf model files have no magic number: a file that starts like a protobuf
//! message is read (up to the 2 GiB protobuf limit) and decoded as each candidate format
//! in turn; the first that decodes to something plausible wins.

use std::io::SeekFrom;

use palisade_core::{FileReport, Location};

use std::io::BufReader;

use super::{onnx, pbstrip, tensorflow};
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
    // Each candidate is read once, without its bulk payload (weights), so memory follows
    // the model's structure, not its size.
    fn stripped(r: &mut dyn ReadSeek, schema: &[pbstrip::Schema], root: usize) -> Option<Vec<u8>> {
        r.seek(SeekFrom::Start(0)).ok()?;
        pbstrip::strip(&mut BufReader::with_capacity(1 << 20, &mut *r), schema, root).ok()
    }
    if let Some(model) = stripped(r, pbstrip::ONNX, 0).and_then(|b| onnx::decode(&b)) {
        let dir = ctx.origin.and_then(|p| p.parent());
        onnx::check(&model, dir, loc, report);
        return;
    }
    // SavedModel starts with field 1 as a varint, a bare GraphDef with field 1 as a message.
    let mut first = [0u8; 1];
    let root = if r.seek(SeekFrom::Start(0)).is_ok() && r.read_exact(&mut first).is_ok() && first[0] == 0x0a {
        pbstrip::TF_GRAPHDEF
    } else {
        0
    };
    let tf = stripped(r, pbstrip::TENSORFLOW, root).and_then(|b| tensorflow::decode(&b));
    if let Some(tf) = tf {
        tensorflow::check(&tf, loc, report);
    }
}
