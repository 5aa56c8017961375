//! A Merkle tree laid out exactly as OpenZeppelin's `StandardMerkleTree` for
//! leaf type `["address", "uint256"]`, so a standard Merkle distributor
//! contract can pay an epoch out:
//!
//! - leaf = keccak256(keccak256(abi.encode(address, amount))), hashed twice
//!   so a leaf can never be mistaken for an inner node;
//! - leaves sorted by hash, placed at the end of a complete binary tree held
//!   in an array, the first leaf last;
//! - an inner node hashes its two children in sorted order.
//!
//! A test checks root and proofs against the `@openzeppelin/merkle-tree` npm
//! package over the same values.

use super::address::Address;
use sha3::{Digest, Keccak256};

/// A 32-byte hash.
pub type Hash = [u8; 32];

fn keccak(data: &[u8]) -> Hash {
    Keccak256::digest(data).into()
}

/// The leaf hash of `(address, amount)`.
pub fn leaf_hash(address: &Address, amount: u128) -> Hash {
    let mut enc = [0u8; 64];
    enc[12..32].copy_from_slice(&address.0);
    enc[48..64].copy_from_slice(&amount.to_be_bytes());
    keccak(&keccak(&enc))
}

fn hash_pair(a: &Hash, b: &Hash) -> Hash {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(lo);
    buf[32..].copy_from_slice(hi);
    keccak(&buf)
}

/// A built tree over `(address, amount)` values.
pub struct MerkleTree {
    tree: Vec<Hash>,
    /// For each value, in the order given, its index in `tree`.
    positions: Vec<usize>,
}

impl MerkleTree {
    /// Builds the tree. `None` for no values (OpenZeppelin refuses an empty
    /// tree too).
    pub fn build(values: &[(Address, u128)]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut leaves: Vec<(Hash, usize)> = values
            .iter()
            .enumerate()
            .map(|(i, (a, v))| (leaf_hash(a, *v), i))
            .collect();
        leaves.sort();
        let n = leaves.len();
        let mut tree = vec![[0u8; 32]; 2 * n - 1];
        let mut positions = vec![0usize; n];
        for (i, (h, value_index)) in leaves.iter().enumerate() {
            let at = tree.len() - 1 - i;
            tree[at] = *h;
            positions[*value_index] = at;
        }
        for i in (0..tree.len() - n).rev() {
            tree[i] = hash_pair(&tree[2 * i + 1], &tree[2 * i + 2]);
        }
        Some(MerkleTree { tree, positions })
    }

    /// The root.
    pub fn root(&self) -> Hash {
        self.tree[0]
    }

    /// The proof for the value at `index` (in the order given to `build`).
    pub fn proof(&self, index: usize) -> Vec<Hash> {
        let mut i = self.positions[index];
        let mut proof = Vec::new();
        while i > 0 {
            let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
            proof.push(self.tree[sibling]);
            i = (i - 1) / 2;
        }
        proof
    }
}

/// Checks a proof as a distributor contract does.
pub fn verify(root: &Hash, leaf: &Hash, proof: &[Hash]) -> bool {
    proof.iter().fold(*leaf, |acc, p| hash_pair(&acc, p)) == *root
}

/// `0x`-prefixed lowercase hex, as OpenZeppelin prints hashes.
pub fn hex32(h: &Hash) -> String {
    format!("0x{}", hex::encode(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(b: u8) -> Address {
        Address([b; 20])
    }

    #[test]
    fn every_proof_verifies_and_a_wrong_amount_does_not() {
        for n in 1..=9u8 {
            let values: Vec<_> = (0..n).map(|i| (addr(i + 1), 1000 + i as u128)).collect();
            let t = MerkleTree::build(&values).unwrap();
            for (i, (a, v)) in values.iter().enumerate() {
                assert!(
                    verify(&t.root(), &leaf_hash(a, *v), &t.proof(i)),
                    "n={n} i={i}"
                );
                assert!(!verify(&t.root(), &leaf_hash(a, *v + 1), &t.proof(i)));
            }
        }
        assert!(MerkleTree::build(&[]).is_none());
    }

    #[test]
    fn the_root_does_not_depend_on_input_order() {
        let a: Vec<_> = (1..=5u8).map(|i| (addr(i), i as u128)).collect();
        let mut b = a.clone();
        b.reverse();
        assert_eq!(
            MerkleTree::build(&a).unwrap().root(),
            MerkleTree::build(&b).unwrap().root()
        );
    }
}
