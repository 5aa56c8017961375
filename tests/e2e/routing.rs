//! Routing: many jobs over several nodes, country routing through a trusted
//! proxy, and sticky sessions.

use futures_util::future::join_all;
use serde_json::json;
use spareband_tests::customer::{body_of, enc};
use spareband_tests::target::Target;
use spareband_tests::{geoip_fixture, pattern, ForwardingProxy, TestNode, TestRelay};
use std::collections::HashMap;

#[tokio::test]
async fn two_hundred_concurrent_requests_over_three_nodes_are_all_correct() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    // Small concurrency per node, so jobs must queue for free slots.
    let nodes: Vec<TestNode> = (0..3)
        .map(|_| TestNode::start_with(&relay.base, &allow, |c| c.max_concurrency = 16))
        .collect();
    relay.wait_nodes(3).await;
    let c = relay.customer();
    let calls = (0..200u64).map(|i| {
        let c = c.clone();
        let url = target.url(&format!("/bytes?n={}&seed={i}", 1000 + i * 37));
        async move { (i, c.fetch(json!({"url": url})).await) }
    });
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for (i, (status, v)) in join_all(calls).await {
        assert_eq!(status, 200, "request {i}: {v}");
        assert_eq!(
            body_of(&v),
            pattern(1000 + i as usize * 37, i),
            "request {i} body"
        );
        *per_node
            .entry(v["node"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_node.values().sum::<usize>(), 200);
    for n in &nodes {
        assert!(
            per_node.get(&n.id.to_string()).copied().unwrap_or(0) > 0,
            "node {} served nothing: {per_node:?}",
            n.id
        );
    }
}

#[tokio::test]
async fn country_routing_uses_geoip_of_addresses_forwarded_by_a_trusted_proxy() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let proxy = ForwardingProxy::bind().await;
    let proxy_url = proxy.url();
    let relay = TestRelay::start_with(&allow, |c| {
        c.geoip_db = Some(geoip_fixture());
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.public_url = Some(proxy_url.clone());
    })
    .await;
    let countries = [
        ("GB", "81.2.69.142"),
        ("US", "216.160.83.56"),
        ("SE", "89.160.20.112"),
    ];
    let ips: Vec<&str> = countries.iter().map(|(_, ip)| *ip).collect();
    proxy.forward(relay.relay.as_ref().unwrap().addr, &ips);
    let mut ids = HashMap::new();
    let mut nodes = Vec::new();
    for (country, _) in countries {
        // One at a time: the proxy hands out the addresses in connection order.
        let node = TestNode::start(&proxy_url, &allow);
        ids.insert(country, node.id.to_string());
        nodes.push(node);
        relay.wait_nodes(nodes.len()).await;
    }
    relay.wait_nodes(3).await;
    let c = relay.customer();
    for country in ["GB", "US", "SE", "gb"] {
        for _ in 0..3 {
            let (s, v) = c
                .fetch(json!({"url": target.url("/hello"), "country": country}))
                .await;
            assert_eq!(s, 200, "{country}: {v}");
            assert_eq!(v["node"], ids[country.to_uppercase().as_str()], "{country}");
        }
    }
    let (s, v) = c
        .fetch(json!({"url": target.url("/hello"), "country": "JP"}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("no_node_available"))
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("JP"));
}

/// City, region and AS number targeting with the GeoLite2 City and ASN
/// test databases, nodes placed at their test addresses through a trusted
/// proxy; through the JSON API, the raw API and the proxy port's username.
/// A filter no node matches is named in the 503. Checked once with the
/// area left out of the pick (`in_area` always true): the city of Milton
/// was served by another node.
#[tokio::test]
async fn city_region_and_network_targeting_pick_the_node_there() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let forwarder = ForwardingProxy::bind().await;
    let forwarder_url = forwarder.url();
    let relay = TestRelay::start_with(&allow, |c| {
        c.geoip_db = Some(geoip_fixture());
        c.geoip_city_db = Some(spareband_tests::geoip_test_db("City"));
        c.geoip_asn_db = Some(spareband_tests::geoip_test_db("ASN"));
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.public_url = Some(forwarder_url.clone());
    })
    .await;
    // Milton (US, WA, AS209), Linköping (SE, E, AS29518), London and
    // Boxford (GB, ENG, no AS in the test data).
    let places = [
        "216.160.83.56",
        "89.160.20.112",
        "81.2.69.142",
        "2.125.160.216",
    ];
    forwarder.forward(relay.relay.as_ref().unwrap().addr, &places);
    let mut ids = Vec::new();
    let mut nodes = Vec::new();
    for _ in places {
        let node = TestNode::start(&forwarder_url, &allow);
        ids.push(node.id.to_string());
        nodes.push(node);
        relay.wait_nodes(nodes.len()).await;
    }
    let (milton, linkoping, london, boxford) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let c = relay.customer();
    let url = target.url("/hello");
    for (ask, node) in [
        (json!({"url": url, "city": "Milton"}), milton),
        (json!({"url": url, "asn": 29518}), linkoping),
        (
            json!({"url": url, "region": "eng", "city": "boxford"}),
            boxford,
        ),
        (
            json!({"url": url, "country": "GB", "city": "london"}),
            london,
        ),
        (json!({"url": url, "region": "WA", "asn": 209}), milton),
    ] {
        for _ in 0..3 {
            let (s, v) = c.fetch(ask.clone()).await;
            assert_eq!(s, 200, "{ask}: {v}");
            assert_eq!(&v["node"], node, "{ask}");
        }
    }
    // The raw API, a city in another script's letters.
    let res = c
        .raw(
            "GET",
            &format!("url={}&city=LINK%C3%96PING", enc(&url)),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-spareband-node"].to_str().unwrap(),
        linkoping
    );
    // The proxy port.
    let proxy = relay.proxy_url().replacen(
        "http://",
        &format!("http://user-region-eng-city-london:{}@", relay.key),
        1,
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "--noproxy",
                "",
                "-x",
                &proxy,
                "-o",
                "/dev/null",
                "-D",
                "-",
                &url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("x-spareband-node: {london}")),
        "{head}"
    );
    // What no node matches is named.
    for (ask, named) in [
        (
            json!({"url": target.url("/hello"), "city": "paris"}),
            "city 'paris'",
        ),
        (
            json!({"url": target.url("/hello"), "country": "GB", "asn": 209}),
            "AS 209",
        ),
        (
            json!({"url": target.url("/hello"), "region": "CA"}),
            "region 'CA'",
        ),
    ] {
        let (s, v) = c.fetch(ask.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (503, Some("no_node_available")),
            "{ask}"
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{ask}: {message}");
    }
    let (s, v) = c
        .fetch(json!({"url": target.url("/hello"), "city": "a/b"}))
        .await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn forwarded_addresses_from_untrusted_peers_are_ignored() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    // No trusted proxies: the header is the node's own claim and is ignored.
    let proxy = ForwardingProxy::bind().await;
    let proxy_url = proxy.url();
    let relay = TestRelay::start_with(&allow, |c| {
        c.geoip_db = Some(geoip_fixture());
        c.public_url = Some(proxy_url.clone());
    })
    .await;
    proxy.forward(relay.relay.as_ref().unwrap().addr, &["81.2.69.142"]);
    let _node = TestNode::start(&proxy_url, &allow);
    relay.wait_nodes(1).await;
    let (s, v) = relay
        .customer()
        .fetch(json!({"url": target.url("/hello"), "country": "GB"}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("no_node_available"))
    );
}

#[tokio::test]
async fn sessions_stick_to_one_node_and_move_when_it_leaves() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let mut nodes: Vec<TestNode> = (0..3)
        .map(|_| TestNode::start(&relay.base, &allow))
        .collect();
    relay.wait_nodes(3).await;
    let c = relay.customer();
    let fetch = |session: &'static str| {
        let c = c.clone();
        let url = target.url("/hello");
        async move {
            let (s, v) = c.fetch(json!({"url": url, "session": session})).await;
            assert_eq!(s, 200, "{v}");
            v["node"].as_str().unwrap().to_string()
        }
    };
    let pinned = fetch("alpha").await;
    for _ in 0..10 {
        assert_eq!(fetch("alpha").await, pinned);
    }
    // Without a session, jobs spread over the nodes.
    let mut spread = std::collections::HashSet::new();
    for _ in 0..30 {
        let (_, v) = c.fetch(json!({"url": target.url("/hello")})).await;
        spread.insert(v["node"].as_str().unwrap().to_string());
    }
    assert!(
        spread.len() > 1,
        "without a session all jobs went to one node"
    );

    let idx = nodes
        .iter()
        .position(|n| n.id.to_string() == pinned)
        .unwrap();
    nodes[idx].kill();
    relay.wait_nodes(2).await;
    let repinned = fetch("alpha").await;
    assert_ne!(repinned, pinned);
    for _ in 0..10 {
        assert_eq!(fetch("alpha").await, repinned);
    }
}
