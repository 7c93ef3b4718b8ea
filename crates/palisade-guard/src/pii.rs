//! Personal data, validated: a candidate found by a (linear-time) regular expression is
//! reported only when its checksum or structure holds, and context words nearby move
//! its confidence up or down.
//!
//! | kind | validation |
//! |---|---|
//! | `EMAIL` | local part and domain syntax, alphabetic TLD |
//! | `CREDIT_CARD` | 13–19 digits, consistent separators, known issuer prefix, Luhn |
//! | `IBAN` | country code, per-country length (ISO 13616 registry), mod-97 = 1 |
//! | `US_SSN` | area not 000/666/9xx, group not 00, serial not 0000, consistent separators |
//! | `PHONE` | E.164 (`+` and 8–15 digits) or a national format, plus context |
//! | `IP_ADDRESS` | parsed by `std::net` (IPv4 and IPv6) |
//! | `CRYPTO_WALLET` | Bitcoin Base58Check or bech32/bech32m (segwit), Ethereum `0x` + 40 hex |

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// A validated piece of sensitive data (personal data or a secret) in a text.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    /// `EMAIL`, `CREDIT_CARD`, `AWS_ACCESS_KEY`, …
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    /// What validated it, e.g. `"Luhn checksum, Visa prefix"`.
    pub reason: String,
}

/// Every kind [`find`] reports.
pub const KINDS: &[&str] = &[
    "EMAIL",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "PHONE",
    "IP_ADDRESS",
    "CRYPTO_WALLET",
];

/// Compiles a pattern with ASCII word boundaries (Unicode `\b` forces the slower
/// matching engines on non-ASCII text).
pub(crate) fn re(p: &str) -> Option<Regex> {
    match Regex::new(&p.replace(r"\b", r"(?-u:\b)")) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "pattern does not compile");
            None
        }
    }
}

static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}\b")
});
static CARD: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\b\d(?:[ -]?\d){11,18}\b"));
static IBAN: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"));
static SSN: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\b\d{3}([- ]?)\d{2}([- ]?)\d{4}\b"));
static PHONE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,5}){1,5}\b|\+\d{8,15}\b"));
static US_PHONE: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^(?:\+1[ .-]?)?\([2-9]\d{2}\) ?\d{3}[ .-]\d{4}$"));
static SSN_SHAPE: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^\d{3}-\d{2}-\d{4}$"));
static IPV4: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"));
static IPV6: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{0,4}|(?:\d{1,3}\.){3}\d{1,3})"));
static BTC58: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\b[13][1-9A-HJ-NP-Za-km-z]{25,34}\b"));
static BECH32: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"(?i)\b(?:bc|tb)1[02-9ac-hj-np-z]{8,87}\b"));
static ETH: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\b0x[0-9a-fA-F]{40}\b"));

/// Up to `n` bytes of lower-cased text before `start` and after `end`.
pub(crate) fn context(text: &str, start: usize, end: usize, n: usize) -> (String, String) {
    let mut a = start.saturating_sub(n);
    while !text.is_char_boundary(a) {
        a += 1;
    }
    let mut b = (end + n).min(text.len());
    while !text.is_char_boundary(b) {
        b -= 1;
    }
    (
        text.get(a..start).unwrap_or_default().to_lowercase(),
        text.get(end..b).unwrap_or_default().to_lowercase(),
    )
}

pub(crate) fn has_word(hay: &str, words: &[&str]) -> bool {
    words.iter().any(|w| {
        hay.match_indices(w).any(|(i, _)| {
            let before = hay[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
            let after = hay[i + w.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
            before && after
        })
    })
}

pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The card network for an issuer prefix and length, if the pair is plausible.
pub fn card_network(d: &str) -> Option<&'static str> {
    let n = d.len();
    let p = |k: usize| d.get(..k).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    if d.starts_with('4') && matches!(n, 13 | 16 | 19) {
        Some("Visa")
    } else if ((51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4))) && n == 16 {
        Some("Mastercard")
    } else if matches!(p(2), 34 | 37) && n == 15 {
        Some("American Express")
    } else if (p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3))) && (16..=19).contains(&n) {
        Some("Discover")
    } else if (3528..=3589).contains(&p(4)) && (16..=19).contains(&n) {
        Some("JCB")
    } else if ((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39)) && (14..=19).contains(&n) {
        Some("Diners Club")
    } else if p(2) == 62 && (16..=19).contains(&n) {
        Some("UnionPay")
    } else if (matches!(p(2), 50 | 56 | 57 | 58 | 67) || p(2) == 63) && (12..=19).contains(&n) {
        Some("Maestro")
    } else {
        None
    }
}

/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(cc: &str) -> Option<usize> {
    Some(match cc {
        "AD" => 24,
        "AE" => 23,
        "AL" => 28,
        "AT" => 20,
        "AZ" => 28,
        "BA" => 20,
        "BE" => 16,
        "BG" => 22,
        "BH" => 22,
        "BR" => 29,
        "BY" => 28,
        "CH" => 21,
        "CR" => 22,
        "CY" => 28,
        "CZ" => 24,
        "DE" => 22,
        "DK" => 18,
        "DO" => 28,
        "EE" => 20,
        "EG" => 29,
        "ES" => 24,
        "FI" => 18,
        "FO" => 18,
        "FR" => 27,
        "GB" => 22,
        "GE" => 22,
        "GI" => 23,
        "GL" => 18,
        "GR" => 27,
        "GT" => 28,
        "HR" => 21,
        "HU" => 28,
        "IE" => 22,
        "IL" => 23,
        "IQ" => 23,
        "IS" => 26,
        "IT" => 27,
        "JO" => 30,
        "KW" => 30,
        "KZ" => 20,
        "LB" => 28,
        "LC" => 32,
        "LI" => 21,
        "LT" => 20,
        "LU" => 20,
        "LV" => 21,
        "MC" => 27,
        "MD" => 24,
        "ME" => 22,
        "MK" => 19,
        "MR" => 27,
        "MT" => 31,
        "MU" => 30,
        "NL" => 18,
        "NO" => 15,
        "PK" => 24,
        "PL" => 28,
        "PS" => 29,
        "PT" => 25,
        "QA" => 29,
        "RO" => 24,
        "RS" => 22,
        "SA" => 24,
        "SC" => 31,
        "SE" => 24,
        "SI" => 19,
        "SK" => 24,
        "SM" => 27,
        "ST" => 25,
        "SV" => 28,
        "TL" => 23,
        "TN" => 24,
        "TR" => 26,
        "UA" => 29,
        "VA" => 22,
        "VG" => 24,
        "XK" => 20,
        _ => return None,
    })
}

/// ISO 7064 mod-97-10 check of a compact IBAN.
pub fn iban_valid(compact: &str) -> bool {
    let Some(cc) = compact.get(..2) else {
        return false;
    };
    if iban_length(cc) != Some(compact.len()) {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// SSA rules for a US social security number (digits only).
pub fn ssn_valid(d: &str) -> bool {
    if d.len() != 9 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let area = &d[..3];
    let group = &d[3..5];
    let serial = &d[5..];
    // Advertising and famous invalid numbers are not real people's.
    if matches!(d, "078051120" | "219099999" | "123456789") {
        return false;
    }
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

fn btc_base58_valid(s: &str) -> bool {
    match bs58::decode(s).with_check(None).into_vec() {
        Ok(v) => v.len() == 21 && matches!(v.first(), Some(0x00 | 0x05)),
        Err(_) => false,
    }
}

fn bech32_valid(s: &str) -> bool {
    bech32::segwit::decode(s).is_ok()
}

struct Finder<'t> {
    text: &'t str,
    out: Vec<Entity>,
}

impl Finder<'_> {
    fn push(&mut self, kind: &'static str, start: usize, end: usize, score: f32, reason: String) {
        self.out.push(Entity {
            kind,
            start,
            end,
            score: score.clamp(0.0, 1.0),
            reason,
        });
    }

    fn ctx(&self, start: usize, end: usize) -> (String, String) {
        context(self.text, start, end, 48)
    }
}

/// Personal data in `text` with confidence ≥ `min_score`, of the given kinds (all when
/// `kinds` is empty). Overlapping candidates keep the most confident one.
pub fn find(text: &str, min_score: f32, kinds: &[String]) -> Vec<Entity> {
    let want = |k: &str| kinds.is_empty() || kinds.iter().any(|x| x.eq_ignore_ascii_case(k));
    let mut f = Finder { text, out: Vec::new() };
    if want("EMAIL") && text.contains('@') {
        if let Some(re) = EMAIL.as_ref() {
            for m in re.find_iter(text) {
                let s = m.as_str();
                let local = s.split('@').next().unwrap_or_default();
                if local.ends_with('.') || s.contains("..") {
                    continue;
                }
                f.push("EMAIL", m.start(), m.end(), 0.95, "address syntax".to_owned());
            }
        }
    }
    if want("CREDIT_CARD") {
        if let Some(re) = CARD.as_ref() {
            for m in re.find_iter(text) {
                let s = m.as_str();
                let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
                if seps.windows(2).any(|w| w[0] != w[1]) {
                    continue;
                }
                // Part of a longer grouped number (an IBAN, an account number)?
                if let Some(sep) = seps.first() {
                    let mut before = text[..m.start()].chars().rev();
                    let mut after = text[m.end()..].chars();
                    if (before.next() == Some(*sep) && before.next().is_some_and(|c| c.is_ascii_digit()))
                        || (after.next() == Some(*sep) && after.next().is_some_and(|c| c.is_ascii_digit()))
                    {
                        continue;
                    }
                }
                let digits: String = s.chars().filter(char::is_ascii_digit).collect();
                let Some(net) = card_network(&digits) else { continue };
                let ds: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
                if !luhn(&ds) || ds.iter().all(|d| *d == ds[0]) {
                    continue;
                }
                let (before, after) = f.ctx(m.start(), m.end());
                let mut score = 0.85;
                if has_word(
                    &before,
                    &[
                        "card",
                        "visa",
                        "mastercard",
                        "amex",
                        "credit",
                        "debit",
                        "cc",
                        "pan",
                        "payment",
                        "pay",
                    ],
                ) {
                    score += 0.1;
                }
                if has_word(
                    &before,
                    &["order", "tracking", "isbn", "invoice", "serial", "id", "reference"],
                ) {
                    score -= 0.3;
                }
                let _ = after;
                f.push(
                    "CREDIT_CARD",
                    m.start(),
                    m.end(),
                    score,
                    format!("Luhn checksum, {net} prefix"),
                );
            }
        }
    }
    if want("IBAN") {
        if let Some(re) = IBAN.as_ref() {
            for m in re.find_iter(text) {
                let compact: String = m.as_str().chars().filter(|c| *c != ' ').collect();
                // The regex may run into a following word; trim to the country length.
                let Some(len) = compact.get(..2).and_then(iban_length) else {
                    continue;
                };
                let Some(candidate) = compact.get(..len) else { continue };
                if !iban_valid(candidate) {
                    continue;
                }
                // Map the compact length back to a byte end in the text.
                let mut seen = 0;
                let mut end = m.start();
                for (i, c) in m.as_str().char_indices() {
                    if c != ' ' {
                        seen += 1;
                    }
                    if seen == len {
                        end = m.start() + i + c.len_utf8();
                        break;
                    }
                }
                f.push(
                    "IBAN",
                    m.start(),
                    end,
                    0.95,
                    "mod-97 checksum and country length".to_owned(),
                );
            }
        }
    }
    if want("US_SSN") {
        if let Some(re) = SSN.as_ref() {
            for c in re.captures_iter(text) {
                let Some(m) = c.get(0) else { continue };
                let (s1, s2) = (c.get(1).map_or("", |x| x.as_str()), c.get(2).map_or("", |x| x.as_str()));
                if s1 != s2 {
                    continue;
                }
                let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
                if !ssn_valid(&digits) {
                    continue;
                }
                let (before, _) = f.ctx(m.start(), m.end());
                let mut score: f32 = if s1.is_empty() { 0.3 } else { 0.6 };
                if has_word(
                    &before,
                    &["ssn", "social security", "social", "ss#", "ssn#", "taxpayer", "tin"],
                ) {
                    score += 0.35;
                }
                if has_word(&before, &["phone", "call", "order", "account", "zip", "tel"]) {
                    score -= 0.3;
                }
                f.push(
                    "US_SSN",
                    m.start(),
                    m.end(),
                    score,
                    "SSA area/group/serial rules".to_owned(),
                );
            }
        }
    }
    if want("IP_ADDRESS") {
        if let Some(re) = IPV4.as_ref() {
            for m in re.find_iter(text) {
                if m.as_str().parse::<Ipv4Addr>().is_err() {
                    continue;
                }
                // Part of a longer dotted number (a version string or an OID)?
                let prev = text[..m.start()].chars().next_back();
                let next = text[m.end()..].chars().next();
                let next2 = text[m.end()..].chars().nth(1);
                if prev == Some('.') || (next == Some('.') && next2.is_some_and(|c| c.is_ascii_digit())) {
                    continue;
                }
                let (before, _) = f.ctx(m.start(), m.end());
                let mut score = 0.8;
                if before.ends_with('v') || has_word(&before, &["version", "release", "v", "ver"]) {
                    score -= 0.5;
                }
                f.push("IP_ADDRESS", m.start(), m.end(), score, "IPv4 address".to_owned());
            }
        }
        if text.contains(':') {
            if let Some(re) = IPV6.as_ref() {
                for m in re.find_iter(text) {
                    let s = m.as_str();
                    if s.matches(':').count() < 2 || s.parse::<Ipv6Addr>().is_err() || s == "::" {
                        continue;
                    }
                    f.push("IP_ADDRESS", m.start(), m.end(), 0.8, "IPv6 address".to_owned());
                }
            }
        }
    }
    if want("CRYPTO_WALLET") {
        if let Some(re) = BTC58.as_ref() {
            for m in re.find_iter(text) {
                if btc_base58_valid(m.as_str()) {
                    f.push(
                        "CRYPTO_WALLET",
                        m.start(),
                        m.end(),
                        0.95,
                        "Bitcoin Base58Check".to_owned(),
                    );
                }
            }
        }
        if let Some(re) = BECH32.as_ref() {
            for m in re.find_iter(text) {
                if bech32_valid(m.as_str()) {
                    f.push(
                        "CRYPTO_WALLET",
                        m.start(),
                        m.end(),
                        0.95,
                        "Bitcoin bech32 checksum".to_owned(),
                    );
                }
            }
        }
        if let Some(re) = ETH.as_ref() {
            for m in re.find_iter(text) {
                let (before, after) = f.ctx(m.start(), m.end());
                let mut score = 0.7;
                if has_word(
                    &before,
                    &[
                        "wallet", "eth", "ethereum", "address", "send", "pay", "erc20", "metamask",
                    ],
                ) {
                    score += 0.2;
                }
                if has_word(&before, &["hash", "tx", "transaction", "commit", "sha", "digest"])
                    || after.starts_with(|c: char| c.is_ascii_hexdigit())
                {
                    score -= 0.4;
                }
                f.push(
                    "CRYPTO_WALLET",
                    m.start(),
                    m.end(),
                    score,
                    "Ethereum address (0x + 40 hex)".to_owned(),
                );
            }
        }
    }
    if want("PHONE") {
        if let Some(re) = PHONE.as_ref() {
            for m in re.find_iter(text) {
                let s = m.as_str();
                let digits = s.chars().filter(char::is_ascii_digit).count();
                if !(8..=15).contains(&digits) || SSN_SHAPE.as_ref().is_some_and(|re| re.is_match(s)) {
                    continue;
                }
                // Not the tail of a longer token (a date, a version, an id).
                let prev = text[..m.start()].chars().next_back();
                if prev.is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '/' | '-' | '_')) {
                    continue;
                }
                let (before, _) = f.ctx(m.start(), m.end());
                let intl = s.starts_with('+');
                let mut score: f32 = if intl { 0.7 } else { 0.35 };
                if s.split([' ', '-', '.']).count() >= 3 {
                    score += 0.1;
                }
                if US_PHONE.as_ref().is_some_and(|re| re.is_match(s)) {
                    score += 0.15;
                }
                if has_word(
                    &before,
                    &[
                        "phone",
                        "call",
                        "tel",
                        "telephone",
                        "mobile",
                        "cell",
                        "whatsapp",
                        "contact",
                        "fax",
                        "sms",
                        "text me",
                        "reach me",
                        "number",
                    ],
                ) {
                    score += 0.3;
                }
                if has_word(
                    &before,
                    &["order", "invoice", "account", "id", "serial", "isbn", "version", "date"],
                ) {
                    score -= 0.3;
                }
                f.push(
                    "PHONE",
                    m.start(),
                    m.end(),
                    score,
                    if intl {
                        "E.164 number".to_owned()
                    } else {
                        "national phone format".to_owned()
                    },
                );
            }
        }
    }
    f.out.retain(|e| e.score >= min_score);
    resolve_overlaps(f.out)
}

/// Keeps, among overlapping entities, the most confident (then the longest).
/// O(n log n): entities are grouped into clusters of chained overlaps first, and the
/// greedy choice runs inside each (small) cluster.
pub fn resolve_overlaps(mut v: Vec<Entity>) -> Vec<Entity> {
    v.sort_by_key(|e| (e.start, e.end));
    let mut out: Vec<Entity> = Vec::with_capacity(v.len());
    let mut cluster: Vec<Entity> = Vec::new();
    let mut cluster_end = 0;
    for e in v {
        if !cluster.is_empty() && e.start >= cluster_end {
            resolve_cluster(&mut cluster, &mut out);
        }
        cluster_end = if cluster.is_empty() {
            e.end
        } else {
            cluster_end.max(e.end)
        };
        cluster.push(e);
    }
    resolve_cluster(&mut cluster, &mut out);
    out.sort_by_key(|e| e.start);
    out
}

fn resolve_cluster(cluster: &mut Vec<Entity>, out: &mut Vec<Entity>) {
    cluster.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let first = out.len();
    for e in cluster.drain(..) {
        if out[first..].iter().all(|k| e.end <= k.start || e.start >= k.end) {
            out.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expect`: the kinds and matched strings, in order.
    fn check(input: &str, expect: &[(&str, &str)]) {
        let got: Vec<(&str, &str)> = find(input, 0.5, &[])
            .iter()
            .map(|e| (e.kind, &input[e.start..e.end]))
            .collect();
        assert_eq!(got, expect, "input {input:?}");
    }

    #[test]
    fn pii_table() {
        // E-mail
        check(
            "write to ana.maria+x@mail.example.org today",
            &[("EMAIL", "ana.maria+x@mail.example.org")],
        );
        check("not an address: a@b, user@localhost, x..y@ex.com", &[]);
        // Cards: valid Luhn with a known prefix; lookalikes fail.
        check(
            "my card is 4111 1111 1111 1111",
            &[("CREDIT_CARD", "4111 1111 1111 1111")],
        );
        check(
            "card 5500-0000-0000-0004 exp 12/29",
            &[("CREDIT_CARD", "5500-0000-0000-0004")],
        );
        check("amex 378282246310005", &[("CREDIT_CARD", "378282246310005")]);
        check("card 4111 1111 1111 1112", &[]); // Luhn fails
        check("card 9111 1111 1111 1115", &[]); // no issuer starts with 9
        check("card 4111-1111 1111-1111", &[]); // mixed separators
        check("IBAN ES13 6219 0905 1418 8783 7016", &[]); // bad IBAN with a Luhn-valid run inside
        check(
            "call +44 20 7946 0958, SSN 536-22-1234",
            &[("PHONE", "+44 20 7946 0958"), ("US_SSN", "536-22-1234")],
        );
        // IBAN: mod-97 and country length.
        check(
            "IBAN GB82 WEST 1234 5698 7654 32 please",
            &[("IBAN", "GB82 WEST 1234 5698 7654 32")],
        );
        check("DE89370400440532013000", &[("IBAN", "DE89370400440532013000")]);
        check("GB82 WEST 1234 5698 7654 33", &[]); // checksum
        check("DE8937040044053201300", &[]); // one short
                                             // SSN
        check("SSN: 536-22-1234", &[("US_SSN", "536-22-1234")]);
        check("my social security number is 536221234", &[("US_SSN", "536221234")]);
        check(
            "ssn 666-12-3456, 000-12-3456, 912-12-3456, 536-00-1234, 536-22-0000",
            &[],
        );
        check("ticket 536221234", &[]); // no separators, no context: too weak
        check("ssn 536-22 1234", &[]); // inconsistent separators
                                       // Phones
        check("call me on +44 20 7946 0958", &[("PHONE", "+44 20 7946 0958")]);
        check("phone: (415) 555-2671", &[("PHONE", "(415) 555-2671")]);
        check("+14155552671", &[("PHONE", "+14155552671")]);
        check("the years 2019 2020 2021 were odd", &[]);
        check("version 10.2.33.4512 released", &[]);
        // IP addresses
        check("server at 192.168.10.24 is down", &[("IP_ADDRESS", "192.168.10.24")]);
        check(
            "v6 host 2001:db8::8a2e:370:7334 up",
            &[("IP_ADDRESS", "2001:db8::8a2e:370:7334")],
        );
        check("999.1.1.1 and 1.2.3.4.5 and time 12:30:45", &[]);
        // Crypto
        check(
            "btc 1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
            &[("CRYPTO_WALLET", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT")],
        );
        check("btc 1BoatSLRHtKNngkdXEeobR76b53LETtpyX", &[]); // Base58Check fails
        check(
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            &[("CRYPTO_WALLET", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")],
        );
        check("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdx", &[]);
        check(
            "send to wallet 0x52908400098527886E0F7030069857D2E4169EE7",
            &[("CRYPTO_WALLET", "0x52908400098527886E0F7030069857D2E4169EE7")],
        );
        // Hard negatives
        check("What is the capital of France? It is Paris.", &[]);
        check("Order 12345678 shipped on 2024-01-15", &[]);
    }

    #[test]
    fn every_pattern_compiles() {
        for r in [
            &EMAIL, &CARD, &IBAN, &SSN, &PHONE, &US_PHONE, &IPV4, &IPV6, &BTC58, &BECH32, &ETH,
        ] {
            assert!(r.is_some());
        }
    }

    #[test]
    fn overlap_resolution_keeps_the_most_confident_per_cluster() {
        let e = |kind, start, end, score| Entity {
            kind,
            start,
            end,
            score,
            reason: String::new(),
        };
        let got = resolve_overlaps(vec![
            e("D", 20, 25, 0.5),
            e("A", 0, 10, 0.9),
            e("C", 12, 20, 0.8),
            e("B", 5, 15, 0.95),
            e("E", 30, 40, 0.6),
            e("F", 30, 35, 0.6), // same score, shorter: loses to E
        ]);
        let kinds: Vec<&str> = got.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec!["B", "D", "E"]);
        // A dense 1 MB-like input resolves to one entity per value (the quadratic
        // version took seconds on this).
        let text = "a@b.co 4111 1111 1111 1111 ".repeat(2000);
        let found = find(&text, 0.5, &[]);
        assert_eq!(found.len(), 4000);
    }

    #[test]
    fn validators() {
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn(&[]));
        assert!(iban_valid("NL91ABNA0417164300"));
        assert!(!iban_valid("NL91ABNA0417164301"));
        assert!(!iban_valid("ZZ91ABNA0417164300"));
        assert_eq!(card_network("4111111111111111"), Some("Visa"));
        assert_eq!(card_network("2221000000000009"), Some("Mastercard"));
        assert!(ssn_valid("536221234"));
        assert!(!ssn_valid("078051120"));
    }
}
