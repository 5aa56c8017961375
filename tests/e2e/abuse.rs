//! Abuse resistance at the relay, over real sockets: per-key rate,
//! concurrency and monthly quota, the operator's deny list, and the relay's
//! own DNS check. Refused jobs never reach a node or a target.

use serde_json::json;
use spareband_tests::{target, TestNode, TestRelay};
use std::time::Duration;

#[tokio::test]
async fn a_key_over_its_rate_or_concurrency_gets_429_with_retry_after() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start_with(&allow, |c| {
        c.key_rate_per_sec = 1;
        c.key_burst = 3;
        c.key_max_concurrent = 1;
    })
    .await;
    let _node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let customer = relay.customer();

    // One job stalls in flight: a second one is refused for concurrency.
    let stalled = {
        let c = customer.clone();
        let url = target.url("/stall");
        tokio::spawn(async move { c.fetch(json!({"url": url, "timeout_ms": 3000})).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = customer.fetch(json!({"url": target.url("/hello")})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("in flight"));
    let _ = stalled.await;

    // After the stall the bucket is full again (3): three go, the fourth waits.
    for _ in 0..3 {
        let (status, body) = customer.fetch(json!({"url": target.url("/hello")})).await;
        assert_eq!(status, 200, "{body}");
    }
    let hits = target.hits();
    let res = customer
        .raw(
            "GET",
            &format!(
                "url={}",
                spareband_tests::customer::enc(&target.url("/hello"))
            ),
            None,
        )
        .await;
    assert_eq!(res.status().as_u16(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(res.headers()["proxy-status"]
        .to_str()
        .unwrap()
        .contains("http_request_denied"));
    // The refused job never reached the target.
    assert_eq!(target.hits(), hits);
}

#[tokio::test]
async fn a_key_over_its_monthly_quota_gets_403_quota_exceeded() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start_with(&allow, |c| c.monthly_quota_bytes = 10_000).await;
    let _node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let customer = relay.customer();
    let (status, _) = customer
        .fetch(json!({"url": target.url("/bytes?n=20000&seed=1")}))
        .await;
    assert_eq!(status, 200, "under the quota when it starts");
    // Once the ledger has the bytes and the quota is read again, refused.
    let deadline = tokio::time::Instant::now()
        + spareband_relay::keylimits::QUOTA_REFRESH
        + Duration::from_secs(10);
    let body = loop {
        let (status, body) = customer.fetch(json!({"url": target.url("/hello")})).await;
        if status == 403 {
            break body;
        }
        assert_eq!(status, 200);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quota never applied"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("of its 10000 bytes"));
    // A key with its own larger quota is unaffected.
    let (id, key) = relay.state().db.create_customer("big").await.unwrap();
    relay
        .state()
        .db
        .set_monthly_quota(id, Some(0))
        .await
        .unwrap();
    let other = spareband_tests::customer::Customer::new(&relay.base, key.reveal());
    assert_eq!(
        other.fetch(json!({"url": target.url("/hello")})).await.0,
        200
    );
}

#[tokio::test]
async fn deny_listed_names_and_names_resolving_inside_a_network_are_refused_before_any_node() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let deny = dir.path().join("deny");
    std::fs::write(
        &hosts,
        "127.0.0.1 loopback.test\n93.184.216.34 rebind.test\n10.0.0.7 rebind.test\n\
         192.168.1.1 router.test\n::1 v6.test\n::ffff:10.0.0.1 mapped.test\n",
    )
    .unwrap();
    std::fs::write(&deny, "# never fetched through this relay\nbank.test\n").unwrap();
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start_with(&allow, |c| {
        c.hosts_file = Some(hosts.clone());
        c.deny_list = Some(deny.clone());
    })
    .await;
    let node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let customer = relay.customer();
    for (url, says) in [
        ("http://loopback.test/", "127.0.0.1"),
        ("https://rebind.test/", "10.0.0.7"),
        ("http://router.test:8080/", "192.168.1.1"),
        ("http://v6.test/", "::1"),
        ("http://mapped.test/", "::ffff:10.0.0.1"),
        ("https://bank.test/", "deny list"),
        ("https://www.BANK.test./login", "deny list"),
    ] {
        let (status, body) = customer.fetch(json!({ "url": url })).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], "target_forbidden", "{url}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{url}: {message}");
    }
    // No node was asked: no usage record exists.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rows = spareband_ledger::inspect::usage_record_count(&relay.state().db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(
        node.receipts
            .verified
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn a_node_sends_at_most_its_cap_of_requests_a_minute_to_one_site() {
    let target = target::Target::start().await;
    let port = target.addr.port();
    let allow = vec![target.host_port(), format!("localhost:{port}")];
    let relay = TestRelay::start_with(&allow, |c| c.node_site_per_minute = 3).await;
    let _node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let customer = relay.customer();
    // A minute boundary in the middle would reset the window: start early in one.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if secs % 60 > 50 {
        tokio::time::sleep(Duration::from_secs(61 - secs % 60)).await;
    }
    for _ in 0..3 {
        let (status, body) = customer.fetch(json!({"url": target.url("/hello")})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = customer.fetch(json!({"url": target.url("/hello")})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3 requests this minute to 127.0.0.1"));
    assert_eq!(target.hits(), 3);
    // Another site is not affected by the first one's cap.
    let (status, body) = customer
        .fetch(json!({"url": format!("http://localhost:{port}/hello")}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn one_node_per_ip_address_earns_and_the_next_takes_over_when_it_leaves() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start_with(&allow, |c| c.earning_nodes_per_ip = 1).await;
    const A: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    const B: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
    let mut first = TestNode::start_with(&relay.base, &allow, |c| c.payout = Some(A.into()));
    relay.wait_nodes(1).await;
    let second = TestNode::start_with(&relay.base, &allow, |c| c.payout = Some(B.into()));
    relay.wait_nodes(2).await;
    let state = relay.state().clone();
    let earns = |id| {
        state
            .registry
            .get(&id)
            .unwrap()
            .earning
            .load(std::sync::atomic::Ordering::Acquire)
    };
    assert!(earns(first.id));
    assert!(!earns(second.id), "both nodes are on 127.0.0.1");
    // Jobs spread over both; only the first one's bytes are paid.
    let customer = relay.customer();
    for i in 0..20 {
        let (status, _) = customer
            .fetch(json!({"url": target.url(&format!("/bytes?n=1000&seed={i}"))}))
            .await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let db = relay.state().db.clone();
    let bytes_of = |node: String, earning: i64| {
        let db = db.clone();
        async move {
            spareband_ledger::inspect::usage_records(&db)
                .await
                .unwrap()
                .iter()
                .filter(|r| {
                    r.node_id == node
                        && i64::from(r.earning) == earning
                        && r.outcome == spareband_ledger::JobOutcome::Ok
                })
                .map(|r| (r.bytes_up + r.bytes_down) as i64)
                .sum::<i64>()
        }
    };
    let paid = bytes_of(first.id.to_string(), 1).await;
    let unpaid = bytes_of(second.id.to_string(), 0).await;
    assert!(paid > 0 && unpaid > 0, "paid {paid}, unpaid {unpaid}");
    assert_eq!(bytes_of(second.id.to_string(), 1).await, 0);
    // Both nodes have their payout address registered by now.
    let closed = spareband_ledger::rewards::close_epoch(
        &relay.state().db,
        spareband_ledger::clock::now_ms() + 1,
        relay.state().config.epoch(),
        1 << 30,
    )
    .await
    .unwrap()
    .unwrap();
    let addresses: Vec<String> = closed.payouts.iter().map(|p| p.0.to_checksum()).collect();
    assert_eq!(addresses, vec![A.to_string()]);
    assert_eq!(closed.payouts[0].1 as i64, paid);
    assert_eq!(closed.unassigned_bytes as i64, unpaid);
    // The earning node leaves: the other one earns from now on.
    first.kill();
    relay.wait_nodes(1).await;
    assert!(earns(second.id));
    // And the dashboard's record says so (written just after the switch).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let earning =
            spareband_ledger::inspect::node_earning(&relay.state().db, &second.id.to_string())
                .await
                .unwrap();
        if earning == Some(true) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes.earning never became 1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One IPv6 /64 is one address for the earning rule (a subscriber gets a
/// whole /64). With the registry comparing exact addresses instead, the
/// second node earns too and this test fails: checked once by hand.
#[tokio::test]
async fn nodes_in_one_ipv6_64_count_as_one_address_for_earning() {
    let proxy = spareband_tests::ForwardingProxy::bind().await;
    let proxy_url = proxy.url();
    let relay = TestRelay::start_with(&[], |c| {
        c.earning_nodes_per_ip = 1;
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.public_url = Some(proxy_url.clone());
    })
    .await;
    let ips = ["2001:db8:7:7::1", "2001:db8:7:7:ffff::2", "2001:db8:7:8::1"];
    proxy.forward(relay.relay.as_ref().unwrap().addr, &ips);
    let mut nodes = Vec::new();
    for _ in ips {
        nodes.push(TestNode::start(&proxy_url, &[]));
        relay.wait_nodes(nodes.len()).await;
    }
    let earns: Vec<bool> = nodes
        .iter()
        .map(|n| {
            relay
                .state()
                .registry
                .get(&n.id)
                .unwrap()
                .earning
                .load(std::sync::atomic::Ordering::Acquire)
        })
        .collect();
    assert_eq!(
        earns,
        vec![true, false, true],
        "same /64, same /64, another /64"
    );
}

#[tokio::test]
async fn the_relay_routes_around_domains_a_node_owner_blocks_and_the_node_refuses_them_itself() {
    let target = target::Target::start().await;
    let port = target.addr.port();
    let allow = vec![target.host_port(), format!("localhost:{port}")];
    let relay = TestRelay::start(&allow).await;
    let blocking = TestNode::start_with(&relay.base, &allow, |c| {
        c.blocked_domains = vec!["LOCALHOST.".into()];
    });
    relay.wait_nodes(1).await;
    let customer = relay.customer();
    let blocked_url = format!("http://localhost:{port}/hello");
    // Wait until the relay has the node's list (it follows the handshake).
    let state = relay.state().clone();
    spareband_tests::wait_for("the block list at the relay", || {
        state
            .registry
            .get(&blocking.id)
            .is_some_and(|n| n.blocks("localhost"))
    })
    .await;
    // Only the blocking node: no node may take the job.
    let (status, body) = customer.fetch(json!({ "url": blocked_url })).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "no_node_available");
    // A redirect into the blocked domain is refused by the node itself.
    let hop = format!(
        "/redirect?to={}",
        spareband_tests::customer::enc(&blocked_url)
    );
    let (status, body) = customer.fetch(json!({ "url": target.url(&hop) })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not share with localhost"));
    let before = target.hits();
    // With a second node, blocked jobs go to it, every time.
    let other = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(2).await;
    for _ in 0..10 {
        let (status, body) = customer.fetch(json!({ "url": blocked_url })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["node"], other.id.to_string());
    }
    assert_eq!(target.hits(), before + 10);
}
