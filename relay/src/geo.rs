//! Where a peer is: its real address (honouring `X-Forwarded-For` only from
//! trusted proxies), its GeoIP country, and with the City and ASN databases
//! (`geoip_city_db`, `geoip_asn_db`) its city, region and network.

use crate::config::{cidr_contains, parse_cidr, Cidr};
use crate::peer::canonical;
use http::HeaderMap;
use std::net::IpAddr;
use std::path::Path;

/// GeoIP lookups; absent when no database is configured.
pub struct Geo {
    reader: Option<maxminddb::Reader<Vec<u8>>>,
    city: Option<maxminddb::Reader<Vec<u8>>>,
    asn: Option<maxminddb::Reader<Vec<u8>>>,
    trusted: Vec<Cidr>,
}

/// Where within its country an address is, as far as the City and ASN
/// databases say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Area {
    /// City name in English, lower case (what the proxy username and the
    /// API's `city` compare with).
    pub city: Option<String>,
    /// ISO 3166-2 code of the largest subdivision, upper case.
    pub region: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

/// Opens a database, when one is configured.
fn open(db: Option<&Path>) -> Result<Option<maxminddb::Reader<Vec<u8>>>, GeoError> {
    db.map(|p| {
        maxminddb::Reader::open_readfile(p).map_err(|source| GeoError {
            path: p.display().to_string(),
            source,
        })
    })
    .transpose()
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
        Ok(Geo {
            reader: open(db)?,
            city: None,
            asn: None,
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

    /// The same, also reading the City and ASN databases (GeoLite2 or
    /// GeoIP2 formats).
    pub fn with_city_and_asn(
        self,
        city: Option<&Path>,
        asn: Option<&Path>,
    ) -> Result<Self, GeoError> {
        Ok(Geo {
            city: open(city)?,
            asn: open(asn)?,
            ..self
        })
    }

    /// ISO country code of an address, upper case: from the country
    /// database, else from the city database.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let from_country = self.reader.as_ref().and_then(|r| {
            let rec: maxminddb::geoip2::Country = r.lookup(ip).ok()??;
            rec.country?.iso_code.map(|c| c.to_ascii_uppercase())
        });
        from_country.or_else(|| {
            let rec: maxminddb::geoip2::City = self.city.as_ref()?.lookup(ip).ok()??;
            rec.country?.iso_code.map(|c| c.to_ascii_uppercase())
        })
    }

    /// What the City and ASN databases say about an address.
    pub fn area(&self, ip: IpAddr) -> Area {
        let city: Option<maxminddb::geoip2::City> =
            self.city.as_ref().and_then(|r| r.lookup(ip).ok().flatten());
        let asn: Option<maxminddb::geoip2::Asn> =
            self.asn.as_ref().and_then(|r| r.lookup(ip).ok().flatten());
        Area {
            city: city
                .as_ref()
                .and_then(|c| c.city.as_ref()?.names.as_ref()?.get("en").copied())
                .map(str::to_lowercase),
            region: city
                .as_ref()
                .and_then(|c| c.subdivisions.as_ref()?.first()?.iso_code)
                .map(str::to_ascii_uppercase),
            asn: asn.and_then(|a| a.autonomous_system_number),
        }
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

    #[test]
    fn cities_regions_and_networks_come_from_their_databases() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/geoip");
        let geo = Geo::new(None, &[])
            .unwrap()
            .with_city_and_asn(
                Some(&dir.join("GeoLite2-City-Test.mmdb")),
                Some(&dir.join("GeoLite2-ASN-Test.mmdb")),
            )
            .unwrap();
        let place = |ip: &str| geo.area(ip.parse().unwrap());
        assert_eq!(
            geo.country("216.160.83.56".parse().unwrap()).as_deref(),
            Some("US")
        );
        assert_eq!(
            place("216.160.83.56"),
            Area {
                city: Some("milton".into()),
                region: Some("WA".into()),
                asn: Some(209),
            }
        );
        assert_eq!(place("89.160.20.112").city.as_deref(), Some("linköping"));
        assert_eq!(place("81.2.69.142").region.as_deref(), Some("ENG"));
        assert_eq!(place("12.81.92.0").asn, Some(7018));
        assert_eq!(place("127.0.0.1"), Area::default());
        assert_eq!(
            Geo::new(None, &[])
                .unwrap()
                .area("216.160.83.56".parse().unwrap()),
            Area::default()
        );
    }
}
