//! The hostile-URL matrix (`tests/hostile-urls.txt`, shared with the browser
//! tests): the relay refuses every URL, and a native node refuses every one
//! that points at the canary even when the relay is told to let it through.
//! The canary, a real server on loopback, must never see a request.

use serde_json::json;
use spareband_tests::customer::enc;
use spareband_tests::{target, TestNode, TestRelay};

const MATRIX: &str = include_str!("../hostile-urls.txt");

/// `(points at the canary, url)` for every case.
fn cases(port: u16) -> Vec<(bool, String)> {
    MATRIX
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix('@') {
            Some(u) => (true, u.trim().replace("{port}", &port.to_string())),
            None => (false, l.replace("{port}", &port.to_string())),
        })
        .collect()
}

/// Allow-list entries that let the relay pass every canary spelling.
fn canary_allow(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "localhost",
        "sub.localhost",
        "0.0.0.0",
        "[::1]",
        "[::]",
        "[::ffff:7f00:1]",
        "[::7f00:1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
    ]
    .iter()
    .map(|h| format!("{h}:{port}"))
    .collect()
}

#[tokio::test]
async fn the_relay_refuses_every_hostile_url_and_the_canary_hears_nothing() {
    let canary = target::Target::start().await;
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let _node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let customer = relay.customer();
    let cases = cases(canary.addr.port());
    assert!(cases.len() >= 60, "the matrix has {} cases", cases.len());
    for (_, url) in &cases {
        let (status, body) = customer.fetch(json!({ "url": url })).await;
        assert_eq!(status, 400, "{url}: {body}");
        let code = body["error"]["code"].as_str().unwrap();
        assert!(
            code == "target_forbidden" || code == "invalid_request",
            "{url}: {body}"
        );
        let res = customer
            .raw("GET", &format!("url={}", enc(url)), None)
            .await;
        assert_eq!(res.status().as_u16(), 400, "raw {url}");
    }
    assert_eq!(canary.hits(), 0);
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn a_native_node_refuses_what_the_relay_lets_through() {
    let canary = target::Target::start().await;
    let target = target::Target::start().await;
    let port = canary.addr.port();
    let mut relay_allow = vec![target.host_port()];
    relay_allow.extend(canary_allow(port));
    let relay = TestRelay::start(&relay_allow).await;
    // The node only knows the real test target.
    let _node = TestNode::start(&relay.base, &[target.host_port()]);
    relay.wait_nodes(1).await;
    let customer = relay.customer();
    for (_, url) in cases(port).iter().filter(|(c, _)| *c) {
        let (status, body) = customer.fetch(json!({ "url": url })).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], "target_forbidden", "{url}: {body}");
    }
    assert_eq!(canary.hits(), 0, "the canary was reached");
    // Nearly every case got past the relay and was refused by the node
    // itself (the ledger records those attempts as refused).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refused_by_node = spareband_ledger::inspect::usage_records(&relay.state().db)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.outcome == spareband_ledger::JobOutcome::Refused)
        .count() as i64;
    assert!(
        refused_by_node >= 24,
        "only {refused_by_node} reached the node"
    );
}
