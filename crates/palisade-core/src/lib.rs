//! Palisade's shared vocabulary: findings, the rule registry, severities, catalog
//! references and the renderers that turn a scan report into human, JSON or SARIF output.
//!
//! This crate has no I/O of its own beyond writing into a caller-supplied `Write`; it knows
//! nothing about terminals, files or the network.

pub mod attest;
pub mod catalog;
pub mod facts;
pub mod finding;
pub mod io;
pub mod merkle;
pub mod render;
pub mod report;
pub mod rule;
pub mod time;

pub use finding::{Finding, Location, Severity};
pub use report::{FileReport, FileStatus, ScanReport, Summary};
pub use rule::{Rule, RuleStatus};
