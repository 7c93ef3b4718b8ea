//! Catalog references: CWE, CVE, MITRE ATLAS, OWASP Top 10 for LLM and ML.
//!
//! Ids are facts taken from the primary catalogs (see
//! `shared/reference/governance-catalogs.md`); a test checks every rule's references
//! against that file.

/// Which catalog a reference id belongs to, judged by its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Catalog {
    Cwe,
    Cve,
    Atlas,
    OwaspLlm,
    OwaspMl,
}

pub fn catalog_of(id: &str) -> Option<Catalog> {
    if id.starts_with("CWE-") {
        Some(Catalog::Cwe)
    } else if id.starts_with("CVE-") {
        Some(Catalog::Cve)
    } else if id.starts_with("AML.") {
        Some(Catalog::Atlas)
    } else if id.starts_with("LLM") {
        Some(Catalog::OwaspLlm)
    } else if id.starts_with("ML") {
        Some(Catalog::OwaspMl)
    } else {
        None
    }
}

/// A stable public page for a reference id, where one exists.
pub fn url(id: &str) -> Option<String> {
    match catalog_of(id)? {
        Catalog::Cwe => Some(format!(
            "https://cwe.mitre.org/data/definitions/{}.html",
            id.trim_start_matches("CWE-")
        )),
        Catalog::Cve => Some(format!("https://www.cve.org/CVERecord?id={id}")),
        Catalog::Atlas => {
            // Sub-techniques live under their parent's page.
            Some(format!("https://atlas.mitre.org/techniques/{id}"))
        }
        Catalog::OwaspLlm => Some("https://genai.owasp.org/llm-top-10/".to_owned()),
        Catalog::OwaspMl => Some("https://owasp.org/www-project-machine-learning-security-top-10/".to_owned()),
    }
}
