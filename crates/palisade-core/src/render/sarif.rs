//! SARIF 2.1.0 as GitHub code scanning accepts it: rules with help text and a
//! `security-severity`, results with a relative `artifactLocation.uri`, a `region`, and
//! `partialFingerprints` so alerts survive unrelated changes.

use std::io::{self, Write};

use serde_json::{json, Value};

use crate::catalog;
use crate::report::{FileStatus, ScanReport};
use crate::rule::Rule;

const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub fn render_sarif(report: &ScanReport, rules: &[&Rule], out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &sarif_value(report, rules)).map_err(io::Error::other)?;
    writeln!(out)
}

fn rule_value(rule: &Rule) -> Value {
    let doc = rule.doc();
    let mut tags = vec!["security".to_owned()];
    tags.extend(rule.references.iter().map(|r| (*r).to_owned()));
    let mut v = json!({
        "id": rule.code,
        "name": rule.name,
        "shortDescription": { "text": rule.summary() },
        "fullDescription": { "text": rule.summary() },
        "help": { "text": doc, "markdown": doc },
        "defaultConfiguration": { "level": rule.default_severity.sarif_level() },
        "properties": {
            "tags": tags,
            "precision": "high",
            "problem.severity": rule.default_severity.sarif_level(),
            "security-severity": rule.default_severity.security_severity(),
            "status": rule.status.as_str(),
        },
    });
    if let Some(uri) = rule.references.iter().find_map(|r| catalog::url(r)) {
        v["helpUri"] = json!(uri);
    }
    v
}

/// SARIF wants forward-slash URIs relative to the checkout root.
fn artifact_uri(path: &str) -> String {
    let p = path.replace('\\', "/");
    let p = p.strip_prefix("./").unwrap_or(&p);
    p.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub fn sarif_value(report: &ScanReport, rules: &[&Rule]) -> Value {
    let index_of = |code: &str| rules.iter().position(|r| r.code == code);
    let mut results = Vec::new();
    for f in report.findings() {
        let mut message = f.message.clone();
        if let Some(ev) = &f.evidence {
            message.push_str(&format!(" (evidence: {ev})"));
        }
        let mut location = json!({
            "physicalLocation": {
                "artifactLocation": { "uri": artifact_uri(&f.location.path), "uriBaseId": "%SRCROOT%" },
                "region": { "startLine": 1 },
            },
        });
        if !f.location.members.is_empty() || f.location.offset.is_some() {
            let mut name = f.location.members.join("/");
            if let Some(off) = f.location.offset {
                name.push_str(&format!("@{off:#x}"));
            }
            location["logicalLocations"] = json!([{ "fullyQualifiedName": name, "kind": "member" }]);
        }
        let mut result = json!({
            "ruleId": f.code,
            "level": f.severity.sarif_level(),
            "message": { "text": message },
            "locations": [location],
            "partialFingerprints": { "palisadeFindingHash/v1": f.fingerprint() },
            "properties": { "severity": f.severity.as_str(), "security-severity": f.severity.security_severity() },
        });
        if let Some(i) = index_of(&f.code) {
            result["ruleIndex"] = json!(i);
        }
        results.push(result);
    }
    let notifications: Vec<Value> = report
        .files
        .iter()
        .filter_map(|file| {
            let (level, reason) = match &file.status {
                FileStatus::Complete => return None,
                FileStatus::Incomplete { reason } => ("warning", reason),
                FileStatus::Error { reason } => ("error", reason),
            };
            Some(json!({
                "level": level,
                "message": { "text": format!("{}: {reason}", file.path) },
                "locations": [{ "physicalLocation": { "artifactLocation": { "uri": artifact_uri(&file.path), "uriBaseId": "%SRCROOT%" } } }],
            }))
        })
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "palisade",
                "semanticVersion": report.tool.version,
                "version": report.tool.version,

                "rules": rules.iter().map(|r| rule_value(r)).collect::<Vec<_>>(),
            }},
            "automationDetails": { "id": "palisade/scan/" },
            "invocations": [{
                "executionSuccessful": !report.has_gaps(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::artifact_uri;

    #[test]
    fn uris_are_relative_and_escaped() {
        assert_eq!(artifact_uri("./models/a b.pt"), "models/a%20b.pt");
        assert_eq!(artifact_uri("dir\\x.pkl"), "dir/x.pkl");
    }
}
