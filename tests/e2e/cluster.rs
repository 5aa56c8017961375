//! A cluster of relays over a real NATS server (issue 14, membership):
//! relays find each other, a lost NATS is noticed and survived, and a
//! relay that leaves is dropped at once.

use http_body_util::BodyExt;
use serde_json::{json, Value};
use spareband_relay::cluster::{Cluster, ClusterError, ClusterUrl, Member, MEMBER_TTL};
use spareband_relay::secret::AdminToken;
use spareband_tests::nats::Nats;
use spareband_tests::target::Target;
use spareband_tests::{TestNode, TestRelay};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn member(nats: &str, id: &str, stop: &CancellationToken) -> Cluster {
    let me = Member {
        id: id.into(),
        url: format!("https://{id}.example"),
        nodes: 0,
        leaving: false,
    };
    Cluster::join(nats, me, || 3, stop.clone()).await.unwrap()
}

async fn until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(tokio::time::Instant::now() < end, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(c: &Cluster) -> Vec<String> {
    c.members().into_iter().map(|m| m.id).collect()
}

/// Checked once with the defence removed (members never expired): after the
/// NATS server died the lone relay still counted three relays and the test
/// failed at "only itself while NATS is down".
#[tokio::test]
async fn relays_find_each_other_survive_a_lost_nats_and_drop_one_that_leaves() {
    let mut nats = Nats::start();
    let stops: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
    let mut relays = Vec::new();
    for (i, stop) in stops.iter().enumerate() {
        relays.push(member(&nats.url(), &format!("r{i}"), stop).await);
    }
    for r in &relays {
        until("three members", Duration::from_secs(10), || {
            ids(r).len() == 3
        })
        .await;
    }
    assert!(relays.iter().all(Cluster::connected));
    assert_eq!(
        relays[0].members()[1].nodes,
        3,
        "heartbeats carry the node count"
    );

    // NATS dies: every relay notices, and after the members' time to live
    // counts only itself.
    nats.kill();
    until("disconnected", Duration::from_secs(10), || {
        !relays[0].connected()
    })
    .await;
    until(
        "only itself while NATS is down",
        MEMBER_TTL + Duration::from_secs(5),
        || ids(&relays[0]) == ["r0"],
    )
    .await;

    // NATS is back on the same address: the relays reconnect on their own.
    nats.restart();
    for r in &relays {
        until(
            "reconnected with three members",
            Duration::from_secs(20),
            || r.connected() && ids(r).len() == 3,
        )
        .await;
    }

    // A relay that shuts down says so and is dropped without waiting for
    // its time to live.
    stops[2].cancel();
    until("r2 gone", Duration::from_secs(3), || {
        ids(&relays[0]) == ["r0", "r1"]
    })
    .await;
}

#[tokio::test]
async fn a_cluster_url_that_is_not_nats_is_refused_without_its_password() {
    let stop = CancellationToken::new();
    let me = Member {
        id: "x".into(),
        url: "https://x.example".into(),
        nodes: 0,
        leaving: false,
    };
    let Err(e) = Cluster::join("http://user:hunter2@127.0.0.1:1", me, || 0, stop).await else {
        panic!("an http:// cluster URL was accepted")
    };
    assert!(matches!(e, ClusterError::BadUrl(_)));
    assert!(!e.retryable());
    let words = e.to_string();
    assert!(words.contains("is not a nats:// address"), "{words}");
    assert!(!words.contains("hunter2"), "{words}");
}

async fn health(base: &str) -> Value {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let res = client
        .get(format!("{base}/healthz").parse().unwrap())
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

async fn until_health(base: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(base).await;
        if check(&h) {
            return h;
        }
        assert!(tokio::time::Instant::now() < end, "timed out: {what}: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn three_relays_count_each_other_and_one_that_loses_nats_keeps_serving() {
    let mut nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let mut relays = Vec::new();
    for _ in 0..3 {
        let url = nats.url();
        relays.push(
            TestRelay::start_with(&allow, move |c| {
                c.cluster_url = Some(ClusterUrl(url));
                c.admin_token = Some(AdminToken::from_clear(crate::admin::TOKEN).unwrap());
            })
            .await,
        );
    }
    let dashboard = crate::admin::Browser::new(&relays[0].base);
    let cookie = dashboard.signed_in_cookie().await;
    let overview =
        || async { dashboard.get("/admin/api/overview", &cookie).await.json()["cluster"].clone() };
    let _node = TestNode::start(&relays[0].base, &allow);
    relays[0].wait_nodes(1).await;
    for r in &relays {
        until_health(&r.base, "three relays", |h| h["cluster"]["relays"] == 3).await;
    }
    assert_eq!(overview().await, json!({"connected": true, "relays": 3}));

    nats.kill();
    let h = until_health(&relays[0].base, "NATS lost", |h| {
        h["cluster"]["connected"] == false
    })
    .await;
    assert_eq!(h["status"], "ok");
    // The dashboard says so too.
    assert_eq!(overview().await["connected"], false);
    // Its own node still serves its customers.
    let (status, v) = relays[0]
        .customer()
        .fetch(json!({"url": target.url("/hello")}))
        .await;
    assert_eq!(status, 200, "{v}");
    // A relay without cluster_url says nothing about a cluster.
    let alone = TestRelay::start(&allow).await;
    assert!(health(&alone.base).await.get("cluster").is_none());
}

#[test]
fn a_cluster_url_never_prints_its_password() {
    let url = ClusterUrl("nats://relay:hunter2@127.0.0.1:4222,nats://127.0.0.1:4223".into());
    let shown = format!("{url:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("relay:***@127.0.0.1:4222"), "{shown}");
    // A token alone, NATS's other form of credentials.
    let token = format!(
        "{:?}",
        ClusterUrl("nats://s3cr3t-token@127.0.0.1:4222".into())
    );
    assert!(!token.contains("s3cr3t"), "{token}");
}
