//! Streaming: large bodies, flow control against a slow customer, nodes that
//! die mid-job, and retries.

use http_body_util::BodyExt;
use serde_json::json;
use spareband_protocol::limits::STREAM_WINDOW;
use spareband_tests::customer::enc;
use spareband_tests::target::Target;
use spareband_tests::{pattern, sha256_hex, TestNode, TestRelay};
use std::time::{Duration, Instant};

const EIGHT_MIB: usize = 8 * 1024 * 1024;

#[tokio::test]
async fn an_8_mib_raw_response_arrives_byte_for_byte() {
    let (target, relay, _node) = spareband_tests::one_node().await;
    let url = target.url(&format!("/bytes?n={EIGHT_MIB}&seed=42"));
    let res = relay
        .customer()
        .raw("GET", &format!("url={}", enc(&url)), None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-length"],
        EIGHT_MIB.to_string().as_str()
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), EIGHT_MIB);
    assert_eq!(sha256_hex(&body), sha256_hex(&pattern(EIGHT_MIB, 42)));
}

#[tokio::test]
async fn a_slow_customer_never_makes_the_relay_hold_more_than_the_window() {
    let (target, relay, _node) = spareband_tests::one_node().await;
    let n = 4 * 1024 * 1024;
    let url = target.url(&format!("/bytes?n={n}&seed=9"));
    let res = relay
        .customer()
        .raw("GET", &format!("url={}", enc(&url)), None)
        .await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut got = Vec::with_capacity(n);
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            got.extend_from_slice(&d);
        }
        frames += 1;
        // Read slowly at first, long enough for the node to fill any buffer
        // the relay would let it fill.
        if frames < 40 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    assert_eq!(sha256_hex(&got), sha256_hex(&pattern(n, 9)));
    let peak = relay.state().metrics.stream_buffer_peak();
    assert!(
        peak > 0,
        "the stream buffered nothing at all, so the test measured nothing"
    );
    assert!(
        peak <= STREAM_WINDOW as usize,
        "the relay held {peak} bytes for one stream, more than the {STREAM_WINDOW}-byte window"
    );
}

#[tokio::test]
async fn a_node_killed_mid_response_gives_a_clean_error_not_a_hang() {
    let (target, relay, mut node) = spareband_tests::one_node().await;
    let url = target.url("/drip?n=70000");
    let res = relay
        .customer()
        .raw("GET", &format!("url={}&timeout_ms=120000", enc(&url)), None)
        .await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    node.kill();
    let started = Instant::now();
    // The job's own deadline is two minutes away: only noticing the dead node
    // ends this body early.
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(()),
            }
        }
    })
    .await
    .expect("the customer was left hanging after the node died");
    assert!(
        end.is_err(),
        "a truncated body must end in an error, not look complete"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // The JSON mode says so in words.
    let mut node2 = TestNode::start(&relay.base, &[target.host_port()]);
    relay.wait_nodes(1).await;
    let c = relay.customer();
    let handle =
        tokio::spawn(async move { c.fetch(json!({"url": url, "timeout_ms": 120000})).await });
    spareband_tests::wait_for("the drip request reached the target", || target.hits() >= 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    node2.kill();
    let (status, v) = handle.await.unwrap();
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "node_failed");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disconnected"));
}

#[tokio::test]
async fn a_get_whose_node_dies_before_answering_succeeds_on_another_node() {
    let (target, relay, mut first) = spareband_tests::one_node().await;
    let c = relay.customer();
    let url = target.url("/stall-first");
    let call = tokio::spawn(async move { c.fetch(json!({"url": url, "timeout_ms": 20000})).await });
    spareband_tests::wait_for("the first attempt reached the target", || {
        target.hits() == 1
    })
    .await;
    let second = TestNode::start(&relay.base, &[target.host_port()]);
    relay.wait_nodes(2).await;
    first.kill();
    let (status, v) = call.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(spareband_tests::customer::body_of(&v), b"second try");
    assert_eq!(v["node"], second.id.to_string());
    assert!(relay
        .state()
        .metrics
        .render()
        .contains("spareband_retries_total 1"));
}

#[tokio::test]
async fn a_post_is_not_retried_when_its_node_dies() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let mut first = TestNode::start(&relay.base, &allow);
    let _second = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(2).await;
    // Both nodes are idle; the POST lands on one of them. Kill whichever got it.
    let c = relay.customer();
    let url = target.url("/stall");
    let call = tokio::spawn(async move {
        c.fetch(json!({"url": url, "method": "POST", "body": "aGk=", "timeout_ms": 20000}))
            .await
    });
    spareband_tests::wait_for("the POST reached the target", || target.hits() == 1).await;
    let busy = relay
        .state()
        .registry
        .all()
        .into_iter()
        .find(|n| n.active() == 1)
        .expect("one node is busy")
        .id;
    if busy == first.id {
        first.kill();
    } else {
        drop(_second);
    }
    let (status, v) = call.await.unwrap();
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (502, Some("node_failed")),
        "{v}"
    );
    assert_eq!(target.hits(), 1, "a POST must never be sent twice");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let (target, mut relay, _node) = spareband_tests::one_node().await;
    let c = relay.customer();
    let n = 2 * 1024 * 1024;
    let url = target.url(&format!("/bytes?n={n}&seed=5"));
    let res = c.raw("GET", &format!("url={}", enc(&url)), None).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    // Shut down while the body is still streaming.
    let token = relay.relay.as_ref().unwrap().shutdown_token();
    token.cancel();
    let mut got = first.to_vec();
    while let Some(f) = body.frame().await {
        got.extend_from_slice(&f.unwrap().into_data().unwrap_or_default());
    }
    assert_eq!(sha256_hex(&got), sha256_hex(&pattern(n, 5)));
    tokio::time::timeout(Duration::from_secs(10), relay.shutdown())
        .await
        .expect("the relay stops within its grace period");
}

#[tokio::test]
async fn a_large_stalled_download_does_not_starve_other_jobs_on_the_same_node() {
    let (target, relay, node) = spareband_tests::one_node().await;
    let c = relay.customer();
    let big = target.url(&format!("/bytes?n={}&seed=1", 64 * 1024 * 1024));
    let res = c
        .raw("GET", &format!("url={}&timeout_ms=120000", enc(&big)), None)
        .await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    // The big body is now stalled on the customer's side, with its window in
    // flight on the node's one connection. Small jobs on that connection
    // still go through.
    for i in 0..20u64 {
        let (s, v) = c
            .fetch(
                json!({"url": target.url(&format!("/bytes?n=5000&seed={i}")), "timeout_ms": 5000}),
            )
            .await;
        assert_eq!(s, 200, "small job {i} behind the stalled download: {v}");
        assert_eq!(spareband_tests::customer::body_of(&v), pattern(5000, i));
        assert_eq!(v["node"], node.id.to_string());
    }
    drop(body);
}

#[tokio::test]
async fn a_customer_who_hangs_up_cancels_the_job_on_the_node() {
    let (target, relay, _node) = spareband_tests::one_node().await;
    let url = target.url("/drip?n=1000");
    let res = relay
        .customer()
        .raw("GET", &format!("url={}&timeout_ms=120000", enc(&url)), None)
        .await;
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    let state = relay.state().clone();
    assert_eq!(state.registry.all()[0].active(), 1);
    drop(body);
    spareband_tests::wait_for("the job's slot to be freed", || {
        state.registry.all()[0].active() == 0
    })
    .await;
    assert!(state
        .metrics
        .render()
        .contains("spareband_jobs_total{outcome=\"cancelled\"} 1"));
}
