//! Fuzzes the target policy: `TargetPolicy::default().check(url)` on
//! arbitrary UTF-8 strings (other inputs are skipped).
//!
//! The policy is what keeps a node from being pointed at its owner's machine
//! or LAN, so besides never panicking, every URL it lets through must hold up:
//! the scheme is http or https, there are no credentials, an IP-literal host
//! is public according to `policy::is_public_ip`, a name is not a local one
//! according to `policy::is_local_name` and is not itself an IP address in
//! some spelling (it would then skip the IP check), and the port is one of
//! `policy::DEFAULT_ALLOWED_PORTS`. Because the relay sends the normalised
//! URL (`Target::url`) to the node as text and the node checks it again, that
//! text must pass the policy too and name the same host and port.
//!
//! The same input is also used as an allow-list entry: building a policy
//! from it must not panic, and the policy rebuilt from `allow_list()` must be
//! equal. With no allow list, `allows_host` must refuse every name.
//!
//! The two findings of the first runs (docs/FUZZING.md) are fixed and have
//! unit tests in `protocol/src/policy/tests.rs`; these checks keep them out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spareband_protocol::policy::{is_local_name, is_public_ip, TargetHost, DEFAULT_ALLOWED_PORTS};
use spareband_protocol::TargetPolicy;
use std::net::IpAddr;
use url::{Host, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let policy = TargetPolicy::default();

    assert!(
        !policy.allows_host(input),
        "empty allow list allowed {input:?}"
    );

    if let Ok(target) = policy.check(input) {
        assert!(!target.allow_listed);
        assert!(matches!(target.url.scheme(), "http" | "https"));
        assert!(target.url.username().is_empty() && target.url.password().is_none());
        match &target.host {
            TargetHost::Ip(ip) => assert!(is_public_ip(*ip), "non-public {ip} allowed"),
            TargetHost::Domain(name) => {
                assert!(!is_local_name(name), "local name {name:?} allowed");
                // Finding 2 of the first run: "http://127.0.0.1../" was a name
                // to the URL parser but Domain("127.0.0.1") to the policy.
                assert!(
                    name.parse::<IpAddr>().is_err(),
                    "{input:?}: the name {name:?} is an IP address"
                );
                let reparsed = Url::parse(&format!("http://{name}/")).ok();
                assert!(
                    !matches!(
                        reparsed.as_ref().and_then(|u| u.host()),
                        Some(Host::Ipv4(_) | Host::Ipv6(_))
                    ),
                    "{input:?}: the name {name:?} parses as an IP address"
                );
            }
        }
        assert!(
            DEFAULT_ALLOWED_PORTS.contains(&target.port),
            "port {} allowed",
            target.port
        );

        // What the node receives and checks again.
        let text = target.url.to_string();
        let again = policy
            .check(&text)
            .unwrap_or_else(|e| panic!("{input:?} passed as {text:?}, which is refused: {e}"));
        assert_eq!(
            again.host, target.host,
            "host changed when re-checked: {text:?}"
        );
        assert_eq!(
            again.port, target.port,
            "port changed when re-checked: {text:?}"
        );
        assert_eq!(again.url.scheme(), target.url.scheme());
    }

    if let Ok(allowing) = TargetPolicy::with_allow_list(&[input]) {
        // Finding 1 of the first run: ".:0" was stored with an empty host.
        let rebuilt = TargetPolicy::with_allow_list(&allowing.allow_list())
            .expect("allow_list() output must parse as an allow list");
        assert_eq!(rebuilt, allowing, "allow list does not round-trip");
    }
});
