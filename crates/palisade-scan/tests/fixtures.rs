//! Every fixture from `tests/fixtures/gen_pickle_fixtures.py` is scanned: malicious files
//! must be flagged at high severity or above and name what they call, benign files must
//! scan clean and complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};

use palisade_core::{FileReport, FileStatus, Severity};
use palisade_scan::{scan_path, ScanOptions};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Entry {
    file: String,
    verdict: String,
    container: String,
    technique: String,
    callables: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle")
}

fn manifest() -> Vec<Entry> {
    let text =
        std::fs::read_to_string(root().join("manifest.json")).expect("fixture manifest (run gen_pickle_fixtures.py)");
    serde_json::from_str(&text).expect("manifest.json parses")
}

fn scan(rel: &str) -> FileReport {
    scan_path(&root().join(rel), rel, &ScanOptions::default())
}

fn describe(r: &FileReport) -> String {
    r.findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {} [{}]",
                f.severity,
                f.code,
                f.message,
                f.evidence.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

#[test]
fn malicious_fixtures_are_flagged_high_or_above() {
    let entries = manifest();
    let malicious: Vec<&Entry> = entries.iter().filter(|e| e.verdict == "malicious").collect();
    assert!(
        malicious.len() >= 60,
        "expected the full malicious corpus, found {}",
        malicious.len()
    );
    let mut misses = Vec::new();
    for e in malicious {
        let r = scan(&e.file);
        if r.max_severity() < Some(Severity::High) {
            misses.push(format!(
                "{} ({}, {}): {:?}\n    {}",
                e.file,
                e.container,
                e.technique,
                r.max_severity(),
                describe(&r)
            ));
        }
    }
    assert!(
        misses.is_empty(),
        "not flagged at high or above:\n{}",
        misses.join("\n")
    );
}

#[test]
fn malicious_fixtures_name_what_they_call() {
    let mut misses = Vec::new();
    for e in manifest()
        .iter()
        .filter(|e| e.verdict == "malicious" && !e.callables.is_empty())
    {
        let r = scan(&e.file);
        let text: String = r
            .findings
            .iter()
            .map(|f| format!("{} {}\n", f.message, f.evidence.as_deref().unwrap_or("")))
            .collect();
        // The name of the callable (last segment) or its full path must appear.
        let named = e.callables.iter().any(|c| {
            let last = c.rsplit('.').next().unwrap_or(c);
            text.contains(c.as_str()) || text.contains(&format!(".{last}"))
        });
        if !named {
            misses.push(format!(
                "{}: expected one of {:?}\n    {}",
                e.file,
                e.callables,
                describe(&r)
            ));
        }
    }
    assert!(misses.is_empty(), "callables not named:\n{}", misses.join("\n"));
}

#[test]
fn benign_fixtures_scan_clean_and_complete() {
    let entries = manifest();
    let benign: Vec<&Entry> = entries.iter().filter(|e| e.verdict == "benign").collect();
    assert!(benign.len() >= 20, "expected the benign corpus, found {}", benign.len());
    let mut fps = Vec::new();
    for e in benign {
        let r = scan(&e.file);
        let bad = r.findings.iter().any(|f| f.severity >= Severity::Low);
        if bad || r.status != FileStatus::Complete || r.formats.is_empty() {
            fps.push(format!(
                "{} ({}): {:?} {:?}\n    {}",
                e.file,
                e.container,
                r.status,
                r.formats,
                describe(&r)
            ));
        }
    }
    assert!(
        fps.is_empty(),
        "benign files with findings, gaps or no format:\n{}",
        fps.join("\n")
    );
}

#[test]
fn containers_are_recognised_by_content() {
    let expect = |container: &str| -> &'static str {
        match container {
            "torch-zip" => "pytorch-zip",
            "torchscript" => "torchscript",
            "torch-legacy" => "pytorch-legacy",
            "torch-legacy-tar" => "tar",
            "joblib" => "pickle",
            "npy" => "npy",
            "npz" => "npz",
            _ => "pickle",
        }
    };
    for e in manifest() {
        let r = scan(&e.file);
        let want = expect(&e.container);
        assert!(
            r.formats.iter().any(|f| f == want),
            "{}: formats {:?} lack {want}",
            e.file,
            r.formats
        );
    }
}

/// Mutated pickles (byte flips, truncations, insertions) never panic, never report
/// "complete and clean" for a stream that breaks, and finish.
#[test]
fn mutated_pickles_are_handled() {
    let dir = root().join("random");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("mutated_") {
            continue;
        }
        n += 1;
        let r = scan_path(&path, &name, &ScanOptions::default());
        assert!(!matches!(r.status, FileStatus::Error { .. }), "{name}: {:?}", r.status);
    }
    assert!(n >= 20, "expected mutated fixtures, found {n}");
}

fn _assert_path(_: &Path) {}
