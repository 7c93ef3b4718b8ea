//! Layer 1a: text normalisation.
//!
//! Attackers hide instructions from filters with characters a reader does not see or
//! reads as something else. Before any detector looks at a prompt, [`normalize`]:
//!
//! 1. turns Unicode *tag* characters (U+E0020–U+E007E, invisible "ASCII smuggling") back
//!    into the ASCII they encode, so the hidden text is scanned;
//! 2. drops zero-width and other invisible characters (ZWSP, ZWJ, ZWNJ, word joiner,
//!    BOM, soft hyphen, variation selectors, invisible operators);
//! 3. drops bidirectional controls (LRE/RLE/PDF/LRO/RLO, isolates, marks);
//! 4. applies NFKC (full-width, mathematical alphanumerics, circled and compatibility
//!    forms become plain letters);
//! 5. folds homoglyphs (Cyrillic, Greek and small-capital look-alikes of Latin letters).
//!
//! It reports which of these changed the text, as evidence for `GRD003`.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// What normalisation found and undid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tricks {
    /// Unicode tag characters decoded to ASCII.
    pub tag_chars: usize,
    /// Zero-width / invisible characters removed.
    pub invisible: usize,
    /// Bidirectional control characters removed.
    pub bidi: usize,
    /// Characters changed by NFKC (full-width, math letters, …).
    pub compat: usize,
    /// Look-alike letters folded to Latin.
    pub homoglyphs: usize,
    /// Words mixing Latin letters with look-alikes from another script.
    pub mixed_script_words: usize,
}

impl Tricks {
    /// True when the text used a trick that ordinary prose does not need: tag
    /// characters, bidi controls, invisible characters inside words, or mixed-script
    /// words.
    pub fn suspicious(&self) -> bool {
        self.tag_chars > 0 || self.bidi > 0 || self.invisible > 0 || self.mixed_script_words > 0
    }

    /// A short human description of what was undone, e.g. `"3 zero-width, 1 bidi"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.tag_chars, "tag character(s) decoded"),
            (self.invisible, "invisible character(s)"),
            (self.bidi, "bidi control(s)"),
            (self.compat, "compatibility form(s)"),
            (self.homoglyphs, "homoglyph(s)"),
            (self.mixed_script_words, "mixed-script word(s)"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        parts.join(", ")
    }
}

/// Normalised text and what normalisation undid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    pub text: String,
    pub tricks: Tricks,
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{034F}'
            | '\u{180E}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0100}'..='\u{E01EF}'
            | '\u{E0000}'..='\u{E001F}'
            | '\u{E007F}'
    )
}

fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Latin letter a look-alike stands for, or `None`.
pub fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic lower case
        'а' => 'a',
        'в' => 'b',
        'с' => 'c',
        'ԁ' => 'd',
        'е' => 'e',
        'һ' => 'h',
        'і' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' => 't',
        'у' => 'y',
        'ԝ' => 'w',
        'х' => 'x',
        'ї' => 'i',
        'ӏ' => 'l',
        // Cyrillic upper case
        'А' => 'A',
        'В' => 'B',
        'С' => 'C',
        'Е' => 'E',
        'Н' => 'H',
        'І' => 'I',
        'Ј' => 'J',
        'К' => 'K',
        'М' => 'M',
        'О' => 'O',
        'Р' => 'P',
        'Ѕ' => 'S',
        'Т' => 'T',
        'Х' => 'X',
        'У' => 'Y',
        'Ԝ' => 'W',
        // Greek
        'α' => 'a',
        'ε' => 'e',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        // Small capitals and IPA letters used as look-alikes
        'ᴀ' => 'a',
        'ʙ' => 'b',
        'ᴄ' => 'c',
        'ᴅ' => 'd',
        'ᴇ' => 'e',
        'ꜰ' => 'f',
        'ɢ' => 'g',
        'ʜ' => 'h',
        'ɪ' => 'i',
        'ᴊ' => 'j',
        'ᴋ' => 'k',
        'ʟ' => 'l',
        'ᴍ' => 'm',
        'ɴ' => 'n',
        'ᴏ' => 'o',
        'ᴘ' => 'p',
        'ǫ' => 'q',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ʏ' => 'y',
        'ᴢ' => 'z',
        'ı' => 'i',
        'ɑ' => 'a',
        'ɡ' => 'g',
        _ => return None,
    })
}

/// Normalises `input` (see the module documentation). Never fails; linear time.
pub fn normalize(input: &str) -> Normalized {
    let mut tricks = Tricks::default();
    let mut stage = String::with_capacity(input.len());
    for c in input.chars() {
        let cp = c as u32;
        if (0xE0020..=0xE007E).contains(&cp) {
            tricks.tag_chars += 1;
            // cp - 0xE0000 is printable ASCII by the range check.
            if let Some(a) = char::from_u32(cp - 0xE0000) {
                stage.push(a);
            }
        } else if is_bidi(c) {
            tricks.bidi += 1;
        } else if is_invisible(c) {
            // Emoji sequences legitimately use ZWJ and variation selectors, and files
            // start with a BOM: only an invisible character after a letter or digit (a
            // word split for a filter) counts as a trick. Either way it is removed.
            if stage.chars().next_back().is_some_and(char::is_alphanumeric) {
                tricks.invisible += 1;
            }
        } else {
            stage.push(c);
        }
    }
    let mut text = String::with_capacity(stage.len());
    if stage.is_ascii() {
        text = stage;
    } else {
        text.extend(stage.nfkc());
        // Count characters NFKC changed: a cheap approximation by comparing counts of
        // non-ASCII characters before and after.
        let before = stage.chars().filter(|c| !c.is_ascii()).count();
        let after = text.chars().filter(|c| !c.is_ascii()).count();
        tricks.compat = before.saturating_sub(after);
        let (folded, count, mixed) = fold_homoglyphs(&text);
        tricks.homoglyphs = count;
        tricks.mixed_script_words = mixed;
        text = folded;
    }
    Normalized { text, tricks }
}

/// Folds look-alikes to Latin; returns the folded text, the number of folded letters
/// and the number of words that mixed real Latin letters with look-alikes.
fn fold_homoglyphs(text: &str) -> (String, usize, usize) {
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut mixed = 0;
    let mut word_latin = false;
    let mut word_fold = false;
    let mut word_other = false;
    let end_word = |latin: bool, fold: bool, other: bool, mixed: &mut usize| {
        // A word of look-alikes with Latin letters and no other letters of the
        // look-alike's script is a disguise; a Russian word is not.
        if latin && fold && !other {
            *mixed += 1;
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            if let Some(l) = homoglyph(c) {
                count += 1;
                word_fold = true;
                out.push(l);
            } else {
                if c.is_ascii_alphabetic() {
                    word_latin = true;
                } else if c.is_alphabetic() {
                    word_other = true;
                }
                out.push(c);
            }
        } else {
            end_word(word_latin, word_fold, word_other, &mut mixed);
            word_latin = false;
            word_fold = false;
            word_other = false;
            out.push(c);
        }
    }
    end_word(word_latin, word_fold, word_other, &mut mixed);
    (out, count, mixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect_text: &str, expect: impl Fn(&Tricks) -> bool) {
        let n = normalize(input);
        assert_eq!(n.text, expect_text, "input {input:?}");
        assert!(expect(&n.tricks), "input {input:?}: tricks {:?}", n.tricks);
    }

    #[test]
    fn normalisation_table() {
        check("plain text", "plain text", |t| *t == Tricks::default());
        check("ig\u{200B}no\u{200D}re all", "ignore all", |t| {
            t.invisible == 2 && t.suspicious()
        });
        check("\u{FEFF}soft\u{00AD}ware", "software", |t| t.invisible == 1);
        // Emoji sequences (ZWJ, variation selectors) and a leading BOM are not tricks.
        check(
            "I \u{2764}\u{FE0F} this \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
            "I \u{2764} this \u{1F468}\u{1F469}\u{1F467}",
            |t| !t.suspicious(),
        );
        check("\u{FEFF}hello", "hello", |t| !t.suspicious());
        check(
            "hi\u{E0069}\u{E0067}\u{E006E}\u{E006F}\u{E0072}\u{E0065}",
            "hiignore",
            |t| t.tag_chars == 6 && t.suspicious(),
        );
        check("abc\u{202E}fed\u{202C}", "abcfed", |t| t.bidi == 2 && t.suspicious());
        check("\u{2066}x\u{2069}", "x", |t| t.bidi == 2);
        check("ｉｇｎｏｒｅ　ａｌｌ", "ignore all", |t| {
            t.compat > 0 && !t.suspicious()
        });
        check("𝐢𝐠𝐧𝐨𝐫𝐞", "ignore", |t| t.compat == 6);
        check("ⓘⓖⓝⓞⓡⓔ", "ignore", |t| t.compat == 6);
        check("ɪɢɴᴏʀᴇ ʏᴏᴜʀ", "ignore your", |t| t.homoglyphs == 10);
        // Cyrillic о and е inside a Latin word: a disguise.
        check("ign\u{043E}r\u{0435} this", "ignore this", |t| {
            t.homoglyphs == 2 && t.mixed_script_words == 1 && t.suspicious()
        });
        // Plain Russian is folded for matching but is not a disguise.
        check("привет", "пpиbet", |t| {
            t.mixed_script_words == 0 && !t.suspicious()
        });
        check("", "", |t| *t == Tricks::default());
    }
}
