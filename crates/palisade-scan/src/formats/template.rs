//! Static analysis of Jinja chat templates (GGUF `tokenizer.chat_template`, Hugging Face
//! `tokenizer_config.json`). Loaders render these with Jinja2 — often without a sandbox
//! (CVE-2024-34359 in llama-cpp-python) — so a template that walks Python object
//! internals is server-side template injection.
//!
//! The template is parsed with minijinja's parser (syntax errors are reported) and its
//! token stream is inspected for the shapes every published payload needs: attribute or
//! subscript access to `_`-prefixed names (`__class__`, `__globals__`,
//! `_TemplateReference__context`), the `attr` filter with such names or computed ones,
//! dunder names assembled from string pieces, and process/import attributes (`os.popen`,
//! `__import__`). Chat templates never need any of these.

use minijinja::machinery::{self, Token};
use minijinja::syntax::SyntaxConfig;

/// Attribute names that reach code execution or imports whatever their prefix.
const DANGEROUS_ATTRS: &[&str] = &[
    "popen",
    "system",
    "spawnv",
    "spawnl",
    "execv",
    "execl",
    "check_output",
    "import_module",
    "eval",
    "exec",
    "getattr",
    "globals",
    "builtins",
    "subclasses",
    "mro",
    "func_globals",
    "f_globals",
    "f_back",
    "gi_frame",
    "cr_frame",
    "tb_frame",
];

/// Names that are modules, not template variables.
const MODULE_NAMES: &[&str] = &[
    "os",
    "sys",
    "subprocess",
    "builtins",
    "importlib",
    "posix",
    "pty",
    "socket",
];

/// One suspicious construct: what it is and where (1-based line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub line: u32,
    pub what: String,
}

/// The result of analysing one template.
#[derive(Debug, Default)]
pub struct Analysis {
    pub hits: Vec<Hit>,
    /// minijinja's syntax error, when the template does not parse.
    pub parse_error: Option<String>,
}

fn is_private(name: &str) -> bool {
    name.starts_with('_')
}

fn looks_like_dunder(s: &str) -> bool {
    let t = s.trim();
    t.len() > 4 && t.starts_with("__") && t.ends_with("__")
}

pub fn analyze(source: &str) -> Analysis {
    let mut out = Analysis::default();
    if let Err(e) = machinery::parse(source, "chat_template", SyntaxConfig::default()) {
        out.parse_error = Some(e.to_string());
    }
    // Collect tokens; a lexer error ends the stream (what came before is still analysed).
    let mut toks: Vec<(Token, u32)> = Vec::new();
    for item in machinery::tokenize(source, false, SyntaxConfig::default()) {
        match item {
            Ok((tok, span)) => toks.push((tok, u32::from(span.start_line))),
            Err(e) => {
                out.parse_error.get_or_insert_with(|| e.to_string());
                break;
            }
        }
        if toks.len() > 1_000_000 {
            break;
        }
    }
    let text = |t: &Token| -> Option<String> {
        match t {
            Token::Str(s) => Some((*s).to_owned()),
            Token::String(s) => Some(s.to_string()),
            _ => None,
        }
    };
    let mut hit = |line: u32, what: String| {
        if out.hits.len() < 32 && !out.hits.iter().any(|h| h.what == what) {
            out.hits.push(Hit { line, what });
        }
    };
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = (&toks[i].0, toks[i].1);
        let next = toks.get(i + 1).map(|t| &t.0);
        match (tok, next) {
            (Token::Dot, Some(Token::Ident(name))) if is_private(name) || DANGEROUS_ATTRS.contains(name) => {
                hit(line, format!("attribute access `.{name}`"));
            }
            (Token::BracketOpen, Some(t)) => {
                if let Some(s) = text(t) {
                    if is_private(&s) || DANGEROUS_ATTRS.contains(&s.as_str()) {
                        hit(line, format!("subscript `[{s:?}]`"));
                    }
                }
            }
            (Token::Pipe, Some(Token::Ident("attr"))) => {
                let arg = toks.get(i + 3).map(|t| &t.0);
                let after = toks.get(i + 4).map(|t| &t.0);
                match (arg.and_then(text), after) {
                    (Some(s), Some(Token::ParenClose)) if !is_private(&s) && !DANGEROUS_ATTRS.contains(&s.as_str()) => {
                    }
                    (Some(s), _) => hit(line, format!("`attr` filter with `{s}`")),
                    (None, _) => hit(line, "`attr` filter with a computed name".to_owned()),
                }
            }
            (Token::Ident(name), Some(Token::Dot)) if MODULE_NAMES.contains(name) => {
                hit(line, format!("attribute of module-like name `{name}`"));
            }
            (Token::Ident(name), _)
                if (*name == "__import__" || looks_like_dunder(name))
                    && !matches!(i.checked_sub(1).map(|j| &toks[j].0), Some(Token::Dot)) =>
            {
                hit(line, format!("name `{name}`"));
            }
            _ => {}
        }
        // String pieces joined with `~` or `+`: fold constants and look at the result.
        if let Some(first) = text(tok) {
            let mut folded = first;
            let mut j = i + 1;
            let mut pieces = 1;
            while let (Some(op), Some(t)) = (toks.get(j).map(|t| &t.0), toks.get(j + 1).map(|t| &t.0)) {
                match (op, text(t)) {
                    (Token::Tilde | Token::Plus, Some(s)) => {
                        folded.push_str(&s);
                        pieces += 1;
                        j += 2;
                    }
                    _ => break,
                }
            }
            // A string starting with `__` is a dunder name or a piece of one being
            // assembled (`['__cla', 'ss__']|join`); chat templates have no use for either.
            if looks_like_dunder(&folded)
                || folded.trim_start().starts_with("__")
                || (pieces > 1 && (is_private(&folded) || DANGEROUS_ATTRS.contains(&folded.as_str())))
            {
                hit(line, format!("string `{folded}`"));
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::analyze;

    fn hits(src: &str) -> Vec<String> {
        analyze(src).hits.into_iter().map(|h| h.what).collect()
    }

    #[test]
    fn ordinary_chat_templates_are_clean() {
        let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        assert_eq!(hits(chatml), Vec::<String>::new());
        let llama = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' }}{% endif %}{% endfor %}";
        assert_eq!(hits(llama), Vec::<String>::new());
        let ns = "{% set ns = namespace(found=false) %}{% for m in messages %}{% set ns.found = true %}{{ m.content|trim }}{% endfor %}";
        assert_eq!(hits(ns), Vec::<String>::new());
        assert!(analyze(chatml).parse_error.is_none());
    }

    #[test]
    fn published_ssti_shapes_are_found() {
        for src in [
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{{ self._TemplateReference__context.joiner.__init__.__globals__.os.popen('id') }}",
            "{{ lipsum.__globals__['os'].popen('id') }}",
            "{{ namespace['__init__']['__globals__'] }}",
            "{{ x|attr('__globals__') }}",
            "{% set a = '__cla' ~ 'ss__' %}{{ ''|attr(a) }}",
            "{{ request.application.__globals__.__builtins__.__import__('os').popen('id') }}",
            "{{ ''|attr(['__cla', 'ss__']|join) }}",
            "{% set p = ('__glo', 'bals__') %}{{ cycler.__init__|attr(p|join) }}",
        ] {
            assert!(!hits(src).is_empty(), "missed: {src}");
        }
    }

    #[test]
    fn syntax_errors_are_reported_but_tokens_still_checked() {
        let a = analyze("{% for x in %}{{ ''.__class__ }}");
        assert!(a.parse_error.is_some());
        assert!(!a.hits.is_empty());
    }
}
