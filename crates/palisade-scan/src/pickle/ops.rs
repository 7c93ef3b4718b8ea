//! The pickle opcode table, protocols 0–5, as CPython's `Lib/pickle.py` and
//! `Modules/_pickle.c` define it (names follow `pickletools`).

/// How an opcode's argument is encoded in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    None,
    /// `I`: a decimal line; `00`/`01` mean False/True.
    DecimalNlShort,
    /// `L`: a decimal line with an optional trailing `L`.
    DecimalNlLong,
    /// `F`: a float repr line.
    FloatNl,
    /// `S`: a quoted, escaped string line.
    StringNl,
    /// `P`: an unquoted line (persistent id).
    StringNlNoEscape,
    /// `c`/`i`: two lines, module and name.
    StringNlPair,
    /// `V`: a raw-unicode-escape line.
    UnicodeStringNl,
    /// `g`/`p`: a decimal memo index line.
    DecimalNlMemo,
    U1,
    U2,
    /// little-endian signed 4 bytes
    I4,
    /// little-endian unsigned 4 bytes
    U4,
    U8,
    /// big-endian IEEE double
    F8Be,
    /// 1-byte length + little-endian two's complement
    Long1,
    /// signed 4-byte length + little-endian two's complement
    Long4,
    /// byte strings with a length prefix of 1, 4 (signed), 4 (unsigned) or 8 bytes
    Bytes1,
    Bytes4Signed,
    Bytes4,
    Bytes8,
    /// UTF-8 text with a length prefix of 1, 4 or 8 bytes
    Unicode1,
    Unicode4,
    Unicode8,
}

macro_rules! opcodes {
    ($($name:ident = $byte:literal, $arg:ident, $proto:literal;)*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Opcode { $($name),* }

        impl Opcode {
            /// Decodes an opcode byte (a table lookup: this is the decoder's hot path).
            pub fn from_byte(b: u8) -> Option<Opcode> {
                const TABLE: [Option<Opcode>; 256] = {
                    let mut t = [None; 256];
                    $(t[$byte as usize] = Some(Opcode::$name);)*
                    t
                };
                TABLE[b as usize]
            }
            pub fn byte(self) -> u8 {
                match self { $(Opcode::$name => $byte),* }
            }
            pub fn name(self) -> &'static str {
                match self { $(Opcode::$name => stringify!($name)),* }
            }
            pub fn arg_kind(self) -> ArgKind {
                match self { $(Opcode::$name => ArgKind::$arg),* }
            }
            /// The protocol that introduced the opcode.
            pub fn protocol(self) -> u8 {
                match self { $(Opcode::$name => $proto),* }
            }
        }
    };
}

opcodes! {
    INT = b'I', DecimalNlShort, 0;
    BININT = b'J', I4, 1;
    BININT1 = b'K', U1, 1;
    BININT2 = b'M', U2, 1;
    LONG = b'L', DecimalNlLong, 0;
    LONG1 = 0x8a, Long1, 2;
    LONG4 = 0x8b, Long4, 2;
    STRING = b'S', StringNl, 0;
    BINSTRING = b'T', Bytes4Signed, 1;
    SHORT_BINSTRING = b'U', Bytes1, 1;
    BINBYTES = b'B', Bytes4, 3;
    SHORT_BINBYTES = b'C', Bytes1, 3;
    BINBYTES8 = 0x8e, Bytes8, 4;
    BYTEARRAY8 = 0x96, Bytes8, 5;
    NEXT_BUFFER = 0x97, None, 5;
    READONLY_BUFFER = 0x98, None, 5;
    NONE = b'N', None, 0;
    NEWTRUE = 0x88, None, 2;
    NEWFALSE = 0x89, None, 2;
    UNICODE = b'V', UnicodeStringNl, 0;
    SHORT_BINUNICODE = 0x8c, Unicode1, 4;
    BINUNICODE = b'X', Unicode4, 1;
    BINUNICODE8 = 0x8d, Unicode8, 4;
    FLOAT = b'F', FloatNl, 0;
    BINFLOAT = b'G', F8Be, 1;
    EMPTY_LIST = b']', None, 1;
    APPEND = b'a', None, 0;
    APPENDS = b'e', None, 1;
    LIST = b'l', None, 0;
    EMPTY_TUPLE = b')', None, 1;
    TUPLE = b't', None, 0;
    TUPLE1 = 0x85, None, 2;
    TUPLE2 = 0x86, None, 2;
    TUPLE3 = 0x87, None, 2;
    EMPTY_DICT = b'}', None, 1;
    DICT = b'd', None, 0;
    SETITEM = b's', None, 0;
    SETITEMS = b'u', None, 1;
    EMPTY_SET = 0x8f, None, 4;
    ADDITEMS = 0x90, None, 4;
    FROZENSET = 0x91, None, 4;
    POP = b'0', None, 0;
    DUP = b'2', None, 0;
    MARK = b'(', None, 0;
    POP_MARK = b'1', None, 1;
    GET = b'g', DecimalNlMemo, 0;
    BINGET = b'h', U1, 1;
    LONG_BINGET = b'j', U4, 1;
    PUT = b'p', DecimalNlMemo, 0;
    BINPUT = b'q', U1, 1;
    LONG_BINPUT = b'r', U4, 1;
    MEMOIZE = 0x94, None, 4;
    EXT1 = 0x82, U1, 2;
    EXT2 = 0x83, U2, 2;
    EXT4 = 0x84, I4, 2;
    GLOBAL = b'c', StringNlPair, 0;
    STACK_GLOBAL = 0x93, None, 4;
    REDUCE = b'R', None, 0;
    BUILD = b'b', None, 0;
    INST = b'i', StringNlPair, 0;
    OBJ = b'o', None, 1;
    NEWOBJ = 0x81, None, 2;
    NEWOBJ_EX = 0x92, None, 4;
    PROTO = 0x80, U1, 2;
    STOP = b'.', None, 0;
    FRAME = 0x95, U8, 4;
    PERSID = b'P', StringNlNoEscape, 0;
    BINPERSID = b'Q', None, 1;
}

/// The highest protocol CPython understands.
pub const HIGHEST_PROTOCOL: u8 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_is_complete() {
        let mut n = 0;
        for b in 0..=255u8 {
            if let Some(op) = Opcode::from_byte(b) {
                assert_eq!(op.byte(), b, "{}", op.name());
                n += 1;
            }
        }
        // pickletools.opcodes has 68 entries for protocols 0-5.
        assert_eq!(n, 68);
    }
}
