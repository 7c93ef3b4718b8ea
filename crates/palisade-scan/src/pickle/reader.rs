//! A streaming decoder of pickle opcodes and their arguments.
//!
//! It reads from any `BufRead`, keeps memory independent of the input size (large string
//! and byte payloads are skipped, keeping only a short head, unless they look like an
//! embedded pickle small enough to scan), and never interprets what it decodes.

use std::io::{self, BufRead, Read};

use super::ops::{ArgKind, Opcode};

/// Bounds on what the decoder keeps in memory.
#[derive(Clone, Copy, Debug)]
pub struct ReaderConfig {
    /// Text arguments longer than this keep only their head.
    pub keep_text: usize,
    /// Bytes kept from a byte-string argument that is not kept whole.
    pub keep_head: usize,
    /// Largest payload kept whole because it looks like an embedded pickle.
    pub nested_max: usize,
    /// Longest protocol-0 text line.
    pub max_line: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            keep_text: 4096,
            keep_head: 64,
            nested_max: 16 << 20,
            max_line: 1 << 20,
        }
    }
}

/// A Unicode string argument. `value` holds the whole string, or its head when
/// `truncated`.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub value: String,
    /// Length in code points (Python's `len`).
    pub chars: u64,
    pub truncated: bool,
}

/// A byte-string argument: the whole payload, or its head when `data.len() < len`.
#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    pub data: Vec<u8>,
    pub len: u64,
    /// It looked like an embedded pickle or archive but was too large to keep.
    pub oversized_nested: bool,
}

impl Blob {
    pub fn is_complete(&self) -> bool {
        self.data.len() as u64 == self.len
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    None,
    Int(i128),
    /// An integer too large for `i128`; only its size is kept.
    BigInt,
    Bool(bool),
    Float(f64),
    Text(Box<Text>),
    Bytes(Box<Blob>),
    /// A raw text line (PERSID, GET/PUT are decoded to `Int`).
    Line(Vec<u8>),
    /// GLOBAL / INST: raw module and name lines.
    Pair(Box<(Vec<u8>, Vec<u8>)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub pos: u64,
    pub code: Opcode,
    pub arg: Arg,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("at offset {pos}: unknown opcode byte {byte:#04x}")]
    UnknownOpcode { pos: u64, byte: u8 },
    #[error("at offset {pos}: stream ends inside {op}")]
    Truncated { pos: u64, op: &'static str },
    #[error("at offset {pos}: bad argument to {op}: {msg}")]
    BadArg { pos: u64, op: &'static str, msg: String },
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

impl DecodeError {
    /// The error without its offset (for messages that state the offset already).
    pub fn detail(&self) -> String {
        match self {
            DecodeError::UnknownOpcode { byte, .. } => format!("unknown opcode byte {byte:#04x}"),
            DecodeError::Truncated { op, .. } => format!("stream ends inside {op}"),
            DecodeError::BadArg { op, msg, .. } => format!("bad argument to {op}: {msg}"),
            DecodeError::Io(e) => format!("read error: {e}"),
        }
    }

    pub fn pos(&self) -> Option<u64> {
        match self {
            DecodeError::UnknownOpcode { pos, .. }
            | DecodeError::Truncated { pos, .. }
            | DecodeError::BadArg { pos, .. } => Some(*pos),
            DecodeError::Io(_) => None,
        }
    }
}

/// Does this head of a payload look like an embedded pickle or zip (a nested
/// `torch.save` file), raw or as base64 / hex text?
pub fn looks_like_embedded_pickle(head: &[u8]) -> bool {
    match head {
        [0x80, p, next, ..] if *p <= 5 => Opcode::from_byte(*next).is_some(),
        [b'P', b'K', 3, 4, ..] => true,
        // base64 of 0x80 0x0N starts with "gA"; of "PK\x03\x04" with "UEsDB"; hex with "80".
        [b'g', b'A', c, ..] => matches!(c, b'A'..=b'V'),
        [b'U', b'E', b's', b'D', b'B', ..] => true,
        [b'8', b'0', b'0', c, ..] => matches!(c, b'0'..=b'5'),
        _ => false,
    }
}

pub struct OpReader<R> {
    r: R,
    pos: u64,
    cfg: ReaderConfig,
}

impl<R: BufRead> OpReader<R> {
    pub fn new(r: R, cfg: ReaderConfig) -> Self {
        OpReader { r, pos: 0, cfg }
    }

    /// Starts counting offsets at `pos` (for streams that are a slice of a larger file).
    pub fn with_offset(r: R, cfg: ReaderConfig, pos: u64) -> Self {
        OpReader { r, pos, cfg }
    }

    /// The offset of the next unread byte.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.r
    }

    /// Skips `n` bytes of the underlying stream (inline data such as joblib arrays).
    /// Returns how many were actually skipped.
    pub fn skip(&mut self, n: u64) -> io::Result<u64> {
        let skipped = io::copy(&mut (&mut self.r).take(n), &mut io::sink())?;
        self.pos += skipped;
        Ok(skipped)
    }

    /// Looks at the next byte without consuming it; `None` at end of stream.
    pub fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.r.fill_buf()?.first().copied())
    }

    /// Looks at up to `n` next bytes without consuming them (bounded by the buffer).
    pub fn peek_n(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let buf = self.r.fill_buf()?;
        Ok(buf[..buf.len().min(n)].to_vec())
    }

    /// Decodes the next opcode. `Ok(None)` means the stream ended cleanly before an opcode.
    pub fn next_op(&mut self) -> Result<Option<Op>, DecodeError> {
        let pos = self.pos;
        let buf = self.r.fill_buf()?;
        let Some(&byte) = buf.first() else {
            return Ok(None);
        };
        let code = Opcode::from_byte(byte).ok_or(DecodeError::UnknownOpcode { pos, byte })?;
        // Fast path: fixed-size arguments already in the buffer.
        let fast = match (code.arg_kind(), buf.len()) {
            (ArgKind::None, _) => Some((1, Arg::None)),
            (ArgKind::U1, 2..) => Some((2, Arg::Int(buf[1].into()))),
            (ArgKind::U2, 3..) => Some((3, Arg::Int(u16::from_le_bytes([buf[1], buf[2]]).into()))),
            (ArgKind::I4, 5..) => Some((5, Arg::Int(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]).into()))),
            (ArgKind::U4, 5..) => Some((5, Arg::Int(u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]).into()))),
            _ => None,
        };
        if let Some((n, arg)) = fast {
            self.r.consume(n);
            self.pos += n as u64;
            return Ok(Some(Op { pos, code, arg }));
        }
        self.r.consume(1);
        self.pos += 1;
        let arg = self.read_arg(pos, code)?;
        Ok(Some(Op { pos, code, arg }))
    }

    fn fixed<const N: usize>(&mut self, pos: u64, op: &'static str) -> Result<[u8; N], DecodeError> {
        let mut buf = [0u8; N];
        match self.r.read_exact(&mut buf) {
            Ok(()) => {
                self.pos += N as u64;
                Ok(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(DecodeError::Truncated { pos, op }),
            Err(e) => Err(e.into()),
        }
    }

    fn line(&mut self, pos: u64, op: &'static str) -> Result<Vec<u8>, DecodeError> {
        let mut line = Vec::new();
        let limit = self.cfg.max_line as u64 + 1;
        let n = (&mut self.r).take(limit).read_until(b'\n', &mut line)?;
        self.pos += n as u64;
        if line.last() != Some(&b'\n') {
            if n as u64 >= limit {
                return Err(DecodeError::BadArg {
                    pos,
                    op,
                    msg: format!("line longer than {} bytes", self.cfg.max_line),
                });
            }
            return Err(DecodeError::Truncated { pos, op });
        }
        line.pop();
        Ok(line)
    }

    /// Reads a payload of `len` bytes, keeping all of it when it looks like an embedded
    /// pickle and fits `nested_max` (or fits `keep_whole`), otherwise only its head.
    fn payload(&mut self, pos: u64, op: &'static str, len: u64, keep_whole: usize) -> Result<Blob, DecodeError> {
        let head_len = len.min(self.cfg.keep_head as u64) as usize;
        let mut data = vec![0u8; head_len];
        match self.r.read_exact(&mut data) {
            Ok(()) => self.pos += head_len as u64,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(DecodeError::Truncated { pos, op }),
            Err(e) => return Err(e.into()),
        }
        let rest = len - head_len as u64;
        let nested = looks_like_embedded_pickle(&data);
        let whole = len <= keep_whole as u64 || (len <= self.cfg.nested_max as u64 && nested);
        let got = if whole {
            let n = (&mut self.r).take(rest).read_to_end(&mut data)? as u64;
            self.pos += n;
            n
        } else {
            self.skip(rest)?
        };
        if got < rest {
            return Err(DecodeError::Truncated { pos, op });
        }
        Ok(Blob {
            data,
            len,
            oversized_nested: nested && !whole,
        })
    }

    fn text(&mut self, pos: u64, op: &'static str, len: u64) -> Result<Text, DecodeError> {
        let blob = self.payload(pos, op, len, self.cfg.keep_text)?;
        if blob.is_complete() {
            let value = decode_utf8_surrogatepass(&blob.data).ok_or_else(|| DecodeError::BadArg {
                pos,
                op,
                msg: "invalid UTF-8".to_owned(),
            })?;
            let chars = value.chars().count() as u64;
            return Ok(Text {
                value,
                chars,
                truncated: false,
            });
        }
        // Only the head was kept: count code points of the rest was not possible without
        // reading it, so report the byte length as an upper bound.
        Ok(Text {
            value: String::from_utf8_lossy(&blob.data).into_owned(),
            chars: blob.len,
            truncated: true,
        })
    }

    fn read_arg(&mut self, pos: u64, code: Opcode) -> Result<Arg, DecodeError> {
        let op = code.name();
        let bad = |msg: String| DecodeError::BadArg { pos, op, msg };
        Ok(match code.arg_kind() {
            ArgKind::None => Arg::None,
            ArgKind::U1 => Arg::Int(self.fixed::<1>(pos, op)?[0].into()),
            ArgKind::U2 => Arg::Int(u16::from_le_bytes(self.fixed(pos, op)?).into()),
            ArgKind::I4 => Arg::Int(i32::from_le_bytes(self.fixed(pos, op)?).into()),
            ArgKind::U4 => Arg::Int(u32::from_le_bytes(self.fixed(pos, op)?).into()),
            ArgKind::U8 => Arg::Int(u64::from_le_bytes(self.fixed(pos, op)?).into()),
            ArgKind::F8Be => Arg::Float(f64::from_be_bytes(self.fixed(pos, op)?)),
            ArgKind::Long1 => {
                let n = self.fixed::<1>(pos, op)?[0];
                let blob = self.payload(pos, op, n.into(), 256)?;
                long_from_le(&blob.data)
            }
            ArgKind::Long4 => {
                let n = i32::from_le_bytes(self.fixed(pos, op)?);
                if n < 0 {
                    return Err(bad(format!("negative byte count {n}")));
                }
                let blob = self.payload(pos, op, n as u64, 256)?;
                if blob.is_complete() {
                    long_from_le(&blob.data)
                } else {
                    Arg::BigInt
                }
            }
            ArgKind::Bytes1 => {
                let n = self.fixed::<1>(pos, op)?[0];
                Arg::Bytes(Box::new(self.payload(pos, op, n.into(), 256)?))
            }
            ArgKind::Bytes4Signed => {
                let n = i32::from_le_bytes(self.fixed(pos, op)?);
                if n < 0 {
                    return Err(bad(format!("negative byte count {n}")));
                }
                Arg::Bytes(Box::new(self.payload(pos, op, n as u64, self.cfg.keep_text)?))
            }
            ArgKind::Bytes4 => {
                let n = u32::from_le_bytes(self.fixed(pos, op)?);
                Arg::Bytes(Box::new(self.payload(pos, op, n.into(), self.cfg.keep_text)?))
            }
            ArgKind::Bytes8 => {
                let n = u64::from_le_bytes(self.fixed(pos, op)?);
                Arg::Bytes(Box::new(self.payload(pos, op, n, self.cfg.keep_text)?))
            }
            ArgKind::Unicode1 => {
                let n = self.fixed::<1>(pos, op)?[0];
                Arg::Text(Box::new(self.text(pos, op, n.into())?))
            }
            ArgKind::Unicode4 => {
                let n = u32::from_le_bytes(self.fixed(pos, op)?);
                Arg::Text(Box::new(self.text(pos, op, n.into())?))
            }
            ArgKind::Unicode8 => {
                let n = u64::from_le_bytes(self.fixed(pos, op)?);
                Arg::Text(Box::new(self.text(pos, op, n)?))
            }
            ArgKind::DecimalNlShort => {
                let line = self.line(pos, op)?;
                match line.as_slice() {
                    b"00" => Arg::Bool(false),
                    b"01" => Arg::Bool(true),
                    _ => parse_py_int(&line).ok_or_else(|| bad("not an integer".to_owned()))?,
                }
            }
            ArgKind::DecimalNlLong => {
                let mut line = self.line(pos, op)?;
                if line.last() == Some(&b'L') {
                    line.pop();
                }
                parse_py_int(&line).ok_or_else(|| bad("not an integer".to_owned()))?
            }
            ArgKind::DecimalNlMemo => {
                let line = self.line(pos, op)?;
                match parse_py_int(&line) {
                    Some(a @ Arg::Int(_)) => a,
                    _ => return Err(bad("not a memo index".to_owned())),
                }
            }
            ArgKind::FloatNl => {
                let line = self.line(pos, op)?;
                let s = std::str::from_utf8(&line).map_err(|_| bad("not a float".to_owned()))?;
                let s = s.trim().replace('_', "");
                Arg::Float(s.parse::<f64>().map_err(|_| bad("not a float".to_owned()))?)
            }
            ArgKind::StringNl => {
                let line = self.line(pos, op)?;
                let inner = strip_quotes(&line).ok_or_else(|| bad("string is not quoted".to_owned()))?;
                let data = escape_decode(inner).ok_or_else(|| bad("invalid escape".to_owned()))?;
                let len = data.len() as u64;
                Arg::Bytes(Box::new(Blob {
                    data,
                    len,
                    oversized_nested: false,
                }))
            }
            ArgKind::StringNlNoEscape => Arg::Line(self.line(pos, op)?),
            ArgKind::StringNlPair => {
                let module = self.line(pos, op)?;
                let name = self.line(pos, op)?;
                Arg::Pair(Box::new((module, name)))
            }
            ArgKind::UnicodeStringNl => {
                let line = self.line(pos, op)?;
                let value = raw_unicode_escape_decode(&line).ok_or_else(|| bad("invalid escape".to_owned()))?;
                let chars = value.chars().count() as u64;
                Arg::Text(Box::new(Text {
                    value,
                    chars,
                    truncated: false,
                }))
            }
        })
    }
}

/// Little-endian two's complement, as `pickle.decode_long`.
fn long_from_le(bytes: &[u8]) -> Arg {
    if bytes.is_empty() {
        return Arg::Int(0);
    }
    if bytes.len() > 16 {
        // Could still fit if it is sign extension, but Python would print it the same way
        // only if it fits; check the extension bytes.
        let sign = if bytes[bytes.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
        if bytes[16..].iter().any(|b| *b != sign) || (bytes[15] & 0x80 != 0) != (sign == 0xff) {
            return Arg::BigInt;
        }
        return long_from_le(&bytes[..16]);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 16] } else { [0u8; 16] };
    buf[..bytes.len()].copy_from_slice(bytes);
    Arg::Int(i128::from_le_bytes(buf))
}

/// Python's `int(str)` for the forms pickles use: optional whitespace and sign, digits with
/// single underscores between them.
fn parse_py_int(line: &[u8]) -> Option<Arg> {
    let s = std::str::from_utf8(line).ok()?.trim();
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if !clean.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match clean.parse::<i128>() {
        Ok(v) => Some(Arg::Int(if neg { -v } else { v })),
        Err(_) => Some(Arg::BigInt),
    }
}

fn strip_quotes(line: &[u8]) -> Option<&[u8]> {
    for q in [b'"', b'\''] {
        if line.first() == Some(&q) {
            if line.len() < 2 || line.last() != Some(&q) {
                return None;
            }
            return Some(&line[1..line.len() - 1]);
        }
    }
    None
}

/// Python's `codecs.escape_decode`: backslash escapes of a bytes literal.
pub fn escape_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *s.get(i)?;
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let hex = s.get(i..i + 2)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                i += 2;
                out.push(v);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Python's `raw-unicode-escape` decoding: bytes are Latin-1 except `\uXXXX` and
/// `\UXXXXXXXX`.
fn raw_unicode_escape_decode(s: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'\\' {
            // Count the run of backslashes: only an odd one escapes.
            let run = s[i..].iter().take_while(|b| **b == b'\\').count();
            let after = s.get(i + run).copied();
            if run % 2 == 1 && matches!(after, Some(b'u') | Some(b'U')) {
                for _ in 0..run - 1 {
                    out.push('\\');
                }
                let n = if after == Some(b'u') { 4 } else { 8 };
                let start = i + run + 1;
                let hex = s.get(start..start + n)?;
                let v = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if v > 0x10ffff {
                    return None;
                }
                match char::from_u32(v) {
                    Some(c) => out.push(c),
                    // A lone surrogate: rendered as `surrogatepass` + `replace` would.
                    None => out.push_str("\u{fffd}\u{fffd}\u{fffd}"),
                }
                i = start + n;
                continue;
            }
            for _ in 0..run {
                out.push('\\');
            }
            i += run;
            continue;
        }
        out.push(char::from(c));
        i += 1;
    }
    Some(out)
}

/// UTF-8 with lone surrogates allowed (Python's `surrogatepass`); surrogates become
/// U+FFFD per byte, as `errors='replace'` would render them.
pub fn decode_utf8_surrogatepass(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return Some(out);
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).ok()?);
                match bad {
                    [0xed, b1 @ 0xa0..=0xbf, b2 @ 0x80..=0xbf, ..] if (*b2 & 0xc0) == 0x80 && (*b1 & 0xc0) == 0x80 => {
                        out.push_str("\u{fffd}\u{fffd}\u{fffd}");
                        rest = &bad[3..];
                    }
                    _ => return None,
                }
            }
        }
    }
}

/// The argument as `tests/fixtures/gen_pickle_fixtures.py` normalises what
/// `pickletools.genops` yields; used by the differential test against CPython.
/// `Err` where `pickletools` itself rejects the argument (it decodes protocol-0 strings
/// and names as ASCII, stricter than the unpickler, which this decoder follows).
pub fn genops_repr(code: Opcode, arg: &Arg) -> Result<Option<String>, &'static str> {
    fn s(v: &str, chars: u64) -> String {
        let head: String = v.chars().take(64).collect();
        if chars > 64 {
            format!("s:{head}:len={chars}")
        } else {
            format!("s:{head}")
        }
    }
    fn ascii_line(line: &[u8]) -> Result<String, &'static str> {
        match escape_decode(line) {
            Some(b) if b.is_ascii() => Ok(String::from_utf8_lossy(&b).into_owned()),
            _ => Err("not ASCII"),
        }
    }
    fn text(v: String) -> String {
        let n = v.chars().count() as u64;
        s(&v, n)
    }
    Ok(Some(match arg {
        Arg::None => return Ok(None),
        Arg::Int(v) if *v == i128::MIN => "i:big".to_owned(),
        Arg::Int(v) => format!("i:{v}"),
        Arg::BigInt => "i:big".to_owned(),
        Arg::Bool(b) => format!("bool:{b}"),
        Arg::Float(f) => format!("f:{:016x}", f.to_bits()),
        Arg::Text(t) => s(&t.value, t.chars),
        // STRING is escape-decoded and ASCII-decoded; BINSTRING and SHORT_BINSTRING are
        // Latin-1 decoded.
        Arg::Bytes(b) if code == Opcode::STRING => {
            if !b.data.is_ascii() {
                return Err("not ASCII");
            }
            text(String::from_utf8_lossy(&b.data).into_owned())
        }
        Arg::Bytes(b) if matches!(code, Opcode::BINSTRING | Opcode::SHORT_BINSTRING) => {
            let latin1: String = b.data.iter().map(|c| char::from(*c)).collect();
            s(&latin1, b.len)
        }
        Arg::Bytes(b) => {
            let hex: String = b.data.iter().take(32).map(|x| format!("{x:02x}")).collect();
            format!("b:{}:{hex}", b.len)
        }
        Arg::Line(l) => text(ascii_line(l)?),
        Arg::Pair(p) => text(format!("{} {}", ascii_line(&p.0)?, ascii_line(&p.1)?)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(bytes: &[u8]) -> Vec<(u64, &'static str, Option<String>)> {
        let mut r = OpReader::new(bytes, ReaderConfig::default());
        let mut out = Vec::new();
        while let Ok(Some(op)) = r.next_op() {
            out.push((op.pos, op.code.name(), genops_repr(op.code, &op.arg).unwrap()));
            if op.code == Opcode::STOP {
                break;
            }
        }
        out
    }

    #[test]
    fn protocol0_text_ops() {
        let got = ops(b"(I01\nL12L\nS'a\\x41'\ncos\nsystem\nt.");
        assert_eq!(
            got,
            vec![
                (0, "MARK", None),
                (1, "INT", Some("bool:true".into())),
                (5, "LONG", Some("i:12".into())),
                (10, "STRING", Some("s:aA".into())),
                (19, "GLOBAL", Some("s:os system".into())),
                (30, "TUPLE", None),
                (31, "STOP", None),
            ]
        );
    }

    #[test]
    fn long1_sign_extension() {
        assert_eq!(long_from_le(&[0xff]), Arg::Int(-1));
        assert_eq!(long_from_le(&[0x00, 0x80]), Arg::Int(-32768));
        assert_eq!(long_from_le(&[0x80, 0x00]), Arg::Int(128));
        assert_eq!(long_from_le(&[1; 20]), Arg::BigInt);
    }

    #[test]
    fn large_payload_is_skipped_not_kept() {
        let mut p = vec![0x80, 4, 0x8e];
        p.extend_from_slice(&(1_000_000u64).to_le_bytes());
        p.extend(std::iter::repeat_n(7u8, 1_000_000));
        p.push(b'.');
        let mut r = OpReader::new(p.as_slice(), ReaderConfig::default());
        r.next_op().unwrap();
        let op = r.next_op().unwrap().unwrap();
        match op.arg {
            Arg::Bytes(b) => {
                assert_eq!(b.len, 1_000_000);
                assert_eq!(b.data.len(), 64);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.next_op().unwrap().unwrap().code, Opcode::STOP);
    }

    #[test]
    fn truncated_and_unknown() {
        let mut r = OpReader::new(&b"X\x05\x00\x00\x00ab"[..], ReaderConfig::default());
        assert!(matches!(r.next_op(), Err(DecodeError::Truncated { pos: 0, .. })));
        let mut r = OpReader::new(&b"\xff"[..], ReaderConfig::default());
        assert!(matches!(
            r.next_op(),
            Err(DecodeError::UnknownOpcode { pos: 0, byte: 0xff })
        ));
    }

    #[test]
    fn surrogates_and_invalid_utf8() {
        assert_eq!(
            decode_utf8_surrogatepass(b"a\xed\xa0\x80b").as_deref(),
            Some("a\u{fffd}\u{fffd}\u{fffd}b")
        );
        assert_eq!(decode_utf8_surrogatepass(b"a\xffb"), None);
    }
}
