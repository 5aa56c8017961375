//! The ledger end to end: every job the customer saw has one record, its
//! bytes agree to the byte with what the customer was told and with the
//! protocol's definition, and shutdown loses nothing.

use http_body_util::BodyExt;
use serde_json::json;
use spareband_tests::customer::enc;
use spareband_tests::TestRelay;
use std::collections::HashMap;

/// (up, down, outcome) per job id, straight from the database.
async fn ledger_rows(relay: &TestRelay) -> HashMap<String, (u64, u64, String, String)> {
    spareband_ledger::inspect::usage_records(&relay.state().db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.job_id,
                (
                    r.bytes_up,
                    r.bytes_down,
                    r.outcome.as_str().to_string(),
                    r.node_id,
                ),
            )
        })
        .collect()
}

async fn wait_rows(relay: &TestRelay, n: usize) -> HashMap<String, (u64, u64, String, String)> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = ledger_rows(relay).await;
        if rows.len() >= n {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ledger has {} of {n} records",
            rows.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn relay_count_protocol_definition_and_ledger_agree_to_the_byte() {
    let (target, relay, node) = spareband_tests::one_node().await;
    let c = relay.customer();
    // Sizes around the 64 KiB chunk and the 256 KiB window, odd chunkings.
    let cases: &[(usize, usize)] = &[
        (0, 1),
        (1, 1),
        (65_535, 7_000),
        (65_536, 65_536),
        (65_537, 1),
        (262_144, 100_000),
        (300_001, 4_096),
        (1_000_003, 333_333),
    ];
    let mut expected: HashMap<String, (u64, u64)> = HashMap::new();
    for (i, (n, chunk)) in cases.iter().enumerate() {
        let url = target.url(&format!("/bytes?n={n}&seed={i}&chunk={chunk}"));
        // JSON mode: the relay tells the customer the metered bytes.
        let (s, v) = c
            .fetch(json!({"url": url, "headers": {"x-case": i.to_string()}}))
            .await;
        assert_eq!(s, 200, "{v}");
        let headers: u64 = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap().len() + h[1].as_str().unwrap().len()) as u64)
            .sum();
        // The protocol's definition, computed independently here.
        let up = (url.len() + "x-case".len() + i.to_string().len()) as u64;
        let down = headers + *n as u64;
        assert_eq!(
            (
                v["bytes"]["up"].as_u64().unwrap(),
                v["bytes"]["down"].as_u64().unwrap()
            ),
            (up, down)
        );
        expected.insert(v["job"].as_str().unwrap().to_string(), (up, down));

        // Raw mode: the body streams; the ledger still agrees.
        let res = c.raw("GET", &format!("url={}", enc(&url)), None).await;
        let job = res.headers()["x-spareband-job"]
            .to_str()
            .unwrap()
            .to_string();
        let raw_headers: u64 = res
            .headers()
            .iter()
            .filter(|(k, _)| !k.as_str().starts_with("x-spareband-"))
            .map(|(k, v)| (k.as_str().len() + v.len()) as u64)
            .sum();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), *n);
        expected.insert(job, (url.len() as u64, raw_headers + *n as u64));
    }
    let rows = wait_rows(&relay, expected.len()).await;
    for (job, (up, down)) in &expected {
        let (lu, ld, outcome, node_id) = rows
            .get(job)
            .unwrap_or_else(|| panic!("no record for job {job}"));
        assert_eq!((lu, ld), (up, down), "job {job}");
        assert_eq!(outcome, "ok");
        assert_eq!(node_id, &node.id.to_string());
    }

    // The customer's usage adds up the same records.
    let usage_url = format!("{}/v1/usage", relay.base);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = http::Request::get(&usage_url)
        .header("authorization", format!("Bearer {}", relay.key))
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let u: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let sum_up: u64 = expected.values().map(|(u, _)| u).sum();
    let sum_down: u64 = expected.values().map(|(_, d)| d).sum();
    assert_eq!(u["total"]["requests"], expected.len() as u64);
    assert_eq!(u["total"]["bytes_up"], sum_up);
    assert_eq!(u["total"]["bytes_down"], sum_down);
    assert_eq!(u["days"].as_array().unwrap().len(), 1);

    let bad = http::Request::get(format!("{usage_url}?days=0"))
        .header("authorization", format!("Bearer {}", relay.key))
        .body(http_body_util::Empty::new())
        .unwrap();
    assert_eq!(client.request(bad).await.unwrap().status(), 400);
    let anon = http::Request::get(&usage_url)
        .body(http_body_util::Empty::new())
        .unwrap();
    assert_eq!(client.request(anon).await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_node_that_fails_a_job_gets_a_failed_record_and_earns_nothing() {
    let (target, relay, mut node) = spareband_tests::one_node().await;
    let url = target.url("/drip?n=5000");
    let res = relay
        .customer()
        .raw("GET", &format!("url={}&timeout_ms=60000", enc(&url)), None)
        .await;
    let job = res.headers()["x-spareband-job"]
        .to_str()
        .unwrap()
        .to_string();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    node.kill();
    while let Some(Ok(_)) = body.frame().await {}
    let rows = wait_rows(&relay, 1).await;
    let (_, down, outcome, node_id) = &rows[&job];
    assert_eq!(outcome, "node_failed");
    assert_eq!(node_id, &node.id.to_string());
    assert!(
        *down >= 5000,
        "the bytes carried are still recorded: {down}"
    );
}

#[tokio::test]
async fn graceful_shutdown_writes_every_record() {
    let (target, mut relay, _node) = spareband_tests::one_node().await;
    let c = relay.customer();
    let mut jobs = Vec::new();
    for _ in 0..50 {
        let (s, v) = c.fetch(json!({"url": target.url("/hello")})).await;
        assert_eq!(s, 200);
        jobs.push(v["job"].as_str().unwrap().to_string());
    }
    relay.shutdown().await;
    // Read what the relay left, with a fresh connection.
    let db = spareband_ledger::Db::connect(&relay.database)
        .await
        .unwrap();
    let stored: Vec<String> = spareband_ledger::inspect::usage_records(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.job_id)
        .collect();
    for j in &jobs {
        assert!(stored.contains(j), "job {j} was lost at shutdown");
    }
}

#[tokio::test]
async fn the_node_verifies_a_signed_receipt_for_every_delivered_job() {
    use std::sync::atomic::Ordering;
    let (target, relay, node) = spareband_tests::one_node().await;
    let c = relay.customer();
    let (mut up, mut down) = (0u64, 0u64);
    for i in 0..20u64 {
        let body = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            vec![b'x'; i as usize * 100],
        );
        let (s, v) = c
            .fetch(json!({"url": target.url(&format!("/bytes?n={}", i * 1000)), "method": "POST", "body": body}))
            .await;
        assert_eq!(s, 200, "{v}");
        up += v["bytes"]["up"].as_u64().unwrap();
        down += v["bytes"]["down"].as_u64().unwrap();
    }
    let r = node.receipts.clone();
    spareband_tests::wait_for("20 verified receipts", || {
        r.verified.load(Ordering::Relaxed) == 20
    })
    .await;
    assert_eq!(r.verified_up.load(Ordering::Relaxed), up);
    assert_eq!(r.verified_down.load(Ordering::Relaxed), down);
    assert_eq!(r.mismatched.load(Ordering::Relaxed), 0);
    assert_eq!(r.bad_signature.load(Ordering::Relaxed), 0);
    // The key the node pinned is the one the relay publishes.
    let published = hex::encode(relay.state().relay_key.0.verifying_key().to_bytes());
    assert_eq!(published.len(), 64);
}

/// Receipts wait up to `RECEIPT_DELAY` to be signed together; a relay that
/// shuts down sends the waiting ones before it says goodbye.
#[tokio::test]
async fn receipts_still_waiting_for_their_batch_are_sent_at_shutdown() {
    use std::sync::atomic::Ordering;
    let (target, mut relay, node) = spareband_tests::one_node().await;
    let c = relay.customer();
    for i in 0..5u64 {
        let (s, v) = c
            .fetch(json!({"url": target.url(&format!("/bytes?n={}", 100 + i))}))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // At once, well inside the batch delay: the batch timer has not fired.
    relay.shutdown().await;
    let r = node.receipts.clone();
    spareband_tests::wait_for("5 verified receipts", || {
        r.verified.load(Ordering::Relaxed) == 5
    })
    .await;
    assert_eq!(r.bad_signature.load(Ordering::Relaxed), 0);
}

/// The matrix is real: with `SPAREBAND_TEST_DB=postgres` the relay's ledger
/// is on PostgreSQL, otherwise on SQLite.
#[tokio::test]
async fn the_ledger_is_on_the_backend_the_run_asks_for() {
    let relay = spareband_tests::TestRelay::start(&[]).await;
    let expected = match std::env::var(spareband_tests::TEST_DB_VAR).as_deref() {
        Ok("postgres") => spareband_ledger::Backend::Postgres,
        _ => spareband_ledger::Backend::Sqlite,
    };
    assert_eq!(relay.state().db.backend(), expected);
    assert_eq!(relay.database.backend(), expected);
}
