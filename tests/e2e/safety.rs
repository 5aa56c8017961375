//! The target policy end to end: forbidden targets and redirects never reach
//! a canary server on loopback, at the relay or at the node.

use serde_json::json;
use spareband_tests::customer::{body_of, enc};
use spareband_tests::target::Target;
use spareband_tests::{TestNode, TestRelay};

#[tokio::test]
async fn forbidden_targets_are_refused_by_the_relay_and_the_canary_sees_nothing() {
    let (_target, relay, _node) = spareband_tests::one_node().await;
    let canary = Target::start().await;
    let c = relay.customer();
    let port = canary.addr.port();
    for url in [
        canary.url("/hello"),
        format!("http://localhost:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://10.0.0.1/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let (s, v) = c.fetch(json!({"url": url})).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("target_forbidden")),
            "{url}: {v}"
        );
        let res = c.raw("GET", &format!("url={}", enc(&url)), None).await;
        assert_eq!(res.status(), 400, "{url}");
        assert!(res.headers()["proxy-status"]
            .to_str()
            .unwrap()
            .contains("destination_ip_prohibited"));
    }
    assert_eq!(canary.hits(), 0);
}

#[tokio::test]
async fn the_node_enforces_the_policy_even_when_the_relay_lets_a_target_through() {
    let target = Target::start().await;
    // The relay allow-lists the target, the node does not: the node refuses.
    let relay = TestRelay::start(&[target.host_port()]).await;
    let _node = TestNode::start(&relay.base, &[]);
    relay.wait_nodes(1).await;
    let (s, v) = relay
        .customer()
        .fetch(json!({"url": target.url("/hello")}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("target_forbidden")),
        "{v}"
    );
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn redirects_to_forbidden_targets_are_not_followed() {
    let (target, relay, _node) = spareband_tests::one_node().await;
    let canary = Target::start().await;
    let c = relay.customer();
    let port = canary.addr.port();
    for (to, status) in [
        (canary.url("/hello"), 302),
        (format!("http://localhost:{port}/hello"), 301),
        (format!("http://127.0.0.1:{port}/hello"), 307),
        (format!("http://[::ffff:127.0.0.1]:{port}/"), 308),
        ("http://192.168.1.1/".to_string(), 303),
        ("ftp://example.com/".to_string(), 302),
    ] {
        let url = target.url(&format!("/redirect?status={status}&to={}", enc(&to)));
        let (s, v) = c.fetch(json!({"url": url})).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("target_forbidden")),
            "{to}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("redirected"),
            "{v}"
        );
    }
    assert_eq!(canary.hits(), 0);

    // A redirect to an allowed target is followed, and the customer's cookie
    // does not follow it to another origin.
    let other = Target::start().await;
    let allow2 = vec![target.host_port(), other.host_port()];
    let relay2 = TestRelay::start(&allow2).await;
    let _node2 = TestNode::start(&relay2.base, &allow2);
    relay2.wait_nodes(1).await;
    let url = target.url(&format!("/redirect?to={}", enc(&other.url("/cookie"))));
    let (s, v) = relay2
        .customer()
        .fetch(json!({"url": url, "headers": {"cookie": "secret=1"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(body_of(&v), b"cookie:");
    assert_eq!(other.hits(), 1);
}
