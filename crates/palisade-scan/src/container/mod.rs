//! Containers: zip (PyTorch, TorchScript, Keras, `.npz`), tar (legacy PyTorch and model
//! bundles), 7z, NumPy `.npy` and compressed streams. Every member is sniffed by content.

pub mod compressed;
pub mod npy;
pub mod sevenz;
pub mod tar;
pub mod zip;

use palisade_core::{FileReport, Finding, Location};

use crate::rules;

/// Why a member path would land outside the extraction directory, if it would.
pub fn unsafe_path(name: &str) -> Option<&'static str> {
    let n = name.replace('\\', "/");
    if n.starts_with('/') {
        return Some("an absolute path");
    }
    if n.len() >= 2 && n.as_bytes()[1] == b':' && n.as_bytes()[0].is_ascii_alphabetic() {
        return Some("a drive-letter path");
    }
    if n.split('/').any(|seg| seg == "..") {
        return Some("a `..` component");
    }
    None
}

/// Where a link in an archive points, if it escapes the extraction root. `member` is the
/// link's own path, `target` what it points at.
pub fn escaping_link(member: &str, target: &str) -> Option<&'static str> {
    let t = target.replace('\\', "/");
    if t.starts_with('/') || (t.len() >= 2 && t.as_bytes()[1] == b':') {
        return Some("an absolute target");
    }
    // Resolve relative to the link's directory and see whether it climbs above the root.
    let mut depth: i64 = member
        .replace('\\', "/")
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .count() as i64
        - 1;
    for seg in t.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Some("a target outside the archive");
                }
            }
            _ => depth += 1,
        }
    }
    None
}

pub fn path_finding(report: &mut FileReport, loc: &Location, name: &str) {
    if let Some(why) = unsafe_path(name) {
        report.findings.push(
            Finding::new(
                &rules::ARC002,
                loc.clone(),
                format!("member `{name}` has {why}: extracting it writes outside the target directory"),
            )
            .with_evidence(name.to_owned()),
        );
    }
}

pub fn link_finding(report: &mut FileReport, loc: &Location, name: &str, target: &str, kind: &str) {
    if let Some(why) = escaping_link(name, target) {
        report.findings.push(
            Finding::new(
                &rules::ARC003,
                loc.clone(),
                format!("{kind} `{name}` has {why}: extraction or loading follows it out of the model"),
            )
            .with_evidence(format!("{name} -> {target}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(unsafe_path("archive/data.pkl"), None);
        assert!(unsafe_path("../../evil.pkl").is_some());
        assert!(unsafe_path("/tmp/evil").is_some());
        assert!(unsafe_path("C:\\Windows\\x").is_some());
        assert!(unsafe_path("a/..\\..\\b").is_some());
    }

    #[test]
    fn links() {
        assert_eq!(escaping_link("model/weights.bin", "data/w.bin"), None);
        assert_eq!(escaping_link("model/weights.bin", "../model/w.bin"), None);
        assert!(escaping_link("model/weights.bin", "../../etc/passwd").is_some());
        assert!(escaping_link("weights.bin", "/etc/passwd").is_some());
        assert!(escaping_link("a", "../x").is_some());
    }
}
