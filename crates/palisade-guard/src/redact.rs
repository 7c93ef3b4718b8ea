//! Redaction: mask, keyed hash, and reversible pseudonymisation with a per-request vault.
//!
//! * `mask`: `<EMAIL>`;
//! * `hash`: `<EMAIL:3f2a9c1d>`, the first hex digits of HMAC-SHA256(key, kind ‖ 0 ‖ value);
//! * `pseudonymise`: `<EMAIL_1>`, numbered per kind in order of first appearance; the
//!   same value gets the same placeholder within a request, and the request's [`Vault`]
//!   puts the originals back into the response ([`Vault::restore`]).

use std::collections::HashMap;
use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;

use crate::config::{RedactionConfig, RedactionMode};
use crate::pii::Entity;
use crate::GuardError;

/// The HMAC key for `hash` mode: the configured hex key, or 32 random bytes.
pub(crate) fn hash_key(cfg: &RedactionConfig) -> Result<Vec<u8>, GuardError> {
    match &cfg.hash_key {
        Some(h) => {
            let k = hex::decode(h.trim()).map_err(|e| GuardError::Config(format!("redaction.hash_key: {e}")))?;
            if k.len() < 16 {
                return Err(GuardError::Config(
                    "redaction.hash_key must be at least 16 bytes (32 hex digits)".to_owned(),
                ));
            }
            Ok(k)
        }
        None => {
            use rand_core::RngCore;
            let mut k = vec![0u8; 32];
            rand_core::OsRng.fill_bytes(&mut k);
            Ok(k)
        }
    }
}

/// Placeholders handed out for one request and the values they stand for.
#[derive(Clone, Debug, Default)]
pub struct Vault {
    by_placeholder: HashMap<String, String>,
    by_value: HashMap<(String, String), String>,
    counters: HashMap<String, usize>,
}

static PLACEHOLDER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"<[A-Z][A-Z0-9_]*_[0-9]{1,6}>").ok());

impl Vault {
    pub fn new() -> Vault {
        Vault::default()
    }

    /// The placeholder for `value` of `kind`, reusing the one given before.
    pub fn placeholder(&mut self, kind: &str, value: &str) -> String {
        self.placeholder_avoiding(kind, value, "")
    }

    /// Like [`placeholder`](Self::placeholder), but never a placeholder that already
    /// occurs in `text` (a user who types `<EMAIL_1>` must not get someone's address
    /// back in the response).
    pub fn placeholder_avoiding(&mut self, kind: &str, value: &str, text: &str) -> String {
        let key = (kind.to_owned(), value.to_owned());
        if let Some(p) = self.by_value.get(&key) {
            return p.clone();
        }
        let n = self.counters.entry(kind.to_owned()).or_insert(0);
        let mut p;
        loop {
            *n += 1;
            p = format!("<{kind}_{n}>");
            if !text.contains(&p) {
                break;
            }
        }
        self.by_placeholder.insert(p.clone(), value.to_owned());
        self.by_value.insert(key, p.clone());
        p
    }

    /// Replaces every placeholder this vault handed out with its original value;
    /// unknown placeholders are left alone.
    pub fn restore(&self, text: &str) -> String {
        if self.by_placeholder.is_empty() {
            return text.to_owned();
        }
        let Some(re) = PLACEHOLDER.as_ref() else {
            return text.to_owned();
        };
        re.replace_all(text, |c: &regex::Captures<'_>| {
            self.by_placeholder
                .get(&c[0])
                .cloned()
                .unwrap_or_else(|| c[0].to_owned())
        })
        .into_owned()
    }

    pub fn len(&self) -> usize {
        self.by_placeholder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }
}

/// How to rewrite one value.
pub struct Redactor<'k> {
    pub mode: RedactionMode,
    pub key: &'k [u8],
    pub hex_digits: usize,
}

impl Redactor<'_> {
    /// The replacement for `value`; pseudonyms avoid placeholders already in `text`.
    pub fn replacement(&self, kind: &str, value: &str, vault: &mut Vault, text: &str) -> String {
        match self.mode {
            RedactionMode::Mask => format!("<{kind}>"),
            RedactionMode::Hash => {
                let tag = match Hmac::<Sha256>::new_from_slice(self.key) {
                    Ok(mut mac) => {
                        mac.update(kind.as_bytes());
                        mac.update(&[0]);
                        mac.update(value.as_bytes());
                        hex::encode(mac.finalize().into_bytes())
                    }
                    Err(_) => String::new(),
                };
                let n = self.hex_digits.clamp(4, 64).min(tag.len());
                format!("<{kind}:{}>", &tag[..n])
            }
            RedactionMode::Pseudonymise => vault.placeholder_avoiding(kind, value, text),
        }
    }

    /// `text` with every entity (non-overlapping, any order) replaced.
    pub fn apply(&self, text: &str, entities: &[Entity], vault: &mut Vault) -> String {
        let mut sorted: Vec<&Entity> = entities.iter().collect();
        sorted.sort_by_key(|e| e.start);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for e in sorted {
            if e.start < at || e.end > text.len() {
                continue;
            }
            let (Some(keep), Some(value)) = (text.get(at..e.start), text.get(e.start..e.end)) else {
                continue;
            };
            out.push_str(keep);
            out.push_str(&self.replacement(e.kind, value, vault, text));
            at = e.end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(kind: &'static str, start: usize, end: usize) -> Entity {
        Entity {
            kind,
            start,
            end,
            score: 1.0,
            reason: String::new(),
        }
    }

    fn check(mode: RedactionMode, input: &str, ents: &[Entity], expect: &str) {
        let r = Redactor {
            mode,
            key: b"0123456789abcdef0123456789abcdef",
            hex_digits: 8,
        };
        let mut v = Vault::new();
        let got = r.apply(input, ents, &mut v);
        if expect.contains('*') {
            // `*` stands for hex digits.
            let pattern = regex::escape(expect).replace(r"\*", "[0-9a-f]");
            assert!(Regex::new(&format!("^{pattern}$")).unwrap().is_match(&got), "{got}");
        } else {
            assert_eq!(got, expect);
        }
        if mode == RedactionMode::Pseudonymise {
            assert_eq!(v.restore(&got), input, "vault round trip");
        }
    }

    #[test]
    fn redaction_table() {
        let text = "mail a@x.io or b@y.io or a@x.io";
        let ents = [ent("EMAIL", 5, 11), ent("EMAIL", 15, 21), ent("EMAIL", 25, 31)];
        check(RedactionMode::Mask, text, &ents, "mail <EMAIL> or <EMAIL> or <EMAIL>");
        check(
            RedactionMode::Hash,
            text,
            &ents,
            "mail <EMAIL:********> or <EMAIL:********> or <EMAIL:********>",
        );
        check(
            RedactionMode::Pseudonymise,
            text,
            &ents,
            "mail <EMAIL_1> or <EMAIL_2> or <EMAIL_1>",
        );
        check(RedactionMode::Mask, "no entities", &[], "no entities");
        // Overlapping or out-of-range entities are skipped, never panic.
        check(
            RedactionMode::Mask,
            "abcdef",
            &[ent("X", 0, 3), ent("Y", 2, 4), ent("Z", 4, 99)],
            "<X>def",
        );
    }

    #[test]
    fn hash_labels_are_stable_per_key_and_differ_across_values() {
        let r = Redactor {
            mode: RedactionMode::Hash,
            key: b"0123456789abcdef",
            hex_digits: 8,
        };
        let mut v = Vault::new();
        let a1 = r.replacement("EMAIL", "a@x.io", &mut v, "");
        let a2 = r.replacement("EMAIL", "a@x.io", &mut v, "");
        let b = r.replacement("EMAIL", "b@x.io", &mut v, "");
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_eq!(a1.len(), "<EMAIL:>".len() + 8);
    }

    #[test]
    fn vault_restores_only_its_own_placeholders() {
        let mut v = Vault::new();
        let p = v.placeholder("PHONE", "+44 20 7946 0958");
        assert_eq!(p, "<PHONE_1>");
        assert_eq!(
            v.restore("call <PHONE_1>, not <PHONE_2> or <b>"),
            "call +44 20 7946 0958, not <PHONE_2> or <b>"
        );
        assert_eq!(v.len(), 1);
        // A placeholder the user typed is skipped, so restoring cannot leak a value.
        let typed = "<EMAIL_1> is not mine, ana@x.io is";
        let r = Redactor {
            mode: RedactionMode::Pseudonymise,
            key: b"0123456789abcdef",
            hex_digits: 8,
        };
        let mut v = Vault::new();
        let red = r.apply(typed, &[ent("EMAIL", 23, 31)], &mut v);
        assert_eq!(red, "<EMAIL_1> is not mine, <EMAIL_2> is");
        assert_eq!(v.restore(&red), typed);
    }
}
