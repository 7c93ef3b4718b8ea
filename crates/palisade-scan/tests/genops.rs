//! Differential test: Palisade's opcode decoder against CPython's
//! `pickletools.genops`, on every raw fixture and on random and mutated pickles. The
//! expected streams were recorded by `tests/fixtures/gen_pickle_fixtures.py` with the
//! argument normalisation that `palisade_scan::pickle::reader::genops_repr` mirrors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use palisade_scan::pickle::ops::Opcode;
use palisade_scan::pickle::reader::{genops_repr, OpReader, ReaderConfig};
use serde::Deserialize;
use serde_json::Value;

/// `(offset, opcode name, normalised argument)`.
type GenOp = (u64, String, Option<String>);

#[derive(Deserialize)]
struct Expected {
    ops: Vec<GenOp>,
    error: Option<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle")
}

/// `genops/benign__x.pkl.json` → `benign/x.pkl`; `genops/random_000.json` →
/// `random/random_000.pkl`.
fn source_of(json_name: &str) -> PathBuf {
    let stem = json_name.strip_suffix(".json").unwrap();
    if stem.starts_with("random_") || stem.starts_with("mutated_") {
        root().join("random").join(format!("{stem}.pkl"))
    } else {
        root().join(stem.replacen("__", "/", 1))
    }
}

fn decode(bytes: &[u8]) -> (Vec<GenOp>, Option<String>) {
    let mut r = OpReader::new(bytes, ReaderConfig::default());
    let mut ops = Vec::new();
    loop {
        match r.next_op() {
            Ok(Some(op)) => {
                let Ok(arg) = genops_repr(op.code, &op.arg) else {
                    return (
                        ops,
                        Some(format!("pickletools rejects the argument of {}", op.code.name())),
                    );
                };
                ops.push((op.pos, op.code.name().to_owned(), arg));
                if op.code == Opcode::STOP {
                    return (ops, None);
                }
            }
            Ok(None) => return (ops, Some("pickle exhausted before seeing STOP".to_owned())),
            Err(e) => return (ops, Some(e.to_string())),
        }
    }
}

#[test]
fn opcode_stream_matches_cpython_pickletools() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(root().join("genops"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for json in entries {
        let name = json.file_name().unwrap().to_string_lossy().into_owned();
        let expected: Expected =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let src = source_of(&name);
        let bytes = std::fs::read(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let (ops, err) = decode(&bytes);
        checked += 1;
        // CPython may fail while decoding an argument that we decode (or the reverse);
        // either way the ops both decoded must agree, and both must agree that it failed.
        let n = if expected.error.is_some() {
            expected.ops.len().min(ops.len())
        } else {
            expected.ops.len()
        };
        if ops.len() < n || ops[..n] != expected.ops[..n] || (expected.error.is_none() && ops.len() != n) {
            let at = ops
                .iter()
                .zip(&expected.ops)
                .position(|(a, b)| a != b)
                .unwrap_or(n.min(ops.len()));
            failures.push(format!(
                "{name}: first difference at op {at}: palisade {:?} vs pickletools {:?}",
                ops.get(at),
                expected.ops.get(at)
            ));
            continue;
        }
        if expected.error.is_some() != err.is_some() {
            failures.push(format!(
                "{name}: pickletools error {:?}, palisade error {:?}",
                expected.error, err
            ));
        }
        if let (Some(_), None) = (&expected.error, &err) {
            // covered above
        } else if expected.error.is_some() && ops.len().abs_diff(expected.ops.len()) > 1 {
            failures.push(format!(
                "{name}: both fail, but after {} (palisade) vs {} (pickletools) ops",
                ops.len(),
                expected.ops.len()
            ));
        }
    }
    assert!(checked >= 150, "expected the whole genops corpus, checked {checked}");
    assert!(
        failures.is_empty(),
        "{} of {checked} streams differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn genops_json_is_well_formed() {
    // Guards the corpus itself: every file has an ops list of [pos, name, arg].
    for e in std::fs::read_dir(root().join("genops")).unwrap() {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap();
        assert!(v["ops"].is_array());
    }
}
