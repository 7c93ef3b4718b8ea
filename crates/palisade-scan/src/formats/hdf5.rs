//! A minimal HDF5 reader for one purpose: the attributes of the root group (where Keras
//! keeps `model_config`). It follows the file format specification's superblock
//! (versions 0–3), object headers (versions 1 and 2, with continuation blocks),
//! attribute messages (versions 1–3) and fixed- or variable-length string values (the
//! latter through the global heap). Dense attribute storage (fractal heaps) is not read:
//! the caller is told so. Every read is bounded and every offset checked.

use std::io::SeekFrom;

use crate::ReadSeek;

/// Messages read from one object header, across continuations.
const MAX_MESSAGES: usize = 4096;
/// Continuation blocks followed.
const MAX_CONTINUATIONS: usize = 64;
/// Largest attribute value or header block read.
const MAX_BLOCK: u64 = 64 << 20;

pub struct Attribute {
    pub name: String,
    /// The value when it is a string (fixed or variable length); `None` otherwise.
    pub text: Option<String>,
}

struct File<'a> {
    r: &'a mut dyn ReadSeek,
    size: u64,
    offsets: usize,
    lengths: usize,
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

impl File<'_> {
    fn read(&mut self, at: u64, n: u64) -> Result<Vec<u8>, String> {
        if n > MAX_BLOCK || at.checked_add(n).is_none_or(|end| end > self.size) {
            return Err(format!("block of {n} bytes at {at} lies outside the file"));
        }
        self.r.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok(buf)
    }

    /// The `(offset, length)` of a header continuation message, counting how many were
    /// followed.
    fn continuation(&self, data: &[u8], followed: &mut usize) -> Result<(u64, u64), String> {
        *followed += 1;
        if *followed > MAX_CONTINUATIONS {
            return Err("too many continuation blocks".to_owned());
        }
        let off = le(&data[..self.offsets.min(data.len())]);
        let len = le(data.get(self.offsets..self.offsets + self.lengths).unwrap_or(&[]));
        Ok((off, len))
    }

    /// Messages `(type, data)` of the object header at `addr`.
    fn messages(&mut self, addr: u64) -> Result<Vec<(u16, Vec<u8>)>, String> {
        let mut out = Vec::new();
        let sig = self.read(addr, 4.min(self.size.saturating_sub(addr)))?;
        if sig == b"OHDR" {
            let h = self.read(addr, 6)?;
            let flags = h[5];
            let mut at = addr.saturating_add(6);
            if flags & 0x20 != 0 {
                at = at.saturating_add(16);
            }
            if flags & 0x10 != 0 {
                at = at.saturating_add(4);
            }
            let width = 1u64 << (flags & 3);
            let chunk = le(&self.read(at, width)?);
            at = at.saturating_add(width);
            let mut blocks = vec![(at, chunk.saturating_sub(4))];
            let mut followed = 0;
            while let Some((start, len)) = blocks.pop() {
                let block = self.read(start, len)?;
                let mut i = 0usize;
                let creation = if flags & 0x04 != 0 { 2 } else { 0 };
                while i + 4 + creation <= block.len() && out.len() < MAX_MESSAGES {
                    let ty = u16::from(block[i]);
                    let size = le(&block[i + 1..i + 3]) as usize;
                    let data_at = i + 4 + creation;
                    let Some(data) = block.get(data_at..data_at + size) else {
                        break;
                    };
                    if ty == 0x10 {
                        let (off, l) = self.continuation(data, &mut followed)?;
                        // An OCHK block: signature, messages, checksum.
                        blocks.push((off.saturating_add(4), l.saturating_sub(8)));
                    } else {
                        out.push((ty, data.to_vec()));
                    }
                    i = data_at + size;
                }
            }
        } else {
            let h = self.read(addr, 16)?;
            if h[0] != 1 {
                return Err(format!("unsupported object header version {}", h[0]));
            }
            let count = le(&h[2..4]) as usize;
            let size = le(&h[8..12]);
            let mut blocks = vec![(addr.saturating_add(16), size)];
            let mut followed = 0;
            while let Some((start, len)) = blocks.pop() {
                let block = self.read(start, len)?;
                let mut i = 0usize;
                while i + 8 <= block.len() && out.len() < count.min(MAX_MESSAGES) {
                    let ty = le(&block[i..i + 2]) as u16;
                    let size = le(&block[i + 2..i + 4]) as usize;
                    let Some(data) = block.get(i + 8..i + 8 + size) else {
                        break;
                    };
                    if ty == 0x10 {
                        blocks.push(self.continuation(data, &mut followed)?);
                    } else {
                        out.push((ty, data.to_vec()));
                    }
                    i += 8 + size;
                }
            }
        }
        Ok(out)
    }

    fn attribute(&mut self, data: &[u8]) -> Result<Attribute, String> {
        let short = || "truncated attribute message".to_owned();
        let version = *data.first().ok_or_else(short)?;
        let name_len = le(data.get(2..4).ok_or_else(short)?) as usize;
        let dt_len = le(data.get(4..6).ok_or_else(short)?) as usize;
        let ds_len = le(data.get(6..8).ok_or_else(short)?) as usize;
        let pad = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
        let mut at = if version == 3 { 9 } else { 8 };
        let name_bytes = data.get(at..at + name_len).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name_bytes).trim_end_matches('\0').to_owned();
        at += pad(name_len);
        let dt = data.get(at..at + dt_len).ok_or_else(short)?;
        at += pad(dt_len) + pad(ds_len);
        let value = data.get(at..).unwrap_or(&[]);
        let class = dt.first().map(|b| b & 0x0f);
        let elem = le(dt.get(4..8).unwrap_or(&[]));
        let text = match class {
            // Fixed-length string.
            Some(3) => Some(
                String::from_utf8_lossy(&value[..(elem as usize).min(value.len())])
                    .trim_end_matches('\0')
                    .to_owned(),
            ),
            // Variable-length string: length, global heap collection address, index.
            Some(9) if dt.get(1).map(|b| b & 0x0f) == Some(1) => {
                let o = self.offsets;
                let addr = le(value.get(4..4 + o).ok_or_else(short)?);
                let index = le(value.get(4 + o..8 + o).ok_or_else(short)?);
                Some(self.global_heap_object(addr, index)?)
            }
            _ => None,
        };
        Ok(Attribute { name, text })
    }

    fn global_heap_object(&mut self, addr: u64, index: u64) -> Result<String, String> {
        let l = self.lengths as u64;
        let head = self.read(addr, 8 + l)?;
        if &head[..4] != b"GCOL" {
            return Err("variable-length string points at no global heap".to_owned());
        }
        let size = le(&head[8..]);
        let heap = self.read(addr, size)?;
        let mut at = 8 + self.lengths;
        while at + 8 + self.lengths <= heap.len() {
            let idx = le(&heap[at..at + 2]);
            let osize = usize::try_from(le(&heap[at + 8..at + 8 + self.lengths])).unwrap_or(usize::MAX);
            let data_at = at + 8 + self.lengths;
            if idx == 0 {
                break;
            }
            if idx == index {
                let data = heap
                    .get(data_at..data_at.saturating_add(osize))
                    .ok_or("global heap object overruns its collection")?;
                return Ok(String::from_utf8_lossy(data).into_owned());
            }
            at = data_at.saturating_add(osize.div_ceil(8).saturating_mul(8));
        }
        Err(format!("global heap object {index} not found"))
    }
}

/// The root group's attributes, or why they could not be read.
pub fn root_attributes(r: &mut dyn ReadSeek, size: u64) -> Result<Vec<Attribute>, String> {
    let mut f = File {
        r,
        size,
        offsets: 8,
        lengths: 8,
    };
    let sb = f.read(0, 96.min(size))?;
    if !sb.starts_with(super::keras::HDF5_MAGIC) {
        return Err("no HDF5 signature".to_owned());
    }
    if sb.len() < 16 {
        return Err("truncated superblock".to_owned());
    }
    let version = sb[8];
    let (root, base) = match version {
        0 | 1 => {
            f.offsets = usize::from(sb[13]);
            f.lengths = usize::from(sb[14]);
            let o = f.offsets;
            let start = if version == 0 { 24 } else { 28 };
            let base = le(sb.get(start..start + o).ok_or("short superblock")?);
            // Root symbol table entry: link name offset, then object header address.
            let entry = start + 4 * o;
            (le(sb.get(entry + o..entry + 2 * o).ok_or("short superblock")?), base)
        }
        2 | 3 => {
            f.offsets = usize::from(sb[9]);
            f.lengths = usize::from(sb[10]);
            let o = f.offsets;
            let base = le(sb.get(12..12 + o).ok_or("short superblock")?);
            (le(sb.get(12 + 3 * o..12 + 4 * o).ok_or("short superblock")?), base)
        }
        v => return Err(format!("unsupported superblock version {v}")),
    };
    if !(1..=8).contains(&f.offsets) || !(1..=8).contains(&f.lengths) {
        return Err("invalid offset or length size".to_owned());
    }
    let mut attrs = Vec::new();
    for (ty, data) in f.messages(base.saturating_add(root))? {
        match ty {
            0x0C => attrs.push(f.attribute(&data)?),
            0x15 => return Err("root attributes are in dense storage (fractal heap), which is not read".to_owned()),
            _ => {}
        }
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::root_attributes;

    fn attrs(rel: &str) -> Vec<(String, Option<String>)> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/formats")
            .join(rel);
        let bytes = std::fs::read(&p).unwrap();
        let len = bytes.len() as u64;
        root_attributes(&mut std::io::Cursor::new(bytes), len)
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .into_iter()
            .map(|a| (a.name, a.text))
            .collect()
    }

    #[test]
    fn keras_h5_root_attributes_are_read_structurally() {
        for rel in ["benign/keras_h5_dense.h5", "malicious/keras_h5_lambda.h5"] {
            let a = attrs(rel);
            let config = a.iter().find(|(n, _)| n == "model_config").and_then(|(_, t)| t.clone());
            let config = config.unwrap_or_else(|| {
                panic!(
                    "{rel}: no model_config in {:?}",
                    a.iter().map(|x| &x.0).collect::<Vec<_>>()
                )
            });
            assert!(config.contains("\"class_name\""), "{rel}: {config}");
            assert!(a.iter().any(|(n, _)| n == "keras_version"), "{rel}");
        }
    }

    #[test]
    fn truncated_superblock_is_an_error() {
        let mut bytes = crate::formats::keras::HDF5_MAGIC.to_vec();
        bytes.extend_from_slice(&[0, 0, 0]);
        let len = bytes.len() as u64;
        assert!(root_attributes(&mut std::io::Cursor::new(bytes), len).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut bytes = crate::formats::keras::HDF5_MAGIC.to_vec();
        bytes.extend_from_slice(&[0xff; 200]);
        let len = bytes.len() as u64;
        assert!(root_attributes(&mut std::io::Cursor::new(bytes), len).is_err());
    }
}
