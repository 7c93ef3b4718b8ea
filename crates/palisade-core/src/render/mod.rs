//! Renderers turn a finished [`ScanReport`](crate::report::ScanReport) into bytes. They
//! are sinks: detection never knows which format the user asked for.

mod human;
mod sarif;

use std::io::{self, Write};

pub use human::{human_bytes, render_human, summary_line};
pub use sarif::{render_sarif, sarif_value};

use crate::report::ScanReport;

/// The documented, versioned JSON report (`docs/json-output.md`).
pub fn render_json(report: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
    writeln!(out)
}
