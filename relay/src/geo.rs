//! Where a peer is: its real address (honouring `X-Forwarded-For` only from
//! trusted proxies) and its GeoIP country.

use crate::config::{cidr_contains, parse_cidr, Cidr};
use http::HeaderMap;
use std::net::IpAddr;
use std::path::Path;

/// GeoIP lookups; absent when no database is configured.
pub struct Geo {
    reader: Option<maxminddb::Reader<Vec<u8>>>,
    trusted: Vec<Cidr>,
}

/// The GeoIP database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open GeoIP database {path}: {source}")]
pub struct GeoError {
    path: String,
    source: maxminddb::MaxMindDbError,
}

impl Geo {
    /// Opens the database (if any) and parses the trusted proxy list (already
    /// validated by the config).
    pub fn new(db: Option<&Path>, trusted_proxies: &[String]) -> Result<Self, GeoError> {
        let reader = match db {
            Some(p) => Some(
                maxminddb::Reader::open_readfile(p).map_err(|source| GeoError {
                    path: p.display().to_string(),
                    source,
                })?,
            ),
            None => None,
        };
        Ok(Geo {
            reader,
            trusted: trusted_proxies
                .iter()
                .filter_map(|s| parse_cidr(s))
                .collect(),
        })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| cidr_contains(n, ip))
    }

    /// The client's address: the socket peer, or, when that peer is a trusted
    /// proxy, the right-most `X-Forwarded-For` entry that is not itself a
    /// trusted proxy (entries further left are client-supplied and unverifiable).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            for part in text.split(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(canonical(ip)),
                    Err(_) => return peer,
                }
            }
        }
        hops.into_iter()
            .rev()
            .find(|ip| !self.is_trusted(*ip))
            .unwrap_or(peer)
    }

    /// ISO country code of an address, upper case.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let reader = self.reader.as_ref()?;
        let rec: maxminddb::geoip2::Country = reader.lookup(ip).ok()??;
        rec.country?.iso_code.map(|c| c.to_ascii_uppercase())
    }
}

/// IPv4-mapped IPv6 peers (from dual-stack sockets) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> std::path::PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/geoip/GeoLite2-Country-Test.mmdb");
        assert!(
            p.exists(),
            "the GeoIP test database is expected at {} (tests/fixtures/geoip)",
            p.display()
        );
        p
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let geo = Geo::new(None, &["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            geo.client_ip(lo, &xff("81.2.69.142")),
            "81.2.69.142".parse::<IpAddr>().unwrap()
        );
        // A client-supplied left part is ignored; the right-most untrusted wins.
        assert_eq!(
            geo.client_ip(lo, &xff("1.1.1.1, 81.2.69.142, 10.1.1.1")),
            "81.2.69.142".parse::<IpAddr>().unwrap()
        );
        assert_eq!(geo.client_ip(other, &xff("81.2.69.142")), other);
        assert_eq!(geo.client_ip(lo, &xff("garbage")), lo);
    }

    #[test]
    fn countries_come_from_the_database() {
        let geo = Geo::new(Some(&fixture()), &[]).unwrap();
        assert_eq!(
            geo.country("81.2.69.142".parse().unwrap()).as_deref(),
            Some("GB")
        );
        assert_eq!(
            geo.country("216.160.83.56".parse().unwrap()).as_deref(),
            Some("US")
        );
        assert_eq!(
            geo.country("89.160.20.112".parse().unwrap()).as_deref(),
            Some("SE")
        );
        assert_eq!(geo.country("127.0.0.1".parse().unwrap()), None);
    }
}
