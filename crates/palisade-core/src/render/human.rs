use std::io::{self, Write};

use anstyle::{AnsiColor, Effects, Style};

use crate::finding::Severity;
use crate::report::{FileStatus, ScanReport};

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical => AnsiColor::Red.on_default().effects(Effects::BOLD),
        Severity::High => AnsiColor::Red.on_default(),
        Severity::Medium => AnsiColor::Yellow.on_default(),
        Severity::Low => AnsiColor::Cyan.on_default(),
        Severity::Info => AnsiColor::BrightBlack.on_default(),
    }
}

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }
}

/// Human output: findings grouped by file (most severe first), files that were not fully
/// analysed, then one summary line. Clean files are not listed.
pub fn render_human(report: &ScanReport, out: &mut dyn Write, color: bool) -> io::Result<()> {
    let p = Painter { color };
    let bold = Style::new().effects(Effects::BOLD);
    let dim = AnsiColor::BrightBlack.on_default();
    for file in &report.files {
        let gap = match &file.status {
            FileStatus::Complete => None,
            FileStatus::Incomplete { reason } => Some(("incomplete", reason)),
            FileStatus::Error { reason } => Some(("error", reason)),
        };
        if file.findings.is_empty() && gap.is_none() {
            continue;
        }
        let formats = if file.formats.is_empty() {
            String::new()
        } else {
            format!("  [{}]", file.formats.join(" > "))
        };
        writeln!(out, "{}{}", p.paint(bold, &file.path), p.paint(dim, &formats))?;
        let mut findings: Vec<_> = file.findings.iter().collect();
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.location.members.cmp(&b.location.members))
                .then_with(|| a.location.offset.cmp(&b.location.offset))
        });
        for f in findings {
            let mut place = f.location.members.join(" > ");
            if let Some(off) = f.location.offset {
                if !place.is_empty() {
                    place.push(' ');
                }
                place.push_str(&format!("@ {off:#x}"));
            }
            writeln!(
                out,
                "  {} {} {}  {}",
                p.paint(severity_style(f.severity), &format!("{:<8}", f.severity.as_str())),
                p.paint(bold, &f.code),
                f.message,
                p.paint(dim, &place),
            )?;
            if let Some(ev) = &f.evidence {
                writeln!(out, "           {}", p.paint(dim, &format!("evidence: {ev}")))?;
            }
        }
        if let Some((label, reason)) = gap {
            let style = AnsiColor::Magenta.on_default().effects(Effects::BOLD);
            writeln!(out, "  {} {reason}", p.paint(style, label))?;
        }
        writeln!(out)?;
    }
    writeln!(out, "{}", summary_line(report))
}

/// `Scanned 3 files (1.2 MiB) in 0.04s: pickle 2, unrecognised 1. Findings: 1 critical. 0 incomplete, 0 errors.`
pub fn summary_line(report: &ScanReport) -> String {
    let s = &report.summary;
    let mut formats: Vec<String> = s.formats.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if s.unrecognised > 0 {
        formats.push(format!("unrecognised {}", s.unrecognised));
    }
    let formats = if formats.is_empty() {
        String::new()
    } else {
        format!(": {}", formats.join(", "))
    };
    let findings: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|sev| s.findings.get(sev).map(|n| format!("{n} {sev}")))
        .collect();
    let findings = if findings.is_empty() {
        "no findings".to_owned()
    } else {
        format!("findings: {}", findings.join(", "))
    };
    let suppressed = if s.suppressed > 0 {
        format!(" ({} suppressed)", s.suppressed)
    } else {
        String::new()
    };
    format!(
        "Scanned {} file{} ({}) in {:.2}s{formats}; {findings}{suppressed}; {} incomplete, {} error{}.",
        s.files,
        if s.files == 1 { "" } else { "s" },
        human_bytes(s.bytes),
        s.duration_ms as f64 / 1000.0,
        s.incomplete,
        s.errors,
        if s.errors == 1 { "" } else { "s" },
    )
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
