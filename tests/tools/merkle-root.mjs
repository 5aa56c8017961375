// The Merkle root OpenZeppelin's StandardMerkleTree gives an epoch's
// payouts, for the Rust end-to-end tests to compare with the relay's.
// Takes `{"values": [[address, amount], ...], "proofs": [[hex, ...], ...]}`
// as its one argument, prints the root, and exits non-zero when a proof
// does not verify against it.
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

const types = ['address', 'uint256'];
const { values, proofs } = JSON.parse(process.argv[2]);
const tree = StandardMerkleTree.of(values, types);
values.forEach((v, i) => {
  if (!StandardMerkleTree.verify(tree.root, types, v, proofs[i])) {
    console.error(`the proof of ${v[0]} does not verify`);
    process.exit(1);
  }
});
console.log(tree.root);
