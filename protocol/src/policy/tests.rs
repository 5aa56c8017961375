//! The target policy: the hostile-URL matrix, ports, allow lists and
//! redirect hops.

use super::*;

fn public() -> TargetPolicy {
    TargetPolicy::public_only()
}

/// The hostile-URL matrix, shared with the browser suite, which runs the
/// same file through Chromium's and Firefox's own `URL` (issue 16).
const MATRIX: &str = include_str!("hostile-urls.json");

fn matrix(part: &str) -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_str(MATRIX).unwrap();
    doc[part].as_array().unwrap().clone()
}

#[test]
fn the_hostile_url_matrix_holds_through_the_url_crate() {
    for case in matrix("pass") {
        let url = case["url"].as_str().unwrap();
        let t = public()
            .check(url)
            .unwrap_or_else(|e| panic!("{url:?} was refused: {e}"));
        assert_eq!(t.url.as_str(), case["href"].as_str().unwrap(), "{url:?}");
    }
    for case in matrix("refuse").into_iter().chain(matrix("spellings")) {
        let url = case["url"].as_str().unwrap();
        match public().check(url) {
            Ok(t) => panic!("{url:?} passed as {}", t.url),
            Err(e) => assert_eq!(e.kind(), case["why"].as_str().unwrap(), "{url:?}: {e}"),
        }
    }
}

#[test]
fn the_matrix_spells_its_addresses_every_way_a_browser_reads_them() {
    let listed: Vec<String> = matrix("spellings")
        .iter()
        .map(|c| c["url"].as_str().unwrap().to_string())
        .collect();
    let mut expected = Vec::new();
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
    ] {
        for host in properties::spellings(ip.parse().unwrap()) {
            for scheme in ["http", "https"] {
                expected.push(format!("{scheme}://{host}/x"));
            }
        }
    }
    assert_eq!(listed, expected);
}

/// A parser that gives the policy the host exactly as written, as a careless
/// or nonconforming one might: no dotted-decimal rewriting, no trailing dot
/// dropped. Only the policy's own rules stand between these hosts and a
/// fetch.
#[derive(Debug)]
struct Verbatim(String, String);

impl WebUrl for Verbatim {
    fn parse(host: &str) -> Result<Self, String> {
        Ok(Verbatim(format!("https://{host}/"), host.to_string()))
    }
    fn href(&self) -> &str {
        &self.0
    }
    fn scheme(&self) -> &str {
        "https"
    }
    fn has_credentials(&self) -> bool {
        false
    }
    fn host_str(&self) -> Option<&str> {
        Some(&self.1)
    }
    fn port(&self) -> Option<u16> {
        None
    }
    fn path(&self) -> &str {
        "/"
    }
}

/// Checked once with the host typed from the parser's string as given and
/// no "ends in a number" rule: "127.0.0.1." passed as a public name.
#[test]
fn hosts_shaped_like_addresses_never_pass_as_names_whatever_the_parser() {
    for host in [
        "127.0.0.1.",
        "10.0.0.1.",
        "0x7f.1",
        "printer.0x10",
        "foo.123",
        "[zz.1]",
        "[::1",
        "[fe80::1%eth0]",
    ] {
        let verdict = public().check_in::<Verbatim>(host);
        assert!(verdict.is_err(), "{host} passed: {verdict:?}");
    }
    let t = public().check_in::<Verbatim>("Example.com.").unwrap();
    assert_eq!(t.host, TargetHost::Domain("example.com".into()));
    assert!(public().check_in::<Verbatim>("a0x1.example").is_ok());
}

#[test]
fn refusals_say_why() {
    assert_eq!(
        public().check("http://10.1.2.3/"),
        Err(PolicyError::Address("10.1.2.3".parse().unwrap()))
    );
    assert_eq!(
        public().check("http://127.1/"),
        Err(PolicyError::Address("127.0.0.1".parse().unwrap()))
    );
    assert_eq!(
        public().check("gopher://x.example/"),
        Err(PolicyError::Scheme("gopher".into()))
    );
    assert_eq!(
        public().check("http://a.localhost/"),
        Err(PolicyError::LocalName("a.localhost".into()))
    );
    assert_eq!(
        public().check("http://example.com:25/"),
        Err(PolicyError::Port(25, "80, 443, 8080, 8443".into()))
    );
    let long = format!("http://example.com/{}", "a".repeat(MAX_URL_BYTES));
    assert_eq!(public().check(&long), Err(PolicyError::TooLong));
}

#[test]
fn the_allow_list_opens_exactly_its_host_and_port() {
    let p =
        TargetPolicy::with_allow_list(&["127.0.0.1:8080", "[::1]:9000", "LocalHost:3000"]).unwrap();
    assert!(p.check("http://127.0.0.1:8080/x").unwrap().allow_listed);
    assert!(p.check("http://[::1]:9000/").unwrap().allow_listed);
    assert!(p.check("http://localhost:3000/").unwrap().allow_listed);
    assert!(p.check("http://127.0.0.1:8081/").is_err());
    assert!(p.check("http://127.0.0.2:8080/").is_err());
    assert!(p.check("http://localhost:3001/").is_err());
    // Another spelling of an allow-listed address is the same address.
    assert!(p.check("http://127.0.0.1:8080/").is_ok());
    assert!(p.check("http://2130706433:8080/").unwrap().allow_listed);
}

#[test]
fn bad_allow_entries_are_refused() {
    for e in ["127.0.0.1", "http://x:1", "a@b:1", "x:notaport"] {
        assert!(
            TargetPolicy::with_allow_list(&[e]).is_err(),
            "{e} should be refused"
        );
    }
}

#[test]
fn resolved_addresses_are_checked_unless_allow_listed() {
    let t = public().check("http://example.com/").unwrap();
    assert!(public()
        .check_resolved(&t, "93.184.216.34".parse().unwrap())
        .is_ok());
    assert!(public()
        .check_resolved(&t, "192.168.0.10".parse().unwrap())
        .is_err());
    let p = TargetPolicy::with_allow_list(&["localhost:3000"]).unwrap();
    let t = p.check("http://localhost:3000/").unwrap();
    assert!(p.check_resolved(&t, "127.0.0.1".parse().unwrap()).is_ok());
}

#[test]
fn ip_classification() {
    for ip in ["8.8.8.8", "1.1.1.1", "81.2.69.142", "2001:4860:4860::8888"] {
        assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "198.18.0.1",
        "192.0.2.1",
        "203.0.113.9",
        "240.0.0.1",
        "2001:db8::1",
        "2001::1",
        "::ffff:8.8.8.8",
    ] {
        assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
    }
}

mod properties {
    //! The fuzz targets' properties (see docs/FUZZING.md), as proptests that
    //! run on every `cargo test`.
    use super::super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// Addresses in the blocks no node may reach.
    fn private_v4() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            (0u32..1 << 24).prop_map(|x| Ipv4Addr::from((10 << 24) | x)),
            (0u32..1 << 24).prop_map(|x| Ipv4Addr::from((127 << 24) | x)),
            (0u32..1 << 20).prop_map(|x| Ipv4Addr::from((172 << 24) | (16 << 16) | x)),
            (0u32..1 << 16).prop_map(|x| Ipv4Addr::from((192 << 24) | (168 << 16) | x)),
            (0u32..1 << 16).prop_map(|x| Ipv4Addr::from((169 << 24) | (254 << 16) | x)),
            (0u32..1 << 22).prop_map(|x| Ipv4Addr::from((100 << 24) | (64 << 16) | x)),
        ]
    }

    /// The ways a browser's URL parser accepts one IPv4 address.
    pub(super) fn spellings(ip: Ipv4Addr) -> Vec<String> {
        let n = u32::from(ip);
        let [a, b, c, d] = ip.octets();
        vec![
            ip.to_string(),
            n.to_string(),
            format!("0x{n:x}"),
            format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
            format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
            format!(
                "{a}.{}",
                (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)
            ),
            format!("{a}.{b}.{}", (u32::from(c) << 8) | u32::from(d)),
            format!("{ip}."),
            format!("{ip}.."),
            format!("{ip}...:8080"),
            format!("[::ffff:{ip}]"),
            format!("[64:ff9b::{ip}]"),
            format!("[2002:{:x}:{:x}::1]", n >> 16, n & 0xffff),
        ]
    }

    proptest! {
        #[test]
        fn no_spelling_of_a_private_address_passes(ip in private_v4(), https in any::<bool>()) {
            let policy = TargetPolicy::public_only();
            for host in spellings(ip) {
                let scheme = if https { "https" } else { "http" };
                let url = format!("{scheme}://{host}/x");
                prop_assert!(policy.check(&url).is_err(), "{} passed", url);
            }
        }

        #[test]
        fn whatever_passes_is_public_on_an_allowed_port(s in "\\PC{0,80}") {
            let policy = TargetPolicy::public_only();
            for candidate in [s.clone(), format!("http://{s}"), format!("https://{s}/")] {
                if let Ok(t) = policy.check(&candidate) {
                    prop_assert!(matches!(t.url.scheme(), "http" | "https"));
                    prop_assert!(DEFAULT_ALLOWED_PORTS.contains(&t.port));
                    prop_assert!(t.url.username().is_empty() && t.url.password().is_none());
                    match &t.host {
                        TargetHost::Ip(ip) => prop_assert!(is_public_ip(*ip), "{}", candidate),
                        TargetHost::Domain(d) => prop_assert!(!is_local_name(d), "{}", candidate),
                    }
                }
            }
        }
    }
}

#[test]
fn block_list_entries_cover_their_domain_and_below_only() {
    let list: Vec<String> = ["*.Bank.example.", "shop.test"]
        .iter()
        .map(|d| normalize_domain(d).unwrap())
        .collect();
    assert_eq!(list, ["bank.example", "shop.test"]);
    assert_eq!(
        covering_domain(&list, "www.bank.example"),
        Some("bank.example")
    );
    assert_eq!(
        covering_domain(&list, "BANK.example."),
        Some("bank.example")
    );
    assert_eq!(covering_domain(&list, "notbank.example"), None);
    assert_eq!(covering_domain(&list, "bank.example.org"), None);
    for bad in ["", "a b", "x/y", "http://x.com", "a..b", &"a".repeat(64)] {
        assert_eq!(normalize_domain(bad), None, "{bad}");
    }
}

#[test]
fn a_relay_may_narrow_the_ports_but_never_widen_them() {
    let p = TargetPolicy::public_only().with_ports(&[443]).unwrap();
    assert!(p.check("https://example.com/").is_ok());
    let e = p.check("http://example.com/").unwrap_err();
    assert_eq!(e.to_string(), "port 80 is not allowed (allowed: 443)");
    assert!(TargetPolicy::public_only().with_ports(&[22]).is_err());
    assert!(TargetPolicy::public_only()
        .check("http://example.com:22/")
        .is_err());
}

#[test]
fn names_with_empty_labels_are_refused_and_never_pass_as_names() {
    let p = TargetPolicy::public_only();
    for url in [
        "http://127.0.0.1../",
        "http://127.1../",
        "http://0x7f.1../",
        "http://10.0.0.1.../x",
        "http://192.168.1.1..:8080/",
        "http://example..com/",
        "http:0.0..",
    ] {
        assert!(p.check(url).is_err(), "{url} passed");
    }
    // One trailing dot is a fully qualified name, and still checked.
    assert!(p.check("http://127.0.0.1./").is_err());
    assert!(p.check("https://example.com./").is_ok());
}

#[test]
fn allow_list_entries_need_a_real_host_and_an_explicit_port() {
    for bad in [".:0", ".:8080", "..0....:5", "localhost", "localhost.:"] {
        assert!(
            TargetPolicy::with_allow_list(&[bad]).is_err(),
            "{bad} was accepted"
        );
    }
    let p = TargetPolicy::with_allow_list(&["localhost:80", "LOCALHOST.:8000"]).unwrap();
    assert_eq!(p.allow_list(), ["localhost:80", "localhost:8000"]);
    assert!(p.check("http://localhost/").unwrap().allow_listed);
    assert!(p.check("http://.:8080/").is_err());
}

#[test]
fn browser_nodes_take_only_https_on_443_unless_allow_listed() {
    let browser = TargetPolicy::public_only().for_browser();
    assert!(browser.check("https://example.com/").is_ok());
    assert!(browser.check("https://example.com:443/x").is_ok());
    assert!(browser.check("https://example.com./").is_ok());
    for url in [
        "http://example.com/",
        "https://example.com:8443/",
        "http://example.com:443/",
        "https://fritz.box:8080/",
    ] {
        assert!(
            matches!(browser.check(url), Err(PolicyError::BrowserNeedsHttps(_))),
            "{url}"
        );
    }
    // The rule comes after the address and name rules, which still speak first.
    assert!(matches!(
        browser.check("https://localhost./"),
        Err(PolicyError::LocalName(_))
    ));
    let dev = TargetPolicy::with_allow_list(&["127.0.0.1:8000"])
        .unwrap()
        .for_browser();
    assert!(dev.check("http://127.0.0.1:8000/").is_ok());
    // The same rule decides at the relay which nodes may take a job.
    let t = TargetPolicy::public_only()
        .check("http://example.com/")
        .unwrap();
    assert!(!t.fits_browser());
}
