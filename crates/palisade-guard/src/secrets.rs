//! Secrets: provider key formats, PEM private keys, JWTs, credential assignments and
//! high-entropy tokens near credential words.

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use regex::Regex;

use crate::pii::{context, has_word, re, Entity};

struct Format {
    kind: &'static str,
    pattern: &'static str,
    score: f32,
    what: &'static str,
}

const FORMATS: &[Format] = &[
    Format {
        kind: "AWS_ACCESS_KEY",
        pattern: r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z2-7]{16}\b",
        score: 0.95,
        what: "AWS access key id",
    },
    Format {
        kind: "GITHUB_TOKEN",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,251})\b",
        score: 0.95,
        what: "GitHub token",
    },
    Format {
        kind: "SLACK_TOKEN",
        pattern: r"\bxox[abposre]-[A-Za-z0-9-]{10,250}\b|https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,120}",
        score: 0.95,
        what: "Slack token or webhook",
    },
    Format {
        kind: "ANTHROPIC_KEY",
        pattern: r"\bsk-ant-[a-z]{3,8}\d{2}-[A-Za-z0-9_-]{40,200}",
        score: 0.95,
        what: "Anthropic API key",
    },
    Format {
        kind: "OPENAI_KEY",
        pattern: r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,200}",
        score: 0.9,
        what: "OpenAI API key",
    },
    Format {
        kind: "GOOGLE_API_KEY",
        pattern: r"\bAIza[0-9A-Za-z_-]{35}\b",
        score: 0.95,
        what: "Google API key",
    },
    Format {
        kind: "STRIPE_KEY",
        pattern: r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,99}\b",
        score: 0.95,
        what: "Stripe secret key",
    },
    Format {
        kind: "HUGGINGFACE_TOKEN",
        pattern: r"\bhf_[A-Za-z0-9]{34,40}\b",
        score: 0.9,
        what: "Hugging Face token",
    },
    Format {
        kind: "GITLAB_TOKEN",
        pattern: r"\bglpat-[A-Za-z0-9_-]{20,40}\b",
        score: 0.95,
        what: "GitLab personal access token",
    },
];

static FORMAT_RES: LazyLock<Vec<Option<Regex>>> = LazyLock::new(|| FORMATS.iter().map(|f| re(f.pattern)).collect());
static PEM: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"));
static JWT: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,1024}"));
static ASSIGN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?key|token)\b["']?\s*[:=]\s*["']?([^\s"',;]{6,200})"#,
    )
});
static TOKEN: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"[A-Za-z0-9_+/=-]{20,200}"));

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / f64::from(n);
            -p * p.log2()
        })
        .sum()
}

const CREDENTIAL_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "api",
    "apikey",
    "auth",
    "bearer",
    "credential",
    "credentials",
    "access",
    "private",
];

/// Secrets in `text` with confidence ≥ `min_score`.
pub fn find(text: &str, min_score: f32) -> Vec<Entity> {
    let mut out = Vec::new();
    for (f, re) in FORMATS.iter().zip(FORMAT_RES.iter()) {
        let Some(re) = re else { continue };
        for m in re.find_iter(text) {
            // A provider token is random: reject words-with-underscores look-alikes.
            if entropy(m.as_str()) < 3.0 {
                continue;
            }
            out.push(Entity {
                kind: f.kind,
                start: m.start(),
                end: m.end(),
                score: f.score,
                reason: f.what.to_owned(),
            });
        }
    }
    if let Some(re) = PEM.as_ref() {
        for m in re.find_iter(text) {
            let rest = &text[m.end()..];
            let window = &rest[..floor_boundary(rest, 16 * 1024)];
            let end = match window.find("-----END ") {
                Some(i) => {
                    let tail = &window[i + 9..];
                    m.end() + i + 9 + tail.find("-----").map_or(0, |j| j + 5)
                }
                None => m.end(),
            };
            out.push(Entity {
                kind: "PRIVATE_KEY",
                start: m.start(),
                end,
                score: 0.99,
                reason: "PEM private key block".to_owned(),
            });
        }
    }
    if let Some(re) = JWT.as_ref() {
        for m in re.find_iter(text) {
            let header = m.as_str().split('.').next().unwrap_or_default();
            let Ok(bytes) = URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')) else {
                continue;
            };
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if json.get("alg").is_none() {
                continue;
            }
            out.push(Entity {
                kind: "JWT",
                start: m.start(),
                end: m.end(),
                score: 0.95,
                reason: "JSON Web Token with a JSON header".to_owned(),
            });
        }
    }
    if let Some(re) = ASSIGN.as_ref() {
        for c in re.captures_iter(text) {
            let Some(v) = c.get(1) else { continue };
            let val = v.as_str();
            // Placeholders are not secrets.
            let lower = val.to_ascii_lowercase();
            if [
                "xxxx", "****", "<", "{", "$", "example", "changeme", "redacted", "your_", "none", "null", "true",
                "false",
            ]
            .iter()
            .any(|p| lower.contains(p))
            {
                continue;
            }
            let score = if entropy(val) >= 2.5 && val.len() >= 8 {
                0.85
            } else {
                0.6
            };
            out.push(Entity {
                kind: "CREDENTIAL",
                start: v.start(),
                end: v.end(),
                score,
                reason: "value assigned to a credential name".to_owned(),
            });
        }
    }
    if let Some(re) = TOKEN.as_ref() {
        for m in re.find_iter(text) {
            let s = m.as_str();
            let classes = [
                s.bytes().any(|b| b.is_ascii_lowercase()),
                s.bytes().any(|b| b.is_ascii_uppercase()),
                s.bytes().any(|b| b.is_ascii_digit()),
            ];
            let h = entropy(s);
            if classes.iter().filter(|c| **c).count() < 3 || h < 4.0 || s.len() < 24 {
                continue;
            }
            let (before, _) = context(text, m.start(), m.end(), 40);
            let score = if has_word(&before, CREDENTIAL_WORDS) { 0.8 } else { 0.45 };
            out.push(Entity {
                kind: "HIGH_ENTROPY_TOKEN",
                start: m.start(),
                end: m.end(),
                score,
                reason: format!("high-entropy token ({h:.1} bits/char)"),
            });
        }
    }
    out.retain(|e| e.score >= min_score);
    out
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::resolve_overlaps;

    fn check(input: &str, expect: &[(&str, &str)]) {
        let got = resolve_overlaps(find(input, 0.5));
        let got: Vec<(&str, &str)> = got.iter().map(|e| (e.kind, &input[e.start..e.end])).collect();
        assert_eq!(got, expect, "input {input:?}");
    }

    #[test]
    fn secrets_table() {
        check(
            "key AKIAIOSFODNN7EXAMPLE here",
            &[("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE")],
        );
        check("AKIAIOSFODNN7EXAMPL", &[]); // one short
        check("AKIA1111111111111111", &[]); // 1 is not base32
        let gh = "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";
        check(&format!("token {gh}"), &[("GITHUB_TOKEN", gh)]);
        check("ghp_short", &[]);
        let pat = format!(
            "github_pat_11ABCDEFG0{}",
            "aZ3kQ9xL2mN8pR5tV7wY1bC4dF6gH0jK2lM4nP6qS8uW0yA2cE4gI6kM8oQ0sU2wY4"
        );
        check(&pat, &[("GITHUB_TOKEN", pat.as_str())]);
        check(
            "xoxb-2244668800-1122334455-AbCdEfGhIjKlMnOpQrStUvWx",
            &[("SLACK_TOKEN", "xoxb-2244668800-1122334455-AbCdEfGhIjKlMnOpQrStUvWx")],
        );
        check(
            "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3h",
            &[("OPENAI_KEY", "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3h")],
        );
        check("ask-the-user-about-their-preferences-today", &[]);
        check(
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
            &[("GOOGLE_API_KEY", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY")],
        );
        check("AIza-too-short", &[]);
        check(
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            &[("STRIPE_KEY", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")],
        );
        check("pk_live_4eC39HqLyjWDarjtT1zdp7dc is publishable", &[]);
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----";
        check(&format!("here:\n{pem}\nbye"), &[("PRIVATE_KEY", pem)]);
        check("-----BEGIN PUBLIC KEY-----", &[]);
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        check(&format!("Bearer {jwt}"), &[("JWT", jwt)]);
        check("eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxMjM0In0.abc", &[]); // header has no alg
        check("password: hunter2hunter2", &[("CREDENTIAL", "hunter2hunter2")]);
        check("password: <your password>", &[]);
        check(
            "api_key = \"Zr8pQ2xW9vL4mN7kT1yB6cH3\"",
            &[("CREDENTIAL", "Zr8pQ2xW9vL4mN7kT1yB6cH3")],
        );
        check(
            "the secret token is Zr8pQ2xW9vL4mN7kT1yB6cH3jD5f",
            &[("HIGH_ENTROPY_TOKEN", "Zr8pQ2xW9vL4mN7kT1yB6cH3jD5f")],
        );
        // High entropy without a credential word, digests and prose are not reported.
        check("image Zr8pQ2xW9vL4mN7kT1yB6cH3jD5f loaded", &[]);
        check(
            "commit e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &[],
        );
        check("How do I rotate my API keys safely?", &[]);
    }

    #[test]
    fn every_pattern_compiles() {
        assert!(FORMAT_RES.iter().all(Option::is_some));
        for r in [&PEM, &JWT, &ASSIGN, &TOKEN] {
            assert!(r.is_some());
        }
    }

    #[test]
    fn entropy_values() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
    }
}
