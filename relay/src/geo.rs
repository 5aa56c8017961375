//! Where a peer is: its real address (honouring `X-Forwarded-For` only from
//! trusted proxies) and its GeoIP country.

use crate::config::{cidr_contains, parse_cidr, Cidr};
use crate::peer::canonical;
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

    /// Whether `ip` is one of the `trusted_proxies`.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| cidr_contains(n, ip))
    }

    /// The client's address: the socket peer, or, when that peer is a trusted
    /// proxy, the right-most `X-Forwarded-For` entry that is not itself a
    /// trusted proxy (entries further left are client-supplied and
    /// unverifiable). Walking from the right stops at the first entry that
    /// is not an address and takes the nearest trusted hop: a client that
    /// sends garbage on the left cannot make itself the proxy (and so lock
    /// everyone behind it out of the admin sign-in).
    ///
    /// `Forwarded` (RFC 7239) is not read: a proxy that sets one of the two
    /// headers passes the other through from the client untouched, so
    /// believing both would let a client pick its own address.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut nearest = canonical(peer);
        if !self.is_trusted(nearest) {
            return nearest;
        }
        let values: Vec<&str> = match headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str())
            .collect()
        {
            Ok(v) => v,
            Err(_) => return nearest,
        };
        for part in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let part = part.trim();
            let Some(ip) = part
                .parse::<IpAddr>()
                .ok()
                .or_else(|| part.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
            else {
                return nearest;
            };
            nearest = canonical(ip);
            if !self.is_trusted(nearest) {
                return nearest;
            }
        }
        nearest
    }

    /// ISO country code of an address, upper case.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let reader = self.reader.as_ref()?;
        let rec: maxminddb::geoip2::Country = reader.lookup(ip).ok()??;
        rec.country?.iso_code.map(|c| c.to_ascii_uppercase())
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
        // Garbage on the client's side of the list does not make the proxy
        // the client.
        assert_eq!(
            geo.client_ip(lo, &xff("garbage, 81.2.69.142")),
            "81.2.69.142".parse::<IpAddr>().unwrap()
        );
        // A client inside the trusted range is the left-most trusted hop.
        assert_eq!(
            geo.client_ip(lo, &xff("10.9.9.9, 10.1.1.1")),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
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
