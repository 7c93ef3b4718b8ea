//! Labelled data and metrics for `palisade guard train` and `palisade guard eval`.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::GuardError;

/// One labelled prompt (`{"text": …, "label": 0|1, …}`; other fields are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Example {
    pub text: String,
    #[serde(deserialize_with = "label")]
    pub label: bool,
}

fn label<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        serde_json::Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        other => Err(serde::de::Error::custom(format!(
            "label must be 0, 1, true or false, not {other}"
        ))),
    }
}

/// Reads JSON Lines; blank lines are skipped, a bad line is an error naming its number.
pub fn read_jsonl(reader: impl BufRead, name: &str) -> Result<Vec<Example>, GuardError> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| GuardError::Io {
            path: name.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(&line).map_err(|e| GuardError::Data {
            path: name.to_owned(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(ex);
    }
    Ok(out)
}

/// Binary classification metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub examples: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub false_positive_rate: f64,
    pub accuracy: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Metrics {
    /// From `(predicted, actual)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (bool, bool)>) -> Metrics {
        let mut m = Metrics::default();
        for (p, a) in pairs {
            m.examples += 1;
            match (p, a) {
                (true, true) => m.true_positives += 1,
                (true, false) => m.false_positives += 1,
                (false, false) => m.true_negatives += 1,
                (false, true) => m.false_negatives += 1,
            }
        }
        m.finish()
    }

    /// From raw counts (for entity-level metrics where there are no true negatives).
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Metrics {
        Metrics {
            examples: tp + fp + fn_,
            true_positives: tp,
            false_positives: fp,
            false_negatives: fn_,
            ..Metrics::default()
        }
        .finish()
    }

    fn finish(mut self) -> Metrics {
        let (tp, fp, tn, fn_) = (
            self.true_positives,
            self.false_positives,
            self.true_negatives,
            self.false_negatives,
        );
        self.precision = ratio(tp, tp + fp);
        self.recall = ratio(tp, tp + fn_);
        self.f1 = if self.precision + self.recall > 0.0 {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        } else {
            0.0
        };
        self.false_positive_rate = ratio(fp, fp + tn);
        self.accuracy = ratio(tp + tn, tp + tn + fp + fn_);
        self
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of `sorted` values.
/// Fixed-size prompts for latency measurements: `texts` joined with spaces (cycling, at
/// most four times over) and cut at `bytes` (on a character boundary), at most `max`.
pub fn sized_prompts<'a>(texts: impl IntoIterator<Item = &'a str>, bytes: usize, max: usize) -> Vec<String> {
    let texts: Vec<&str> = texts.into_iter().collect();
    let mut sized = Vec::new();
    let mut cur = String::new();
    for t in texts.iter().cycle().take(texts.len().max(1) * 4) {
        if sized.len() >= max {
            break;
        }
        cur.push_str(t);
        cur.push(' ');
        if cur.len() >= bytes {
            let mut end = bytes;
            while !cur.is_char_boundary(end) {
                end -= 1;
            }
            sized.push(cur[..end].to_owned());
            cur.clear();
        }
    }
    sized
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_table() {
        let m = Metrics::from_pairs([(true, true), (true, false), (false, false), (false, true), (true, true)]);
        assert_eq!(
            (m.true_positives, m.false_positives, m.true_negatives, m.false_negatives),
            (2, 1, 1, 1)
        );
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.false_positive_rate - 0.5).abs() < 1e-9);
        let e = Metrics::from_counts(0, 0, 0);
        assert_eq!(e.f1, 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn jsonl_reader_reports_bad_lines() {
        let ok = "{\"text\":\"a\",\"label\":1,\"source\":\"x\"}\n\n{\"text\":\"b\",\"label\":false}\n";
        let got = read_jsonl(ok.as_bytes(), "t").unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].label && !got[1].label);
        let err = read_jsonl("{\"text\":\"a\",\"label\":2}\n".as_bytes(), "t").unwrap_err();
        assert!(err.to_string().contains("t:1"), "{err}");
    }
}
