//! Rules: stable codes with documentation taken from each rule's doc comment.
//!
//! A detector crate declares its rules with [`declare_rule!`](crate::declare_rule) and
//! exposes them as one `&[&Rule]` slice; the binary concatenates those slices into the
//! registry `palisade rule` prints. Codes are never reused.

use serde::Serialize;

use crate::finding::Severity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// New; its behaviour or wording may still change.
    Preview,
    /// Its code, meaning and default severity are stable.
    Stable,
}

impl RuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Preview => "preview",
            RuleStatus::Stable => "stable",
        }
    }
}

/// A rule's metadata. Build one with [`declare_rule!`](crate::declare_rule).
#[derive(Debug, Serialize)]
pub struct Rule {
    /// Stable code, e.g. `PKL001`.
    pub code: &'static str,
    /// Kebab-case name, e.g. `dangerous-callable-invoked`.
    pub name: &'static str,
    pub default_severity: Severity,
    pub status: RuleStatus,
    /// Catalog references: `CWE-502`, `AML.T0011.000`, `LLM03:2025`, `ML06:2023`, …
    pub references: &'static [&'static str],
    /// Markdown, taken verbatim from the rule's doc comment (one leading space per line
    /// removed by [`Rule::doc`]).
    #[serde(skip)]
    pub raw_doc: &'static str,
}

impl Rule {
    /// The rule's documentation as Markdown.
    pub fn doc(&self) -> String {
        let mut out = String::with_capacity(self.raw_doc.len());
        for line in self.raw_doc.lines() {
            out.push_str(line.strip_prefix(' ').unwrap_or(line));
            out.push('\n');
        }
        out.trim().to_owned()
    }

    /// The first paragraph under `## What it does`, on one line.
    pub fn summary(&self) -> String {
        section(&self.doc(), "What it does")
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The body of a `## heading` section of a Markdown document, trimmed.
pub fn section(doc: &str, heading: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            inside = h.trim() == heading;
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim().to_owned()
}

/// Declares a `pub static` [`Rule`] whose documentation is its doc comment.
///
/// ```
/// palisade_core::declare_rule! {
///     /// ## What it does
///     /// Flags things.
///     pub static EXAMPLE = {
///         code: "EXM001",
///         name: "example",
///         severity: Low,
///         status: Preview,
///         references: ["CWE-502"],
///     };
/// }
/// assert_eq!(EXAMPLE.summary(), "Flags things.");
/// ```
#[macro_export]
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])*
        pub static $ident:ident = {
            code: $code:literal,
            name: $name:literal,
            severity: $sev:ident,
            status: $status:ident,
            references: [$($r:literal),* $(,)?] $(,)?
        };
    ) => {
        $(#[doc = $doc])*
        pub static $ident: $crate::rule::Rule = $crate::rule::Rule {
            code: $code,
            name: $name,
            default_severity: $crate::finding::Severity::$sev,
            status: $crate::rule::RuleStatus::$status,
            references: &[$($r),*],
            raw_doc: concat!($($doc, "\n"),*),
        };
    };
}
