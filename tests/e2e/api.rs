//! The customer API: JSON and raw modes, and its error answers.

use http_body_util::BodyExt;
use serde_json::json;
use spareband_tests::customer::{body_of, enc};
use spareband_tests::target::Target;
use spareband_tests::{TestNode, TestRelay};

async fn setup() -> (Target, TestRelay, TestNode) {
    let (target, relay, node) = spareband_tests::one_node().await;
    (target, relay, node)
}

#[tokio::test]
async fn json_get_and_post_through_a_native_node() {
    let (target, relay, node) = setup().await;
    let c = relay.customer();

    let (status, v) = c.fetch(json!({"url": target.url("/hello")})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], 200);
    assert_eq!(body_of(&v), b"hello from the target");
    assert_eq!(v["node"], node.id.to_string());
    assert_eq!(v["job"].as_str().unwrap().len(), 32);
    assert!(v["elapsed_ms"].is_u64());
    // Metered bytes follow the protocol's definition: URL and header bytes up,
    // header and body bytes down.
    let url_len = target.url("/hello").len() as u64;
    assert_eq!(v["bytes"]["up"], url_len);
    let header_bytes: u64 = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap().len() + h[1].as_str().unwrap().len()) as u64)
        .sum();
    assert_eq!(v["bytes"]["down"], header_bytes + 21);

    let payload = spareband_tests::pattern(100_000, 7);
    use base64::Engine;
    let (status, v) = c
        .fetch(json!({
            "url": target.url("/echo"),
            "method": "post",
            "headers": {"content-type": "application/octet-stream", "x-test": "yes"},
            "body": base64::engine::general_purpose::STANDARD.encode(&payload),
        }))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(body_of(&v), payload);
    let headers = v["headers"].as_array().unwrap();
    assert!(headers.iter().any(|h| h[0] == "x-method" && h[1] == "POST"));
    let (_, _, seen) = target.requests().last().unwrap().clone();
    assert_eq!(seen["x-test"], "yes");
    assert_eq!(seen["content-length"], "100000");
}

#[tokio::test]
async fn raw_get_and_streamed_post() {
    let (target, relay, node) = setup().await;
    let c = relay.customer();

    let res = c
        .raw("GET", &format!("url={}", enc(&target.url("/hello"))), None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-spareband-node"],
        node.id.to_string().as_str()
    );
    assert_eq!(res.headers()["x-spareband-job"].len(), 32);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello from the target");

    let payload = spareband_tests::pattern(3 * 1024 * 1024 + 17, 3);
    let res = c
        .raw(
            "POST",
            &format!("url={}", enc(&target.url("/echo"))),
            Some(payload.clone()),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-method"], "POST");
    assert_eq!(
        res.headers()["x-body-sha256"],
        spareband_tests::sha256_hex(&payload).as_str()
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), payload.len());
    assert!(body[..] == payload[..]);
}

#[tokio::test]
async fn the_target_status_passes_through_raw_mode() {
    let (target, relay, _node) = setup().await;
    let res = relay
        .customer()
        .raw(
            "GET",
            &format!("url={}", enc(&target.url("/missing"))),
            None,
        )
        .await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("proxy-status").is_none());
}

#[tokio::test]
async fn bad_input_gets_specific_errors() {
    let (target, relay, _node) = setup().await;
    let c = relay.customer();
    let url = target.url("/hello");

    let (s, v) = c
        .fetch_raw_body(json!({"url": url}).to_string().into_bytes(), None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, v) = c
        .fetch_raw_body(
            json!({"url": url}).to_string().into_bytes(),
            Some("sb_wrong"),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let (s, v) = c
        .fetch_raw_body(b"{not json".to_vec(), Some(&relay.key))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));

    for (doc, what) in [
        (json!({"url": url, "colour": "red"}), "unknown field"),
        (json!({"url": url, "method": "CONNECT"}), "method"),
        (json!({"url": url, "headers": {"host": "x"}}), "host"),
        (
            json!({"url": url, "headers": {"x-forwarded-for": "1.2.3.4"}}),
            "x-forwarded-for",
        ),
        (json!({"url": url, "body": "***"}), "base64"),
        (json!({"url": url, "country": "Great Britain"}), "country"),
        (json!({"url": url, "timeout_ms": 0}), "timeout_ms"),
        (json!({"url": "not a url"}), "url"),
    ] {
        let (s, v) = c.fetch(doc.clone()).await;
        assert_eq!(s, 400, "{doc}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{doc}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(what),
            "{doc}: {v}"
        );
    }

    let huge = vec![b'a'; spareband_relay::api::fetch::MAX_JSON_REQUEST_BYTES + 10];
    let (s, v) = c.fetch_raw_body(huge, Some(&relay.key)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );

    // The request's own method in raw mode: 405 with `Allow` (RFC 9110).
    // Schemathesis found TRACE answered 400 before.
    let res = c.raw("TRACE", &format!("url={}", enc(&url)), None).await;
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.headers()["allow"],
        "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    );

    let res = c.raw("GET", "country=GB", None).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers()["proxy-status"]
        .to_str()
        .unwrap()
        .contains("error=http_request_error"));
    let res = c
        .raw("GET", &format!("url={}&colour=red", enc(&url)), None)
        .await;
    assert_eq!(res.status(), 400);
    let v: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"));
    assert_eq!(target.hits(), 0, "no bad request reached the target");
}

#[tokio::test]
async fn no_node_is_a_503_and_a_stalled_target_a_504() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let c = relay.customer();
    let (s, v) = c.fetch(json!({"url": target.url("/hello")})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("no_node_available"))
    );
    let res = c
        .raw("GET", &format!("url={}", enc(&target.url("/hello"))), None)
        .await;
    assert_eq!(res.status(), 503);
    assert!(res.headers()["proxy-status"]
        .to_str()
        .unwrap()
        .starts_with("spareband; error="));

    let _node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let (s, v) = c
        .fetch(json!({"url": target.url("/stall"), "timeout_ms": 500}))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (504, Some("timeout")));
    // The cancelled job freed its slot.
    let state = relay.state().clone();
    spareband_tests::wait_for("slot freed", || {
        state.registry.all().iter().all(|n| n.active() == 0)
    })
    .await;
}

#[tokio::test]
async fn health_openapi_and_unknown_routes() {
    let relay = TestRelay::start(&[]).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let get = |path: &str| {
        let uri: http::Uri = format!("{}{path}", relay.base).parse().unwrap();
        let client = client.clone();
        async move {
            let res = client.get(uri).await.unwrap();
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).ok(),
                body,
            )
        }
    };
    let (s, v, _) = get("/healthz").await;
    assert_eq!((s, v.unwrap()["status"].clone()), (200, json!("ok")));
    let (s, v, _) = get("/v1/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(v.unwrap()["openapi"], "3.1.0");
    let (s, v, _) = get("/v2/nothing").await;
    assert_eq!(
        (s, v.unwrap()["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (s, v, _) = get("/v1/fetch").await;
    assert_eq!(
        (s, v.unwrap()["error"]["code"].clone()),
        (405, json!("method_not_allowed"))
    );
    let (s, v, _) = get("/v1/node").await;
    assert_eq!(
        (s, v.unwrap()["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );
    let (s, _, body) = get("/metrics").await;
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains("spareband_nodes_connected 0"));
}

/// Checks a JSON value against the properties of an OpenAPI object schema:
/// every required key present, no key the schema does not list.
fn conforms(value: &serde_json::Value, schema: &serde_json::Value, doc: &serde_json::Value) {
    let schema = match schema.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
        None => schema,
    };
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("{value} is not an object"));
    for req in schema["required"].as_array().into_iter().flatten() {
        assert!(
            obj.contains_key(req.as_str().unwrap()),
            "missing {req} in {value}"
        );
    }
    for (k, v) in obj {
        let sub = props
            .get(k)
            .unwrap_or_else(|| panic!("undocumented field {k}"));
        if let Some(allowed) = sub.get("enum").and_then(|e| e.as_array()) {
            assert!(allowed.contains(v), "{k}={v} is not in the documented enum");
        }
        if v.is_object() {
            conforms(v, sub, doc);
        }
    }
}

#[tokio::test]
async fn openapi_describes_the_real_answers() {
    let doc: serde_json::Value = serde_json::from_str(spareband_relay::api::OPENAPI).unwrap();
    let schemas = &doc["components"]["schemas"];
    let (target, relay, _node) = setup().await;
    let c = relay.customer();
    let (s, v) = c.fetch(json!({"url": target.url("/hello")})).await;
    assert_eq!(s, 200);
    conforms(&v, &schemas["FetchResponse"], &doc);
    for doc_in in [json!({"url": "http://10.0.0.1/"}), json!({"nope": 1})] {
        let (_, v) = c.fetch(doc_in).await;
        conforms(&v, &schemas["Error"], &doc);
    }
}

/// `/metrics` after real jobs: counters and latency histograms move with
/// exactly the jobs sent, and a histogram's buckets add up to its count.
#[tokio::test]
async fn metrics_count_jobs_and_their_latencies() {
    let (target, relay, _node) = spareband_tests::one_node().await;
    let url = target.url("/bytes?n=1000&seed=1");
    for _ in 0..7 {
        let res = relay
            .customer()
            .raw(
                "GET",
                &format!("url={}", spareband_tests::customer::enc(&url)),
                None,
            )
            .await;
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
    }
    // The job's histogram is written when its body ends, just after the
    // customer has read it.
    let metrics = relay.state().metrics.clone();
    spareband_tests::wait_for("7 job durations", || metrics.job_duration.count() == 7).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let res = client
        .get(format!("{}/metrics", relay.base).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(value("spareband_nodes_connected "), 1.0);
    assert_eq!(value("spareband_jobs_total{outcome=\"ok\"} "), 7.0);
    for h in [
        "spareband_job_first_byte_seconds",
        "spareband_job_duration_seconds",
        "spareband_request_head_seconds",
    ] {
        assert_eq!(value(&format!("{h}_count ")), 7.0, "{h}");
        assert_eq!(value(&format!("{h}_bucket{{le=\"+Inf\"}} ")), 7.0, "{h}");
        let sum = value(&format!("{h}_sum "));
        assert!(sum > 0.0 && sum < 7.0 * 30.0, "{h} sum {sum}");
        // Cumulative: never decreasing from one bound to the next.
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{h}_bucket")))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{h}: {buckets:?}");
    }
}

/// A disabled key stops working: at once when the relay itself disables it,
/// within `KEY_CACHE_TTL` when another process (`keys disable`) changes the
/// database. With a cache that never expires the second half fails, and
/// without the invalidation in `AppState::disable_customer` the first half
/// does: both checked once by hand.
#[tokio::test]
async fn a_disabled_key_stops_working_at_once_here_and_within_the_ttl_from_elsewhere() {
    use spareband_relay::api::KEY_CACHE_TTL;
    use std::time::{Duration, Instant};
    let (target, relay, _node) = setup().await;
    let state = relay.state().clone();
    let hello = json!({"url": target.url("/hello")});
    let (id, other_key) = state.db.create_customer("second").await.unwrap();
    let other = spareband_tests::customer::Customer::new(&relay.base, other_key.reveal());
    assert_eq!(other.fetch(hello.clone()).await.0, 200, "and now cached");
    state.disable_customer(id).await.unwrap();
    assert_eq!(other.fetch(hello.clone()).await.0, 401);

    let c = relay.customer();
    assert_eq!(c.fetch(hello.clone()).await.0, 200, "and now cached");
    // What the CLI does: its own connection to the database.
    let cli = spareband_ledger::Db::connect(&relay.database)
        .await
        .unwrap();
    for id in cli.customers_named("test").await.unwrap() {
        cli.disable_customer(id).await.unwrap();
    }
    cli.close().await;
    let disabled_at = Instant::now();
    loop {
        let (s, v) = c.fetch(hello.clone()).await;
        if s == 401 {
            break;
        }
        assert_eq!(s, 200, "{v}");
        assert!(
            disabled_at.elapsed() < KEY_CACHE_TTL + Duration::from_secs(1),
            "the disabled key still works after {:?}",
            disabled_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/metrics` over real sockets. Without `metrics_token` it answers only
/// requests made straight from the relay's machine: not one carrying a
/// forwarding header, and not one whose loopback peer is a trusted proxy (a
/// reverse proxy on the same machine, which may add no header at all). With
/// the token it answers exactly the requests that carry it. With the old
/// check (loopback peer only) the proxied requests get 200 and this test
/// fails: checked once by hand.
#[tokio::test]
async fn metrics_are_refused_through_a_proxy_and_served_for_the_metrics_token() {
    use spareband_relay::secret::SecretToken;
    async fn status(base: &str, headers: &[(&str, &str)]) -> u16 {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let mut req = http::Request::get(format!("{base}/metrics"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = client.request(req.body(Default::default()).unwrap()).await;
        res.unwrap().status().as_u16()
    }
    let direct = TestRelay::start(&[]).await;
    assert_eq!(status(&direct.base, &[]).await, 200);
    for h in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
    ] {
        assert_eq!(status(&direct.base, &[h]).await, 401, "{h:?}");
    }
    let proxied =
        TestRelay::start_with(&[], |c| c.trusted_proxies = vec!["127.0.0.1".into()]).await;
    assert_eq!(status(&proxied.base, &[]).await, 401, "a same-host proxy");
    const TOKEN: &str = "metrics-token-for-tests-01";
    let scraped = TestRelay::start_with(&[], |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.metrics_token = Some(SecretToken::from_clear(TOKEN).unwrap());
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(status(&scraped.base, &[]).await, 401);
    let wrong = ("authorization", "Bearer metrics-token-for-tests-02");
    assert_eq!(status(&scraped.base, &[wrong]).await, 401);
    let right = ("authorization", bearer.as_str());
    assert_eq!(status(&scraped.base, &[right]).await, 200);
    let forwarded = ("x-forwarded-for", "203.0.113.9");
    assert_eq!(status(&scraped.base, &[right, forwarded]).await, 200);
}

/// A request's own session lifetime is bounded by the relay's
/// `max_session_ttl_secs` and needs a session. Checked once with the bound
/// removed from `jobs::run`: the two-minute lifetime was served.
#[tokio::test]
async fn a_session_lifetime_is_bounded_by_the_relay_and_needs_a_session() {
    let target = Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start_with(&allow, |c| c.max_session_ttl_secs = 60).await;
    let _node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let customer = relay.customer();
    let url = target.url("/hello");
    let (status, body) = customer
        .fetch(json!({"url": url, "session": "s", "session_ttl_secs": 30}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = customer
        .fetch(json!({"url": url, "session": "s", "session_ttl_secs": 120}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(60 s)"),
        "{body}"
    );
    let (status, body) = customer
        .fetch(json!({"url": url, "session_ttl_secs": 30}))
        .await;
    assert_eq!(status, 400, "{body}");
}
