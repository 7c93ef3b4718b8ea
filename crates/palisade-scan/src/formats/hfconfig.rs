//! Hugging Face JSON configs (`config.json`, `tokenizer_config.json`, …): recognised by
//! their keys, not their names. `chat_template` strings are analysed like GGUF templates;
//! `auto_map` means loading needs `trust_remote_code=True`, i.e. runs Python shipped with
//! the model.

use std::io::Read;

use palisade_core::{FileReport, Finding, Location};
use serde_json::Value;

use super::gguf::check_template;
use crate::rules;

/// Configs larger than this are not read.
const MAX_CONFIG: u64 = 16 << 20;

/// Keys that mark a JSON object as a Hugging Face model or tokenizer config.
const HF_KEYS: &[&str] = &[
    "model_type",
    "architectures",
    "auto_map",
    "chat_template",
    "tokenizer_class",
    "transformers_version",
];

pub fn sniff(head: &[u8]) -> bool {
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Reads and checks a JSON config; leaves the report untouched when it is not one.
pub fn scan(r: &mut dyn Read, loc: &Location, report: &mut FileReport) {
    let mut text = Vec::new();
    if r.take(MAX_CONFIG + 1).read_to_end(&mut text).is_err() || text.len() as u64 > MAX_CONFIG {
        return;
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&text) else {
        return;
    };
    if !HF_KEYS.iter().any(|k| obj.contains_key(*k)) {
        return;
    }
    report.add_format("hf-config");
    match obj.get("chat_template") {
        Some(Value::String(t)) => check_template(t, "chat_template", &loc.member("chat_template"), 0, report),
        Some(Value::Array(items)) => {
            for item in items {
                let name = item.get("name").and_then(Value::as_str).unwrap_or("?");
                if let Some(t) = item.get("template").and_then(Value::as_str) {
                    let key = format!("chat_template.{name}");
                    check_template(t, &key, &loc.member(key.clone()), 0, report);
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Object(map)) = obj.get("auto_map") {
        let refs: Vec<String> = map
            .values()
            .flat_map(|v| match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                _ => vec![],
            })
            .collect();
        report.findings.push(
            Finding::new(
                &rules::HFC001,
                loc.member("auto_map"),
                "loading this model needs `trust_remote_code=True`: it runs Python code shipped with the model"
                    .to_owned(),
            )
            .with_evidence(refs.join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{scan_bytes, ScanOptions};

    fn codes(text: &str) -> (Vec<String>, Vec<String>) {
        let r = scan_bytes(text.as_bytes(), "t", &ScanOptions::default());
        (r.findings.into_iter().map(|f| f.code).collect(), r.formats)
    }

    #[test]
    fn configs() {
        assert_eq!(
            codes(r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#),
            (vec![], vec!["hf-config".into()])
        );
        assert_eq!(
            codes(r#"{"tokenizer_class": "X", "chat_template": "{{ lipsum.__globals__['os'].popen('id') }}"}"#).0,
            vec!["GGF002"]
        );
        assert_eq!(
            codes(r#"{"model_type": "x", "auto_map": {"AutoModel": "modeling_x.XModel"}}"#).0,
            vec!["HFC001"]
        );
        // Not a Hugging Face config: not recognised, no findings.
        assert_eq!(codes(r#"{"a": 1}"#), (vec![], vec![]));
    }
}
