//! The unit of evidence every Palisade control produces.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::rule::Rule;

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The CVSS-like score GitHub code scanning reads from `security-severity`
    /// (critical > 9.0, high 7.0–8.9, medium 4.0–6.9, low 0.1–3.9).
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Critical => "9.8",
            Severity::High => "8.0",
            Severity::Medium => "5.5",
            Severity::Low => "3.0",
            Severity::Info => "0.0",
        }
    }

    /// SARIF `level` for a result of this severity.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low | Severity::Info => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown severity `{0}` (expected one of: info, low, medium, high, critical)")]
pub struct ParseSeverityError(String);

impl FromStr for Severity {
    type Err = ParseSeverityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(ParseSeverityError(s.to_owned())),
        }
    }
}

/// Where a finding is: a file, the chain of archive members (or embedded streams) inside
/// it, and a byte offset within the innermost one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl Location {
    pub fn new(path: impl Into<String>) -> Self {
        Location {
            path: path.into(),
            members: Vec::new(),
            offset: None,
        }
    }

    /// A location one level deeper: `member` inside this one.
    pub fn member(&self, member: impl Into<String>) -> Self {
        let mut loc = self.clone();
        loc.members.push(member.into());
        loc.offset = None;
        loc
    }

    pub fn at(&self, offset: u64) -> Self {
        let mut loc = self.clone();
        loc.offset = Some(offset);
        loc
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        for m in &self.members {
            write!(f, " > {m}")?;
        }
        if let Some(off) = self.offset {
            write!(f, " @ {off:#x}")?;
        }
        Ok(())
    }
}

/// One piece of evidence: a rule fired at a location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule code, e.g. `PKL001`.
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    /// What was seen, verbatim where safe (e.g. the callable and its first arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// CWE, CVE, MITRE ATLAS and OWASP ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

impl Finding {
    /// A finding for `rule` at its default severity, carrying the rule's references.
    pub fn new(rule: &Rule, location: Location, message: impl Into<String>) -> Self {
        Finding {
            code: rule.code.to_owned(),
            severity: rule.default_severity,
            message: message.into(),
            location,
            evidence: None,
            references: rule.references.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// A stable identity for this finding: rule, file, member chain and evidence (or
    /// message) — not the byte offset, which moves when unrelated bytes change. Used for
    /// SARIF `partialFingerprints` and `--baseline`.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [self.code.as_str(), self.location.path.as_str()]
            .into_iter()
            .chain(self.location.members.iter().map(String::as_str))
            .chain(std::iter::once(self.evidence.as_deref().unwrap_or(&self.message)))
        {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    #[must_use]
    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = Some(evidence.into());
        self
    }
}
