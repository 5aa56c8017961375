//! A cluster of relays over a real NATS server and a real PostgreSQL
//! (issue 14): relays find each other, a lost NATS is noticed and survived,
//! a relay that leaves is dropped at once; a customer on one relay is served
//! by a node on another (JSON, a 16 MiB raw stream, request bodies both
//! ways), a session keeps its node whichever relay is called, and each job
//! is recorded once; a key's rate and quota, one earning node per address
//! and the closing of epochs hold over the cluster.

use http_body_util::BodyExt;
use serde_json::{json, Value};
use spareband_relay::cluster::{Cluster, ClusterError, ClusterUrl, Hooks, Member, MEMBER_TTL};
use spareband_relay::secret::{AdminToken, ClusterSecret};
use spareband_tests::nats::Nats;
use spareband_tests::target::Target;
use spareband_tests::{TestNode, TestRelay};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The secret every test relay of a cluster shares.
const SECRET: &str = "a-cluster-secret-for-tests-only-0123456789";

fn secret() -> ClusterSecret {
    ClusterSecret::new(SECRET).unwrap()
}

async fn member(nats: &str, id: &str, stop: &CancellationToken) -> Cluster {
    let me = Member {
        id: id.into(),
        url: format!("https://{id}.example"),
        holder: String::new(),
        nodes: 0,
        offers: Vec::new(),
        leaving: false,
    };
    Cluster::join(nats, me, secret(), Hooks::fixed(3), stop.clone())
        .await
        .unwrap()
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
        holder: String::new(),
        nodes: 0,
        offers: Vec::new(),
        leaving: false,
    };
    let Err(e) = Cluster::join(
        "http://user:hunter2@127.0.0.1:1",
        me,
        secret(),
        Hooks::fixed(0),
        stop,
    )
    .await
    else {
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
                c.cluster_secret = Some(secret());
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

/// Three relays on one PostgreSQL database and one NATS server.
async fn three_relays(nats: &Nats, allow: &[String]) -> Vec<TestRelay> {
    three_relays_with(nats, allow, |_| {}).await
}

/// The same, each relay's config adjusted by `adjust` too.
async fn three_relays_with(
    nats: &Nats,
    allow: &[String],
    adjust: impl Fn(&mut spareband_relay::config::Config) + Clone,
) -> Vec<TestRelay> {
    let url = spareband_test_postgres::PgServer::shared()
        .fresh_database()
        .await
        .expect("a fresh PostgreSQL database");
    let db = spareband_relay::secret::DatabaseUrl::parse(&url).unwrap();
    let mut relays = Vec::new();
    for _ in 0..3 {
        let (nats, db, adjust) = (nats.url(), db.clone(), adjust.clone());
        relays.push(
            TestRelay::start_with(allow, move |c| {
                c.cluster_url = Some(ClusterUrl(nats));
                c.cluster_secret = Some(secret());
                c.database_url = Some(db);
                adjust(c);
            })
            .await,
        );
    }
    relays
}

/// A native node on each relay, once every relay counts the three.
async fn a_node_on_each(relays: &[TestRelay], allow: &[String]) -> Vec<TestNode> {
    let nodes = relays
        .iter()
        .map(|r| TestNode::start(&r.base, allow))
        .collect();
    for r in relays {
        r.wait_nodes(1).await;
        until("three relays", Duration::from_secs(10), || {
            cluster_of(r).members().len() == 3
        })
        .await;
    }
    nodes
}

fn cluster_of(r: &TestRelay) -> Cluster {
    r.state().cluster.get().expect("a cluster member").clone()
}

/// Waits until `r` sees a relay other than itself offering a free slot.
async fn until_offered(r: &TestRelay, free_relays: usize) {
    let c = cluster_of(r);
    until("offers heard", Duration::from_secs(15), || {
        let mut exclude = Vec::new();
        while let Some(m) = c.relay_for(None, true, &exclude) {
            exclude.push(m.id);
        }
        exclude.len() >= free_relays
    })
    .await;
}

/// Checked once with the hop removed (a relay with no free node of its own
/// never asked the cluster): the first fetch through relay 1 answered 503
/// no_node_available.
#[tokio::test]
async fn a_customer_on_one_relay_is_served_by_a_node_on_another_and_each_job_is_recorded_once() {
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relays = three_relays(&nats, &allow).await;
    let node = TestNode::start(&relays[2].base, &allow);
    relays[2].wait_nodes(1).await;
    until_offered(&relays[0], 1).await;
    let customer = relays[0].customer();

    // JSON: a job through relay 1, run on relay 3's node.
    let (status, v) = customer.fetch(json!({"url": target.url("/hello")})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["node"], node.id.to_string());
    assert_eq!(
        spareband_tests::customer::body_of(&v),
        b"hello from the target"
    );
    // A JSON body goes with the job, whole.
    let sent = spareband_tests::pattern(100_000, 3);
    let (status, v) = customer
        .fetch(json!({
            "url": target.url("/echo"),
            "method": "POST",
            "body": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sent),
        }))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(spareband_tests::customer::body_of(&v), sent);
    let echoed = v.clone();

    // Raw: 16 MiB streamed from relay 3's node through relay 1, byte for byte.
    let n = 16 * 1024 * 1024;
    let res = customer
        .raw(
            "GET",
            &format!(
                "url={}",
                spareband_tests::customer::enc(&target.url(&format!("/bytes?n={n}&seed=7")))
            ),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-spareband-node"],
        node.id.to_string().as_str()
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), n);
    assert_eq!(
        spareband_tests::sha256_hex(&body),
        spareband_tests::sha256_hex(&spareband_tests::pattern(n, 7))
    );
    // A streamed request body goes the other way.
    let up = spareband_tests::pattern(2 * 1024 * 1024, 11);
    let res = customer
        .raw(
            "POST",
            &format!(
                "url={}",
                spareband_tests::customer::enc(&target.url("/echo"))
            ),
            Some(up.clone()),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        spareband_tests::sha256_hex(&body),
        spareband_tests::sha256_hex(&up)
    );

    // Each job is recorded once, by the relay that ran it, with the bytes
    // the customer received.
    let db = relays[2].state().db.clone();
    for _ in 0..100 {
        if spareband_ledger::inspect::usage_record_count(&db)
            .await
            .unwrap()
            >= 4
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a second record of any job to arrive, were one written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = spareband_ledger::inspect::usage_records(&db).await.unwrap();
    assert_eq!(records.len(), 4, "one record per job: {records:?}");
    assert!(records.iter().all(|r| r.node_id == node.id.to_string()));
    // The customer is told the bytes the ledger holds.
    let echo = records
        .iter()
        .find(|r| r.job_id == echoed["job"].as_str().unwrap())
        .expect("the echo job's record");
    assert_eq!(
        (json!(echo.bytes_up), json!(echo.bytes_down)),
        (
            echoed["bytes"]["up"].clone(),
            echoed["bytes"]["down"].clone()
        )
    );
    // Metered bytes are the wire's: the body and the head around it.
    assert!(
        records
            .iter()
            .any(|r| (n as u64..n as u64 + 1024).contains(&r.bytes_down)),
        "the 16 MiB job's bytes: {records:?}"
    );
}

/// 64 customers on a relay with no node, one node of 32 slots on another:
/// the cluster is saturated, and no job may fail for it (issue 13's rule,
/// across the hop), over more hopped answers than HTTP/2 allows resets on
/// one connection (1,024). Checked once with a relay that has no node asking
/// only relays that announced a free slot: 279 of 2,560 failed with 503
/// no_node_available. (The hop's other defence, holding the last bytes until
/// the peer ends its stream, is not caught here: in one process the race it
/// closes did not show; the cluster benchmark, with relays as processes,
/// failed 168,031 jobs without it.) On several threads, as relays run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_cluster_queues_hopped_jobs_and_fails_none() {
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relays = three_relays(&nats, &allow).await;
    let _node = TestNode::start(&relays[2].base, &allow);
    relays[2].wait_nodes(1).await;
    until_offered(&relays[0], 1).await;
    let customer = relays[0].customer();
    let query = format!(
        "url={}",
        spareband_tests::customer::enc(&target.url("/bytes?n=1024&seed=1"))
    );
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (customer, query) = (customer.clone(), query.clone());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for _ in 0..40 {
                    let res = customer.raw("GET", &query, None).await;
                    let status = res.status();
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    if status != 200 || body.len() != 1024 {
                        failed.push(format!("{status}: {}", String::from_utf8_lossy(&body)));
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = Vec::new();
    for t in tasks {
        failed.extend(t.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} of 2,560 failed, the first: {}",
        failed.len(),
        failed[0]
    );
}

/// Checked once with pins kept to each relay (none shared on NATS): the
/// other relays never learned the session's pin and the test failed.
#[tokio::test]
async fn a_session_keeps_its_node_whichever_relay_the_customer_calls() {
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relays = three_relays(&nats, &allow).await;
    let on_2 = TestNode::start(&relays[1].base, &allow);
    let on_3 = TestNode::start(&relays[2].base, &allow);
    relays[1].wait_nodes(1).await;
    relays[2].wait_nodes(1).await;
    until_offered(&relays[0], 2).await;
    let key = relays[0].key.clone();
    let customer = |i: usize| spareband_tests::customer::Customer::new(&relays[i].base, &key);
    for session in ["alpha", "beta", "gamma"] {
        let mut nodes = Vec::new();
        for i in [0, 1, 2, 0, 2, 1] {
            let (status, v) = customer(i)
                .fetch(json!({"url": target.url("/hello"), "session": session}))
                .await;
            assert_eq!(status, 200, "{v}");
            nodes.push(v["node"].as_str().unwrap().to_string());
            // The pin reaches the other relays over NATS.
            let pinned = nodes[0].clone();
            let all = relays.iter().map(|r| r.state().clone()).collect::<Vec<_>>();
            let who = all[0]
                .db
                .customer_by_key(&spareband_relay::secret::ApiKey::from_presented(&key))
                .await
                .unwrap()
                .expect("the key's customer");
            until("pin shared", Duration::from_secs(5), || {
                all.iter().all(|s| {
                    s.pins
                        .get(who, session)
                        .is_some_and(|p| p.node.to_string() == pinned)
                })
            })
            .await;
        }
        assert!(
            nodes.iter().all(|n| *n == nodes[0]),
            "session {session} moved between nodes: {nodes:?}"
        );
        assert!([on_2.id.to_string(), on_3.id.to_string()].contains(&nodes[0]));
    }
}

/// Checked once with the secret check removed: the request with the wrong
/// secret reached the job parser and was answered 400, not 401.
#[tokio::test]
async fn the_job_hop_takes_only_relays_of_the_cluster() {
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relays = three_relays(&nats, &allow).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let hop = |base: &str, bearer: Option<&str>| {
        let mut req =
            http::Request::post(format!("{base}{}", spareband_relay::cluster::hop::HOP_PATH));
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        client.request(
            req.body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"\0\0\0\x02{}",
            )))
            .unwrap(),
        )
    };
    for bearer in [
        None,
        Some("not-the-secret-of-this-cluster-at-all-000"),
        Some(relays[0].key.as_str()),
    ] {
        let res = hop(&relays[0].base, bearer).await.unwrap();
        assert_eq!(res.status(), 401, "{bearer:?}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains(SECRET));
    }
    // The right secret gets as far as reading the job (an empty one here).
    let res = hop(&relays[0].base, Some(SECRET)).await.unwrap();
    assert_eq!(res.status(), 400);
    // A relay on its own has no such endpoint.
    let alone = TestRelay::start(&allow).await;
    let res = hop(&alone.base, Some(SECRET)).await.unwrap();
    assert_eq!(res.status(), 404);
}

/// A native node that starts on `relays[first]` and knows all of them, in
/// the order a node would fail over in. A node starts at the relay its id
/// picks (`id[0] % relays`), so the list is turned to put `first` there.
fn node_first_on(
    relays: &[&TestRelay],
    first: usize,
    allow: &[String],
) -> (TestNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("node.key");
    let probe = spareband_node::Node::new(spareband_node::NodeConfig {
        relays: vec![relays[0].base.clone()],
        key_file: key_file.clone(),
        insecure_tls: false,
        allow_targets: allow.to_vec(),
        max_concurrency: 32,
        payout: None,
        blocked_domains: Vec::new(),
        bind: None,
        extra_target_roots: Vec::new(),
        controls: Default::default(),
        clock: None,
    })
    .unwrap();
    let at = probe.id().0[0] as usize % relays.len();
    let mut list: Vec<String> = relays.iter().map(|r| r.base.clone()).collect();
    // Put `first` at index `at`.
    let len = list.len();
    list.rotate_right((at + len - first % len) % len);
    assert_eq!(list[at], relays[first].base);
    let first_url = list[0].clone();
    let node = TestNode::start_with(&first_url, allow, move |c| {
        c.relays = list;
        c.key_file = key_file;
    });
    (node, dir)
}

/// Checked once with the retry on another relay removed (a failed hop
/// answered at once): GETs in flight when relay 2 died were answered 502
/// node_failed.
#[tokio::test]
async fn a_relay_killed_under_load_loses_no_get_counts_no_job_twice_and_its_node_moves() {
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let url = spareband_test_postgres::PgServer::shared()
        .fresh_database()
        .await
        .expect("a fresh PostgreSQL database");
    let db = spareband_relay::secret::DatabaseUrl::parse(&url).unwrap();
    let configure = |nats: String, db: spareband_relay::secret::DatabaseUrl| {
        move |c: &mut spareband_relay::config::Config| {
            c.cluster_url = Some(ClusterUrl(nats));
            c.cluster_secret = Some(secret());
            c.database_url = Some(db);
        }
    };
    let r1 = TestRelay::start_with(&allow, configure(nats.url(), db.clone())).await;
    let mut r2 = TestRelay::start_killable(&allow, configure(nats.url(), db.clone())).await;
    let r3 = TestRelay::start_with(&allow, configure(nats.url(), db.clone())).await;
    // Relay 1 holds no node: every job it takes hops to relay 2 or 3.
    let (moving, _key) = node_first_on(&[&r2, &r1, &r3], 0, &allow);
    let staying = TestNode::start(&r3.base, &allow);
    r2.wait_nodes(1).await;
    r3.wait_nodes(1).await;
    until_offered(&r1, 2).await;

    let customer = r1.customer();
    let stop = CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..8 {
        let (customer, stop, url) = (customer.clone(), stop.clone(), target.url("/hello"));
        load.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.is_cancelled() {
                answers.push(customer.fetch(json!({"url": url})).await);
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    r2.kill();
    // The node relay 2 held reconnects to relay 1 or 3 within its backoff.
    let (s1, s3) = (r1.state().clone(), r3.state().clone());
    until("the node moved", Duration::from_secs(20), || {
        s1.registry.get(&moving.id).is_some() || s3.registry.get(&moving.id).is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut answers = Vec::new();
    for l in load {
        answers.extend(l.await.unwrap());
    }
    let failed: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        failed.first()
    );
    let served_by_moved_node_after = answers
        .iter()
        .filter(|(_, v)| v["node"] == moving.id.to_string())
        .count();
    assert!(
        served_by_moved_node_after > 0,
        "the moved node served again"
    );

    // Every job the customer got is in the ledger once, with the bytes the
    // customer was told, except those relay 2 had not yet written when it
    // died: its unflushed window (the writer commits every 250 ms,
    // `spareband_ledger::usage::FLUSH_INTERVAL`), and only jobs of the node
    // it held.
    let mut jobs = std::collections::HashMap::new();
    for (_, v) in &answers {
        let job = v["job"].as_str().unwrap().to_string();
        assert!(
            jobs.insert(job, v.clone()).is_none(),
            "a job id answered twice"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = spareband_ledger::inspect::usage_records(&r1.state().db)
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut missing_on_killed_relay = 0;
    for r in &records {
        assert!(
            seen.insert(r.job_id.clone()),
            "job {} recorded twice",
            r.job_id
        );
    }
    for (job, v) in &jobs {
        match records.iter().find(|r| &r.job_id == job) {
            Some(r) => assert_eq!(
                (json!(r.bytes_up), json!(r.bytes_down)),
                (v["bytes"]["up"].clone(), v["bytes"]["down"].clone()),
                "job {job}"
            ),
            None => {
                assert_eq!(v["node"], moving.id.to_string(), "job {job} unrecorded");
                missing_on_killed_relay += 1;
            }
        }
    }
    eprintln!(
        "{} jobs answered, {} recorded, {} lost in the killed relay's unflushed window",
        jobs.len(),
        records.len(),
        missing_on_killed_relay
    );
    drop(staying);
}

/// Checked once with the admissions not shared (each relay kept its own
/// bucket): the key got about three times its rate, 150 a second.
#[tokio::test]
async fn a_key_rate_holds_over_the_cluster_within_ten_percent() {
    const RATE: u32 = 50;
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relays = three_relays_with(&nats, &allow, |c| {
        c.key_rate_per_sec = RATE;
        c.key_burst = 10;
        c.key_max_concurrent = 1000;
    })
    .await;
    let _nodes = a_node_on_each(&relays, &allow).await;
    let key = relays[0].key.clone();
    let started = tokio::time::Instant::now();
    let run_for = Duration::from_secs(6);
    let mut load = Vec::new();
    for r in &relays {
        for _ in 0..4 {
            let customer = spareband_tests::customer::Customer::new(&r.base, &key);
            let url = target.url("/hello");
            load.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                while started.elapsed() < run_for {
                    let (status, _) = customer.fetch(json!({"url": url})).await;
                    match status {
                        200 => ok.push(started.elapsed()),
                        429 => tokio::time::sleep(Duration::from_millis(2)).await,
                        other => panic!("status {other}"),
                    }
                }
                ok
            }));
        }
    }
    let mut ok = Vec::new();
    for l in load {
        ok.extend(l.await.unwrap());
    }
    // The steady rate, after the first second (the bursts).
    let window = Duration::from_secs(1)..run_for;
    let in_window = ok.iter().filter(|t| window.contains(*t)).count() as f64;
    let rate = in_window / (window.end - window.start).as_secs_f64();
    eprintln!("{rate:.1} requests/s admitted over three relays (limit {RATE})");
    assert!(
        (rate - f64::from(RATE)).abs() <= f64::from(RATE) * 0.1,
        "{rate:.1}/s is not within 10 % of {RATE}/s"
    );
}

/// A key's monthly quota over the cluster: hammered through three relays
/// at once, it is exceeded by at most one job per relay. Checked once with
/// the quota as it was before (read from the ledger every 5 s, nothing
/// shared): the key got 71,669,052 bytes, 1,092 jobs, of a 2 MiB quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_quota_is_exceeded_by_at_most_one_job_per_relay_over_the_cluster() {
    const QUOTA: u64 = 2 << 20;
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relays = three_relays_with(&nats, &allow, |c| {
        c.monthly_quota_bytes = QUOTA;
        c.key_max_concurrent = 1000;
    })
    .await;
    let _nodes = a_node_on_each(&relays, &allow).await;
    // Let each relay's count of the cluster catch up (read every sync).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let key = relays[0].key.clone();
    let mut load = Vec::new();
    for r in &relays {
        for i in 0..4 {
            let customer = spareband_tests::customer::Customer::new(&r.base, &key);
            let url = target.url(&format!("/bytes?n=65536&seed={i}"));
            load.push(tokio::spawn(async move {
                let end = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    assert!(tokio::time::Instant::now() < end, "never refused for quota");
                    let (status, body) = customer.fetch(json!({ "url": url })).await;
                    match status {
                        200 => {}
                        403 => return,
                        429 => tokio::time::sleep(Duration::from_millis(5)).await,
                        other => panic!("status {other}: {body}"),
                    }
                }
            }));
        }
    }
    for l in load {
        l.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let records = spareband_ledger::inspect::usage_records(&relays[0].state().db)
        .await
        .unwrap();
    let sizes: Vec<u64> = records.iter().map(|r| r.bytes_up + r.bytes_down).collect();
    let (total, largest) = (sizes.iter().sum::<u64>(), *sizes.iter().max().unwrap());
    eprintln!(
        "{total} bytes delivered in {} jobs of at most {largest} bytes, quota {QUOTA}",
        sizes.len()
    );
    assert!(total >= QUOTA, "refused before the quota was used");
    assert!(
        total <= QUOTA + 3 * largest,
        "{total} bytes: more than one job per relay past the {QUOTA}-byte quota"
    );
}

/// Checked once each with its defence removed: with every node marked
/// offline at any relay's start (as before the `relay` column), the node on
/// relay 3 showed offline once relay 4 started; with no one marking a gone
/// relay's nodes, the node of the killed relay stayed online.
#[tokio::test]
async fn the_dashboard_shows_every_node_of_the_cluster_online_where_it_is_connected() {
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let url = spareband_test_postgres::PgServer::shared()
        .fresh_database()
        .await
        .expect("a fresh PostgreSQL database");
    let db = spareband_relay::secret::DatabaseUrl::parse(&url).unwrap();
    let configure = |nats: String, db: spareband_relay::secret::DatabaseUrl| {
        move |c: &mut spareband_relay::config::Config| {
            c.cluster_url = Some(ClusterUrl(nats));
            c.cluster_secret = Some(secret());
            c.database_url = Some(db);
            c.admin_token = Some(AdminToken::from_clear(crate::admin::TOKEN).unwrap());
        }
    };
    let r1 = TestRelay::start_with(&allow, configure(nats.url(), db.clone())).await;
    let mut r2 = TestRelay::start_killable(&allow, configure(nats.url(), db.clone())).await;
    let r3 = TestRelay::start_with(&allow, configure(nats.url(), db.clone())).await;
    // The node on relay 2 knows no other relay: when relay 2 dies, so does
    // its connection, for good.
    let mut on_2 = TestNode::start(&r2.base, &allow);
    let on_3 = TestNode::start(&r3.base, &allow);
    r2.wait_nodes(1).await;
    r3.wait_nodes(1).await;
    let dashboard = crate::admin::Browser::new(&r1.base);
    let cookie = dashboard.signed_in_cookie().await;
    let online = || async {
        let page = dashboard.get("/admin/api/nodes", &cookie).await.json();
        let mut ids: Vec<String> = page["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["online"] == true)
            .map(|n| n["node_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![on_2.id.to_string(), on_3.id.to_string()];
    both.sort();
    assert_eq!(
        online().await,
        both,
        "relay 1 shows the nodes relays 2 and 3 hold"
    );
    // The overview counts the nodes of every relay.
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let o = dashboard.get("/admin/api/overview", &cookie).await.json();
        if o["nodes_online"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "overview: {o}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A fourth relay starting on the same database leaves them online.
    let _r4 = TestRelay::start_with(&allow, configure(nats.url(), db.clone())).await;
    assert_eq!(
        online().await,
        both,
        "a relay's start marked others' nodes offline"
    );

    // Relay 2 dies with its node: once the cluster stops hearing from it,
    // its node shows offline; relay 3's stays online.
    r2.kill();
    on_2.kill();
    let end = tokio::time::Instant::now() + MEMBER_TTL + Duration::from_secs(10);
    loop {
        if online().await == [on_3.id.to_string()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "online: {:?}",
            online().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether relay `r` lets `node` earn now.
fn earns_on(r: &TestRelay, node: spareband_protocol::NodeId) -> Option<bool> {
    r.state()
        .registry
        .get(&node)
        .map(|n| n.earning.load(std::sync::atomic::Ordering::Acquire))
}

/// Waits until `check` holds, then checks that it still holds a second
/// later (a claim on its way could still turn it).
async fn settled(what: &str, check: impl Fn() -> bool) {
    until(what, MEMBER_TTL + Duration::from_secs(10), &check).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(check(), "{what}: did not hold");
}

/// One earning node per address over the whole cluster: nodes on one
/// address (all test nodes are 127.0.0.1) held by different relays. Checked
/// once each with a defence removed: with other relays' claims ignored
/// (`on_claims` doing nothing) the node on relay 2 earned beside the one on
/// relay 1 ("the node on relay 2 serves unpaid" timed out); with changes
/// not sent as they happen (`share_earning` sending nothing, only the full
/// resends) relay 1's departed node kept its claim until it lapsed ("relay
/// 2's node earns once relay 1's left" timed out).
#[tokio::test]
async fn one_node_per_address_earns_over_the_cluster_and_the_next_in_line_takes_over() {
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let url = spareband_test_postgres::PgServer::shared()
        .fresh_database()
        .await
        .expect("a fresh PostgreSQL database");
    let db = spareband_relay::secret::DatabaseUrl::parse(&url).unwrap();
    let configure = |nats: String, db: spareband_relay::secret::DatabaseUrl| {
        move |c: &mut spareband_relay::config::Config| {
            c.cluster_url = Some(ClusterUrl(nats));
            c.cluster_secret = Some(secret());
            c.database_url = Some(db);
            c.earning_nodes_per_ip = 1;
        }
    };
    let r1 = TestRelay::start_with(&allow, configure(nats.url(), db.clone())).await;
    let mut r2 = TestRelay::start_killable(&allow, configure(nats.url(), db.clone())).await;
    for r in [&r1, &r2] {
        until("two relays", Duration::from_secs(10), || {
            cluster_of(r).members().len() == 2
        })
        .await;
    }
    let mut first = TestNode::start(&r1.base, &allow);
    r1.wait_nodes(1).await;
    let second = TestNode::start(&r2.base, &allow);
    r2.wait_nodes(1).await;
    settled("the node on relay 2 serves unpaid", || {
        earns_on(&r1, first.id) == Some(true) && earns_on(&r2, second.id) == Some(false)
    })
    .await;
    // What relay 2's node serves is recorded unpaid.
    let customer = spareband_tests::customer::Customer::new(&r2.base, &r2.key);
    for i in 0..5 {
        let url = target.url(&format!("/bytes?n=1000&seed={i}"));
        let (status, body) = customer.fetch(json!({ "url": url })).await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let records = spareband_ledger::inspect::usage_records(&r1.state().db)
        .await
        .unwrap();
    let second_id = second.id.to_string();
    assert!(records.iter().any(|r| r.node_id == second_id));
    assert!(
        records.iter().all(|r| r.node_id != second_id || !r.earning),
        "a job of the unpaid node was recorded as earning"
    );

    // The earning node leaves: relay 2's node is next in line.
    first.kill();
    r1.wait_nodes(0).await;
    settled("relay 2's node earns once relay 1's left", || {
        earns_on(&r2, second.id) == Some(true)
    })
    .await;
    // A node joining relay 1 now waits behind it.
    let third = TestNode::start(&r1.base, &allow);
    r1.wait_nodes(1).await;
    settled("a later node on relay 1 serves unpaid", || {
        earns_on(&r1, third.id) == Some(false) && earns_on(&r2, second.id) == Some(true)
    })
    .await;
    // Relay 2 dies without a word: once the cluster stops hearing from it,
    // relay 1's node earns.
    r2.kill();
    settled("relay 1's node earns once relay 2 is gone", || {
        earns_on(&r1, third.id) == Some(true)
    })
    .await;
    // And the dashboard's row says so (written just after the change).
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while spareband_ledger::inspect::node_earning(&r1.state().db, &third.id.to_string())
        .await
        .unwrap()
        != Some(true)
    {
        assert!(
            tokio::time::Instant::now() < end,
            "nodes.earning never became 1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The root OpenZeppelin's StandardMerkleTree gives `values` (address,
/// amount), with each of `proofs` checked against it, by the library
/// itself (`tests/tools/merkle-root.mjs`, run with Node).
fn openzeppelin_root(values: &[(String, String)], proofs: &[Value]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/merkle-root.mjs");
    let arg = json!({ "values": values, "proofs": proofs }).to_string();
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(arg)
        .output()
        .expect("node (npm test runs these tests with it)");
    assert!(
        out.status.success(),
        "merkle-root.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Three relays of one cluster record jobs, race to close the epochs due,
/// and close each once: every epoch is closed by exactly one of them,
/// its payouts' root is the one OpenZeppelin's library computes (every
/// proof verifying), and each delivered byte is in exactly one epoch.
/// Checked once with the ledger's advisory lock removed (a plain `begin`):
/// two of the relays failed on the epoch's primary key, twice in two runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_relays_racing_to_close_epochs_close_each_once_with_openzeppelins_root() {
    const PAYOUTS: [&str; 3] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];
    let nats = Nats::start();
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relays = three_relays_with(&nats, &allow, |c| c.epoch_secs = 1).await;
    let _nodes: Vec<TestNode> = relays
        .iter()
        .zip(PAYOUTS)
        .map(|(r, a)| TestNode::start_with(&r.base, &allow, |c| c.payout = Some(a.into())))
        .collect();
    for r in &relays {
        r.wait_nodes(1).await;
    }
    // Jobs through every relay, over a few epochs.
    let key = relays[0].key.clone();
    for round in 0..12 {
        for (i, r) in relays.iter().enumerate() {
            let customer = spareband_tests::customer::Customer::new(&r.base, &key);
            let url = target.url(&format!("/bytes?n={}&seed={round}", 1000 + 997 * i));
            let (status, body) = customer.fetch(json!({ "url": url })).await;
            assert_eq!(status, 200, "{body}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Past the last job's epoch and the close delay, the three race.
    tokio::time::sleep(spareband_ledger::rewards::CLOSE_DELAY + Duration::from_millis(1500)).await;
    let close = |r: &TestRelay| {
        let s = r.state().clone();
        async move {
            spareband_ledger::rewards::close_due(&s.db, s.config.epoch(), s.config.reward_per_gib.0)
                .await
                .unwrap()
        }
    };
    let (a, b, c) = tokio::join!(close(&relays[0]), close(&relays[1]), close(&relays[2]));
    let mut closed: Vec<i64> = [a, b, c].iter().flatten().map(|e| e.epoch).collect();
    let raced = closed.len();
    closed.sort();
    closed.dedup();
    assert_eq!(closed.len(), raced, "an epoch was closed twice: {closed:?}");

    // Every closed epoch, as any relay publishes it.
    let reader = spareband_tests::customer::Customer::new(&relays[1].base, &key);
    let get = |path: String| {
        let reader = reader.clone();
        async move { reader.get_json(&path).await }
    };
    let (_, list) = get("/v1/rewards/epochs".into()).await;
    let epochs = list["epochs"].as_array().unwrap().clone();
    let numbers: Vec<i64> = epochs
        .iter()
        .map(|e| e["epoch"].as_i64().unwrap())
        .collect();
    let mut unique = numbers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        numbers.len(),
        "epochs listed twice: {numbers:?}"
    );
    let (mut paid_bytes, mut roots) = (0u64, 0);
    for e in &epochs {
        paid_bytes += e["total_bytes"].as_u64().unwrap() + e["unassigned_bytes"].as_u64().unwrap();
        let Some(root) = e["merkle_root"].as_str() else {
            continue;
        };
        let (mut values, mut proofs) = (Vec::new(), Vec::new());
        for a in PAYOUTS {
            let (status, p) = get(format!("/v1/rewards/epochs/{}/{a}", e["epoch"])).await;
            if status == 200 {
                values.push((a.to_string(), p["amount"].as_str().unwrap().to_string()));
                proofs.push(p["proof"].clone());
            }
        }
        assert_eq!(values.len() as u64, e["payouts"].as_u64().unwrap(), "{e}");
        assert_eq!(openzeppelin_root(&values, &proofs), root, "epoch {e}");
        roots += 1;
    }
    assert!(
        roots >= 2,
        "jobs over a few epochs, each with a root: {epochs:?}"
    );
    // Every byte delivered is in exactly one epoch.
    let records = spareband_ledger::inspect::usage_records(&relays[0].state().db)
        .await
        .unwrap();
    let delivered: u64 = records.iter().map(|r| r.bytes_up + r.bytes_down).sum();
    assert_eq!(paid_bytes, delivered);
}
