//! Every catalog id a rule cites must exist in the governance catalogs shipped in
//! `../shared/reference/governance-catalogs.md` (generated from MITRE ATLAS and OWASP's
//! own files). CWE ids are checked for shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use palisade_core::catalog::{catalog_of, Catalog};

fn catalogs() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/governance-catalogs.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is required to check catalog ids ({e}); run with ../shared beside the repository",
            path.display()
        )
    })
}

#[test]
fn rule_references_exist_in_the_catalogs() {
    let text = catalogs();
    let mut seen = 0;
    for rule in palisade_scan::rules::ALL {
        assert!(!rule.references.is_empty(), "{} cites nothing", rule.code);
        for id in rule.references {
            match catalog_of(id) {
                Some(Catalog::Atlas) => assert!(
                    text.contains(&format!("| {id} |")),
                    "{}: {id} is not an ATLAS id",
                    rule.code
                ),
                Some(Catalog::OwaspLlm | Catalog::OwaspMl) => {
                    assert!(
                        text.contains(&format!("{id} ")),
                        "{}: {id} is not an OWASP id",
                        rule.code
                    )
                }
                Some(Catalog::Cwe) => assert!(id[4..].parse::<u32>().is_ok(), "{}: bad CWE id {id}", rule.code),
                Some(Catalog::Cve) => assert!(id.len() > 9, "{}: bad CVE id {id}", rule.code),
                None => panic!("{}: unknown catalog for {id}", rule.code),
            }
            seen += 1;
        }
    }
    assert!(seen > 20);
}

#[test]
fn rule_docs_have_every_heading_and_codes_are_unique() {
    let mut codes = std::collections::HashSet::new();
    for rule in palisade_scan::rules::ALL {
        assert!(codes.insert(rule.code), "duplicate code {}", rule.code);
        let doc = rule.doc();
        for h in [
            "## What it does",
            "## Why is this bad",
            "## Example",
            "## Remediation",
            "## References",
        ] {
            assert!(doc.contains(h), "{} lacks {h}", rule.code);
        }
        assert!(!rule.summary().is_empty());
    }
}

#[test]
fn every_declared_rule_is_registered() {
    let source = include_str!("../src/rules.rs");
    let declared = source.matches("declare_rule! {").count();
    assert_eq!(
        declared,
        palisade_scan::rules::ALL.len(),
        "a rule is declared but missing from rules::ALL"
    );
}
