//! Reward arithmetic, in integers only. Amounts are token base units
//! (18 decimals, as an ERC-20), held in `u128`.
//!
//! Rule: an address earns `floor(bytes × reward_per_gib / 2^30)` for the
//! delivered bytes of all its nodes in the epoch. Rounding is down, per
//! address, once per epoch; the fractions left over are not paid, so the sum
//! of payouts never exceeds what the epoch's bytes earn.

/// Bytes in a GiB.
pub const GIB: u128 = 1 << 30;

/// What `bytes` earn at `reward_per_gib`, rounded down; `None` on overflow
/// (beyond any real epoch: 2^128 base units).
pub fn reward(bytes: u64, reward_per_gib: u128) -> Option<u128> {
    let bytes = bytes as u128;
    // (bytes × rate) / 2^30 without overflowing the product: split the rate.
    let whole = reward_per_gib / GIB;
    let part = reward_per_gib % GIB;
    bytes
        .checked_mul(whole)?
        .checked_add(bytes.checked_mul(part)? / GIB)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let token = 10u128.pow(18);
        assert_eq!(reward(1 << 30, token), Some(token));
        assert_eq!(reward(1 << 29, token), Some(token / 2));
        assert_eq!(reward(1, 3), Some(0));
        assert_eq!(reward(0, token), Some(0));
    }

    proptest! {
        #[test]
        fn deterministic_exact_and_never_more_than_the_total_earns(
            parts in proptest::collection::vec(0u64..(1 << 40), 1..20),
            rate in 0u128..(1u128 << 80),
        ) {
            let total: u64 = parts.iter().sum();
            let paid: u128 = parts.iter().map(|b| reward(*b, rate).unwrap()).sum();
            let earned = reward(total, rate).unwrap();
            prop_assert!(paid <= earned);
            // Each address loses less than one base unit to rounding.
            prop_assert!(earned - paid < parts.len() as u128);
            for b in &parts {
                // Here b × rate < 2^120 fits: compare with the plain formula.
                prop_assert_eq!(reward(*b, rate), Some(*b as u128 * rate / GIB));
            }
        }
    }
}
