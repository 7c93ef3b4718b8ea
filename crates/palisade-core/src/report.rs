//! The result of scanning a set of paths: one [`FileReport`] per file plus a summary.
//! This is the shape the JSON renderer emits (documented in `docs/json-output.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};

/// Version of the JSON report schema. Bumped on any incompatible change.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Whether a file was analysed completely.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum FileStatus {
    /// Every byte the format says matters was analysed.
    Complete,
    /// Analysis stopped early (a budget ran out, an unsupported encoding); findings so far
    /// are reported but absence of findings proves nothing.
    Incomplete { reason: String },
    /// The file could not be read at all.
    Error { reason: String },
}

impl FileStatus {
    pub fn is_complete(&self) -> bool {
        matches!(self, FileStatus::Complete)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: String,
    /// The formats recognised by content, outermost first (e.g. `["pytorch-zip", "pickle"]`).
    /// Empty when the file is not a recognised model format.
    pub formats: Vec<String>,
    pub size: u64,
    #[serde(flatten)]
    pub status: FileStatus,
    pub findings: Vec<Finding>,
}

impl FileReport {
    pub fn new(path: impl Into<String>, size: u64) -> Self {
        FileReport {
            path: path.into(),
            formats: Vec::new(),
            size,
            status: FileStatus::Complete,
            findings: Vec::new(),
        }
    }

    pub fn error(path: impl Into<String>, size: u64, reason: impl Into<String>) -> Self {
        let mut r = FileReport::new(path, size);
        r.status = FileStatus::Error { reason: reason.into() };
        r
    }

    /// Records a format once, keeping first-seen order.
    pub fn add_format(&mut self, format: &str) {
        if !self.formats.iter().any(|f| f == format) {
            self.formats.push(format.to_owned());
        }
    }

    /// Marks the report incomplete; the first reason wins, later ones are appended.
    pub fn mark_incomplete(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        match &mut self.status {
            FileStatus::Complete => self.status = FileStatus::Incomplete { reason },
            FileStatus::Incomplete { reason: r } => {
                if !r.contains(&reason) {
                    r.push_str("; ");
                    r.push_str(&reason);
                }
            }
            FileStatus::Error { .. } => {}
        }
    }

    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub bytes: u64,
    /// Files per recognised outer format; `unrecognised` counts the rest.
    pub formats: BTreeMap<String, u64>,
    pub unrecognised: u64,
    pub findings: BTreeMap<Severity, u64>,
    pub incomplete: u64,
    pub errors: u64,
    /// Findings suppressed by `ignore` entries in the config or by a baseline.
    pub suppressed: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    pub schema_version: u32,
    pub tool: Tool,
    pub files: Vec<FileReport>,
    pub summary: Summary,
}

impl ScanReport {
    /// Builds the report and its summary from per-file results. Files are sorted by path
    /// so that output does not depend on scheduling.
    pub fn new(version: &str, mut files: Vec<FileReport>, suppressed: u64, duration_ms: u64) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut summary = Summary {
            suppressed,
            duration_ms,
            ..Summary::default()
        };
        for f in &files {
            summary.files += 1;
            summary.bytes += f.size;
            match f.formats.first() {
                Some(fmt) => *summary.formats.entry(fmt.clone()).or_default() += 1,
                None if matches!(f.status, FileStatus::Error { .. }) => {}
                None => summary.unrecognised += 1,
            }
            match f.status {
                FileStatus::Complete => {}
                FileStatus::Incomplete { .. } => summary.incomplete += 1,
                FileStatus::Error { .. } => summary.errors += 1,
            }
            for finding in &f.findings {
                *summary.findings.entry(finding.severity).or_default() += 1;
            }
        }
        ScanReport {
            schema_version: JSON_SCHEMA_VERSION,
            tool: Tool {
                name: "palisade".to_owned(),
                version: version.to_owned(),
            },
            files,
            summary,
        }
    }

    pub fn findings(&self) -> impl Iterator<Item = &crate::finding::Finding> {
        self.files.iter().flat_map(|f| f.findings.iter())
    }

    /// True when some file was not analysed completely (error or incomplete).
    pub fn has_gaps(&self) -> bool {
        self.summary.errors > 0 || self.summary.incomplete > 0
    }
}
