//! Format detection by content, never by file name.

use crate::pickle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Zip,
    Npy,
    Tar,
    Gzip,
    /// A zlib stream (joblib's `compress=True` default).
    Zlib,
    /// joblib's pre-0.10 "Z-file": `ZF`, the length in hex padded to 19 bytes, then zlib.
    JoblibZfile,
    Bzip2,
    Xz,
    Zstd,
    SevenZip,
    /// A compression this version recognises but does not decompress.
    Compressed(&'static str),
    Safetensors,
    Gguf,
    Hdf5,
    /// A JSON object: possibly a Hugging Face config.
    Json,
    /// Possibly ONNX, a SavedModel or a GraphDef: decided by decoding.
    Protobuf,
    Pickle,
    Unknown,
}

impl Kind {
    /// Formats whose parser needs random access.
    pub fn needs_seek(self) -> bool {
        matches!(
            self,
            Kind::Zip | Kind::Safetensors | Kind::SevenZip | Kind::Protobuf | Kind::Hdf5
        )
    }
}

pub fn sniff(head: &[u8], policy: &pickle::policy::Policy) -> Kind {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Kind::Zip;
    }
    if head.starts_with(b"\x93NUMPY") {
        return Kind::Npy;
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Kind::Tar;
    }
    if head.len() > 22
        && head.starts_with(b"ZF")
        && head[2..21]
            .iter()
            .all(|b| b.is_ascii_hexdigit() || *b == b'x' || *b == b' ')
    {
        return Kind::JoblibZfile;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Kind::Gzip;
    }
    // zlib: CMF 0x78 and a header checksum that divides by 31.
    if let [0x78, flg, ..] = head {
        if (0x7800u16 | u16::from(*flg)).is_multiple_of(31) {
            return Kind::Zlib;
        }
    }
    if head.starts_with(b"BZh") {
        return Kind::Bzip2;
    }
    if head.starts_with(b"\xfd7zXZ\x00") {
        return Kind::Xz;
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Kind::Zstd;
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Kind::SevenZip;
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Kind::Compressed("lz4");
    }
    if head.starts_with(crate::formats::keras::HDF5_MAGIC) {
        return Kind::Hdf5;
    }
    if crate::formats::gguf::sniff(head) {
        return Kind::Gguf;
    }
    if crate::formats::safetensors::sniff(head) {
        return Kind::Safetensors;
    }
    if pickle::sniff(head, policy) {
        return Kind::Pickle;
    }
    if crate::formats::protobuf::sniff(head) {
        return Kind::Protobuf;
    }
    if crate::formats::hfconfig::sniff(head) {
        return Kind::Json;
    }
    Kind::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(b: &[u8]) -> Kind {
        sniff(b, &Default::default())
    }

    #[test]
    fn pickles_by_content() {
        assert_eq!(k(b"\x80\x04N."), Kind::Pickle);
        assert_eq!(k(b"cos\nsystem\n(S'x'\ntR."), Kind::Pickle);
        // Broken after an import is still a pickle (nullifAI).
        assert_eq!(k(b"cos\nsystem\n(S'x'\ntR\x00garbage"), Kind::Pickle);
        assert_eq!(k(b"N."), Kind::Pickle);
    }

    #[test]
    fn random_bytes_after_a_proto_header_are_not_a_pickle() {
        // Tensor data can start with 0x80 0x02 by chance; it breaks without importing.
        assert_eq!(k(b"\x80\x02\x4e\x4e\x00\x00\xff\x13"), Kind::Unknown);
        // A broken stream that imports and calls something is still a pickle.
        assert_eq!(k(b"\x80\x02cos\nsystem\nN\x85R\x00"), Kind::Pickle);
    }

    #[test]
    fn text_is_not_a_pickle() {
        // Imports an unknown name and never calls it, then breaks: not a pickle.
        assert_eq!(k(b"cat\ndog\nfish\n"), Kind::Unknown);
        assert_eq!(k(b"import torch\nprint(1)\n"), Kind::Unknown);
        assert_eq!(k(b"config = 1\n"), Kind::Unknown);
        assert_eq!(k(b"# README\n"), Kind::Unknown);
        // JSON is sniffed as a possible config, never as a pickle.
        assert_eq!(k(b"{\"a\": 1}"), Kind::Json);
        assert_eq!(k(b""), Kind::Unknown);
    }

    #[test]
    fn containers() {
        assert_eq!(k(b"PK\x03\x04rest"), Kind::Zip);
        assert_eq!(k(b"\x93NUMPY\x01\x00"), Kind::Npy);
        assert_eq!(k(&[0x78, 0x9c, 1, 2]), Kind::Zlib);
        assert_eq!(k(&[0x1f, 0x8b, 8]), Kind::Gzip);
        assert_eq!(k(b"ZF0x1f               x\x9c......"), Kind::JoblibZfile);
    }
}
