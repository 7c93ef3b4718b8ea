//! RFC 6962 / RFC 9162 Merkle tree hashing: the audit log's tamper evidence. Leaves are
//! `SHA-256(0x00 ‖ data)`, interior nodes `SHA-256(0x01 ‖ left ‖ right)`, and the tree of
//! `n` leaves splits at the largest power of two below `n`. Inclusion and consistency
//! proofs are generated (`PATH`, `PROOF`) and verified with the algorithms of RFC 9162
//! §2.1.3.2 and §2.1.4.2. Pure functions over leaf hashes; storage is the caller's.

use sha2::{Digest as _, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of the leaves (given as leaf hashes). The empty tree's hash is
/// SHA-256 of the empty string.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The right edge of a Merkle tree: the roots of its perfect subtrees, largest first (one
/// per set bit of the size). Enough to append leaves and compute the root in O(log n)
/// without the leaves themselves, so a log can be checkpointed in time proportional to
/// what it gained since the last checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of a tree given all its leaves.
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut f = Self::new();
        for l in leaves {
            f.push(*l);
        }
        f
    }

    /// Rebuilds a frontier from its size and nodes (as stored), checking that their
    /// number matches the size.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.nodes.push(leaf);
        // Each trailing one bit of the old size is a subtree the new leaf completes.
        let mut carries = self.size.trailing_ones();
        while carries > 0 {
            let (Some(right), Some(left)) = (self.nodes.pop(), self.nodes.pop()) else {
                break;
            };
            self.nodes.push(node_hash(&left, &right));
            carries -= 1;
        }
        self.size += 1;
    }

    /// The tree's root, equal to [`root`] over the same leaves.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else {
            return Sha256::digest([]).into();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 `PATH`), or `None`
/// when the index is outside the tree.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(index, leaves, &mut out);
    Some(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &d[..k], out);
        out.push(root(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(root(&d[..k]));
    }
}

/// The consistency proof between the first `old_size` leaves and all of `leaves`
/// (RFC 6962 `PROOF`); `None` unless `0 < old_size <= leaves.len()`.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    subproof(old_size, leaves, true, &mut out);
    Some(out)
}

fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            out.push(root(d));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &d[..k], complete, out);
        out.push(root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(root(&d[..k]));
    }
}

/// RFC 9162 §2.1.3.2: does `proof` show that `leaf` is leaf `index` of the tree of
/// `size` leaves with hash `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `old_size` leaves with hash
/// `old_root` is a prefix of the tree of `new_size` leaves with hash `new_root`?
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod frontier_tests {
    use super::*;

    #[test]
    fn frontier_root_equals_the_tree_root_at_every_size() {
        let leaves: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), root(&[]));
        for n in 1..=leaves.len() {
            f.push(leaves[n - 1]);
            assert_eq!(f.root(), root(&leaves[..n]), "size {n}");
            assert_eq!(f.nodes().len(), n.count_ones() as usize);
            let again = Frontier::from_parts(f.size(), f.nodes().to_vec()).unwrap();
            assert_eq!(again, f);
        }
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight leaves of the Certificate Transparency reference test suite and the tree
    /// hashes of their prefixes (certificate-transparency `merkle_tree_test`, also used by
    /// Trillian and transparency-dev/merkle).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn hexd(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn leaves() -> Vec<Hash> {
        LEAVES.iter().map(|l| leaf_hash(&hexd(l))).collect()
    }

    #[test]
    fn roots_match_the_reference_vectors() {
        let l = leaves();
        for n in 1..=8 {
            assert_eq!(root(&l[..n]).to_vec(), hexd(ROOTS[n - 1]), "tree of {n}");
        }
        assert_eq!(
            root(&[]).to_vec(),
            hexd("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        let l = leaves();
        for n in 1..=8 {
            let r = root(&l[..n]);
            for i in 0..n {
                let p = inclusion_proof(i, &l[..n]).unwrap();
                assert!(verify_inclusion(i as u64, n as u64, &l[i], &p, &r), "leaf {i} of {n}");
                let other = (i + 1) % n;
                if other != i {
                    assert!(!verify_inclusion(other as u64, n as u64, &l[i], &p, &r));
                }
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = node_hash(first, first);
                    assert!(!verify_inclusion(i as u64, n as u64, &l[i], &bad, &r));
                }
            }
            assert!(inclusion_proof(n, &l[..n]).is_none());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_tampering_fails() {
        let l = leaves();
        for n in 1..=8 {
            for m in 1..=n {
                let p = consistency_proof(m, &l[..n]).unwrap();
                let (old, new) = (root(&l[..m]), root(&l[..n]));
                assert!(verify_consistency(m as u64, n as u64, &old, &new, &p), "{m} -> {n}");
                if m < n {
                    let forged = node_hash(&old, &old);
                    assert!(!verify_consistency(m as u64, n as u64, &forged, &new, &p));
                    assert!(!verify_consistency(m as u64, n as u64, &old, &forged, &p));
                }
            }
        }
        // The reference suite's proof sizes: 1→8 has 3 hashes, 6→8 has 3, 2→5 has 2.
        assert_eq!(consistency_proof(1, &l).unwrap().len(), 3);
        assert_eq!(consistency_proof(6, &l).unwrap().len(), 3);
        assert_eq!(consistency_proof(2, &l[..5]).unwrap().len(), 2);
    }
}
