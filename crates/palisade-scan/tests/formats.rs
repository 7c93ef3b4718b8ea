//! Every fixture from `tests/fixtures/gen_format_fixtures.py` (safetensors, GGUF, ONNX,
//! Keras, TensorFlow, archives, Hugging Face directories) is scanned: malicious fixtures
//! must be flagged, benign ones must scan clean and complete. Directory fixtures are
//! walked file by file without following links, as the CLI does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};

use palisade_core::{FileReport, FileStatus, Severity};
use palisade_scan::{scan_path, ScanOptions};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Entry {
    file: String,
    verdict: String,
    format: String,
    technique: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

fn files_under(p: &Path, out: &mut Vec<PathBuf>) {
    let meta = std::fs::symlink_metadata(p).unwrap();
    if meta.file_type().is_symlink() {
        return;
    }
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for e in entries {
            files_under(&e, out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn scan(rel: &str) -> Vec<FileReport> {
    let mut files = Vec::new();
    files_under(&root().join(rel), &mut files);
    assert!(!files.is_empty(), "{rel}: no files");
    files
        .iter()
        .map(|f| scan_path(f, &f.display().to_string(), &ScanOptions::default()))
        .collect()
}

fn describe(reports: &[FileReport]) -> String {
    reports
        .iter()
        .flat_map(|r| {
            r.findings.iter().map(move |f| {
                format!(
                    "{} {} {} {}",
                    r.path.rsplit('/').next().unwrap_or(""),
                    f.severity,
                    f.code,
                    f.message
                )
            })
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

fn manifest() -> Vec<Entry> {
    serde_json::from_str(&std::fs::read_to_string(root().join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn malicious_format_fixtures_are_flagged() {
    let entries = manifest();
    let malicious: Vec<_> = entries.iter().filter(|e| e.verdict == "malicious").collect();
    assert!(malicious.len() >= 60, "{}", malicious.len());
    let mut misses = Vec::new();
    for e in malicious {
        let reports = scan(&e.file);
        let flagged = reports
            .iter()
            .flat_map(|r| &r.findings)
            .any(|f| f.severity >= Severity::Low);
        if !flagged {
            misses.push(format!(
                "{} ({}, {})\n    {}",
                e.file,
                e.format,
                e.technique,
                describe(&reports)
            ));
        }
    }
    assert!(misses.is_empty(), "missed:\n{}", misses.join("\n"));
}

#[test]
fn benign_format_fixtures_are_clean_and_complete() {
    let entries = manifest();
    let benign: Vec<_> = entries.iter().filter(|e| e.verdict == "benign").collect();
    assert!(benign.len() >= 15, "{}", benign.len());
    let mut fps = Vec::new();
    for e in benign {
        let reports = scan(&e.file);
        let bad = reports
            .iter()
            .flat_map(|r| &r.findings)
            .any(|f| f.severity >= Severity::Low);
        let gaps: Vec<_> = reports
            .iter()
            .filter(|r| r.status != FileStatus::Complete)
            .map(|r| format!("{}: {:?}", r.path, r.status))
            .collect();
        let recognised = reports.iter().any(|r| !r.formats.is_empty());
        if bad || !gaps.is_empty() || !recognised {
            fps.push(format!(
                "{} ({}): {gaps:?}\n    {}",
                e.file,
                e.format,
                describe(&reports)
            ));
        }
    }
    assert!(
        fps.is_empty(),
        "benign fixtures with findings or gaps:\n{}",
        fps.join("\n")
    );
}

#[test]
fn formats_are_recognised_by_content() {
    let expect = |format: &str| -> Option<&'static str> {
        Some(match format {
            "safetensors" => "safetensors",
            "gguf" => "gguf",
            "onnx" => "onnx",
            "keras-v3" => "keras-v3",
            "keras-h5" => "keras-h5",
            "tf-savedmodel" => "tf-savedmodel",
            "tf-graphdef" => "tf-graphdef",
            "tar-gz" => "gzip",
            "tar-bz2" => "bzip2",
            "tar-xz" => "xz",
            "tar-zst" => "zstd",
            "7z" => "7z",
            _ => return None,
        })
    };
    for e in manifest() {
        let Some(want) = expect(&e.format) else { continue };
        // Fixtures that are malformed on purpose may not get far enough to be labelled.
        if e.technique.to_lowercase().contains("absurd") || e.technique.to_lowercase().contains("truncat") {
            continue;
        }
        let reports = scan(&e.file);
        assert!(
            reports.iter().any(|r| r.formats.iter().any(|f| f == want)),
            "{}: formats {:?} lack {want}",
            e.file,
            reports.iter().map(|r| &r.formats).collect::<Vec<_>>()
        );
    }
}
