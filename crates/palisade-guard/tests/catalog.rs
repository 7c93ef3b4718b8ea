//! Every catalog id a guard rule cites must exist in
//! `../shared/reference/governance-catalogs.md`; every rule has the fixed headings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use palisade_core::catalog::{catalog_of, Catalog};

#[test]
fn guard_rule_references_exist_and_docs_have_every_heading() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/governance-catalogs.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is required to check catalog ids ({e}); run with ../shared beside the repository",
            path.display()
        )
    });
    let mut codes = std::collections::HashSet::new();
    for rule in palisade_guard::rules::ALL {
        assert!(codes.insert(rule.code), "duplicate code {}", rule.code);
        assert!(rule.code.starts_with("GRD"));
        assert!(!rule.references.is_empty(), "{} cites nothing", rule.code);
        for id in rule.references {
            match catalog_of(id) {
                Some(Catalog::Atlas) => assert!(text.contains(&format!("| {id} |")), "{}: {id}", rule.code),
                Some(Catalog::OwaspLlm | Catalog::OwaspMl) => {
                    assert!(text.contains(&format!("{id} ")), "{}: {id}", rule.code)
                }
                Some(Catalog::Cwe) => assert!(id[4..].parse::<u32>().is_ok(), "{}: {id}", rule.code),
                other => panic!("{}: unexpected reference {id} ({other:?})", rule.code),
            }
        }
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
    }
    let source = include_str!("../src/rules.rs");
    assert_eq!(
        source.matches("declare_rule! {").count(),
        palisade_guard::rules::ALL.len()
    );
}
