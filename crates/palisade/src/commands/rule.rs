use std::io::Write;

use anyhow::{bail, Result};

use super::all_rules;
use crate::cli::RuleArgs;
use crate::EXIT_CLEAN;

pub fn run(args: RuleArgs) -> Result<u8> {
    let rules = all_rules();
    let mut out = std::io::stdout().lock();
    match args.code {
        Some(code) => {
            let Some(rule) = rules
                .iter()
                .find(|r| r.code.eq_ignore_ascii_case(&code) || r.name == code)
            else {
                bail!("no rule `{code}`; `palisade rule` lists them all");
            };
            if args.json {
                let mut v = serde_json::to_value(rule)?;
                v["doc"] = serde_json::Value::String(rule.doc());
                v["summary"] = serde_json::Value::String(rule.summary());
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "# {} ({})\n", rule.code, rule.name)?;
                writeln!(
                    out,
                    "Default severity: {}. Status: {}. References: {}.\n",
                    rule.default_severity,
                    rule.status.as_str(),
                    rule.references.join(", ")
                )?;
                writeln!(out, "{}", rule.doc())?;
            }
        }
        None => {
            if args.json {
                let list: Vec<_> = rules
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "code": r.code, "name": r.name, "severity": r.default_severity,
                            "status": r.status, "summary": r.summary(), "references": r.references,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                for r in rules {
                    writeln!(
                        out,
                        "{:<7} {:<9} {:<8} {:<30} {}",
                        r.code,
                        r.default_severity.as_str(),
                        r.status.as_str(),
                        r.name,
                        r.summary()
                    )?;
                }
            }
        }
    }
    Ok(EXIT_CLEAN)
}
