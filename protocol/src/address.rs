//! EVM payout addresses, validated with their EIP-55 checksum, so a typo in
//! one character is caught before any reward is paid to nobody. Shared by
//! the relay (which stores them) and the nodes (which check them on entry).

use sha3::{Digest, Keccak256};
use std::fmt;

/// A 20-byte EVM address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not `0x` and 40 hex digits.
    #[error("a payout address is 0x followed by 40 hex digits")]
    Format,
    /// Mixed case that does not match the EIP-55 checksum.
    #[error("the address checksum (EIP-55 capitalisation) is wrong: check for a typo")]
    Checksum,
}

impl Address {
    /// Parses an address. All-lower or all-upper hex carries no checksum and
    /// is accepted; mixed case must match EIP-55.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let hex_part = s.strip_prefix("0x").ok_or(AddressError::Format)?;
        if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AddressError::Format);
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| AddressError::Format)?;
        let addr = Address(bytes);
        let lower = hex_part.bytes().all(|b| !b.is_ascii_uppercase());
        let upper = hex_part.bytes().all(|b| !b.is_ascii_lowercase());
        if !lower && !upper && addr.to_checksum() != s {
            return Err(AddressError::Checksum);
        }
        Ok(addr)
    }

    /// The EIP-55 mixed-case form.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if c.is_ascii_alphabetic() && nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_test_vectors() {
        // From EIP-55 itself.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let parsed = Address::parse(a).unwrap();
            assert_eq!(parsed.to_checksum(), a);
            assert_eq!(
                Address::parse(&a.to_ascii_lowercase().replace("0X", "0x")).unwrap(),
                parsed
            );
        }
    }

    #[test]
    fn a_wrong_checksum_or_format_is_refused() {
        assert_eq!(
            Address::parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            Err(AddressError::Checksum)
        );
        assert_eq!(
            Address::parse("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(AddressError::Format)
        );
        assert_eq!(Address::parse("0x1234"), Err(AddressError::Format));
        assert_eq!(
            Address::parse("0xzzAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(AddressError::Format)
        );
    }
}
