//! The admin dashboard over real sockets: every route refuses a request
//! without a sign-in, signing in sets a locked-down cookie, CSRF and cross-site
//! requests are refused, failures lock an address out, and every figure the
//! dashboard shows adds up to the ledger to the byte.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use spareband_ledger::inspect::{self, SeedNode};
use spareband_ledger::JobOutcome;
use spareband_relay::admin::{PUBLIC_ROUTES, ROUTES};
use spareband_relay::secret::AdminToken;
use spareband_tests::{target, wait_for, TestNode, TestRelay};

pub(crate) const TOKEN: &str = "dashboard-token-for-tests-0001";
const PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

pub(crate) struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

pub(crate) struct Browser {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Browser {
    pub(crate) fn new(base: &str) -> Self {
        Browser {
            base: base.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .expect("relay answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn sign_in(&self, token: &str) -> Reply {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        self.send(
            "POST",
            "/admin/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            &form,
        )
        .await
    }

    /// Signs in; returns the `Cookie` header value.
    pub(crate) async fn signed_in_cookie(&self) -> String {
        let r = self.sign_in(TOKEN).await;
        assert_eq!(r.status, 303, "{}", r.text());
        let set = r.header("set-cookie").expect("a sign-in cookie");
        set.split(';').next().unwrap().to_string()
    }

    pub(crate) async fn get(&self, path: &str, cookie: &str) -> Reply {
        self.send("GET", path, &[("cookie", cookie)], "").await
    }
}

async fn relay_with_admin(allow: &[String]) -> TestRelay {
    TestRelay::start_with(allow, |c| {
        c.admin_token = Some(AdminToken::from_clear(TOKEN).unwrap());
    })
    .await
}

fn concrete(path: &str) -> String {
    path.replace("{id}", &"ab".repeat(16))
        .replace("{epoch}", "1")
}

#[tokio::test]
async fn every_admin_route_refuses_a_request_without_a_sign_in() {
    let relay = relay_with_admin(&[]).await;
    let b = Browser::new(&relay.base);
    for (method, path) in ROUTES {
        let path = concrete(path);
        for cookie in ["", "sb_admin=0123456789abcdef", "sb_admin="] {
            let headers: Vec<(&str, &str)> = if cookie.is_empty() {
                vec![]
            } else {
                vec![("cookie", cookie)]
            };
            let r = b.send(&method.to_uppercase(), &path, &headers, "").await;
            assert_eq!(
                r.status,
                401,
                "{method} {path} with '{cookie}': {}",
                r.text()
            );
            if path.starts_with("/admin/api/") {
                assert_eq!(r.json()["error"]["code"], "unauthorized");
            } else {
                assert!(r.text().contains("action=\"/admin/login\""), "{path}");
            }
        }
    }
    // The sign-in page itself is reachable.
    assert_eq!(b.send("GET", "/admin/login", &[], "").await.status, 200);

    // Without an admin token, the dashboard does not exist at all.
    let off = TestRelay::start(&[]).await;
    let b = Browser::new(&off.base);
    for (method, path) in ROUTES.iter().chain(PUBLIC_ROUTES) {
        let r = b
            .send(&method.to_uppercase(), &concrete(path), &[], "")
            .await;
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(r.json()["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn sign_in_sets_a_locked_down_cookie_and_state_changes_need_the_csrf_token() {
    let relay = relay_with_admin(&[]).await;
    let b = Browser::new(&relay.base);

    let page = b.send("GET", "/admin/login", &[], "").await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));

    // A wrong token: refused, with the same words whatever part was wrong.
    let mut answers = Vec::new();
    for wrong in ["x", &TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")] {
        let r = b.sign_in(wrong).await;
        assert_eq!(r.status, 401);
        assert!(r.header("set-cookie").is_none());
        answers.push(r.text());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    assert!(answers[0].contains("That token is not right."));
    // An empty or oversized form, and a cross-site sign-in.
    assert_eq!(b.sign_in("").await.status, 400);
    let big = format!("token={}", "a".repeat(10_000));
    let r = b
        .send(
            "POST",
            "/admin/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            &big,
        )
        .await;
    assert_eq!(r.status, 413);
    let form = format!("token={TOKEN}");
    let r = b
        .send(
            "POST",
            "/admin/login",
            &[
                ("origin", "https://evil.example"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &form,
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());

    // The right token.
    let r = b.sign_in(TOKEN).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/admin"));
    let set = r.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/admin"] {
        assert!(set.contains(flag), "{set} lacks {flag}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let shell = b.get("/admin", &cookie).await;
    assert_eq!(shell.status, 200);
    let html = shell.text();
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert_eq!(csrf.len(), 64);
    assert_eq!(b.get("/admin/api/overview", &cookie).await.status, 200);
    // The token never appears in what the relay serves or logs.
    assert!(!html.contains(TOKEN));

    // State changes: no CSRF token, a wrong one, or a cross-site origin are refused.
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str()), ("x-csrf-token", "00")],
        vec![
            ("cookie", cookie.as_str()),
            ("x-csrf-token", csrf.as_str()),
            ("origin", "https://evil.example"),
        ],
        vec![
            ("cookie", cookie.as_str()),
            ("x-csrf-token", csrf.as_str()),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        let r = b.send("POST", "/admin/logout", &headers, "").await;
        assert_eq!(r.status, 403, "{headers:?}");
        assert_eq!(r.json()["error"]["code"], "forbidden");
    }
    assert_eq!(b.get("/admin/api/overview", &cookie).await.status, 200);
    let r = b
        .send(
            "POST",
            "/admin/logout",
            &[("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())],
            "",
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(b.get("/admin/api/overview", &cookie).await.status, 401);
}

#[tokio::test]
async fn repeated_failures_are_slowed_and_then_locked_out() {
    let relay = relay_with_admin(&[]).await;
    let b = Browser::new(&relay.base);
    let mut took = Vec::new();
    for _ in 0..spareband_relay::admin::auth::MAX_FAILURES {
        let t = std::time::Instant::now();
        assert_eq!(b.sign_in("not-the-token").await.status, 401);
        took.push(t.elapsed());
    }
    assert!(took.last().unwrap() > &took[0], "{took:?}");
    // Now even the right token is refused until the window passes.
    let r = b.sign_in(TOKEN).await;
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= spareband_relay::admin::auth::FAILURE_WINDOW.as_secs());
    assert!(r.header("set-cookie").is_none());
}

/// Behind a reverse proxy on the relay's machine (`trusted_proxies =
/// ["127.0.0.1"]`), failures count against the client the proxy names, so an
/// attacker locks out only itself, even when it puts garbage in its own
/// `X-Forwarded-For`. With the old parsing (garbage anywhere made the proxy
/// the client), the attacker's own address is never locked and this test
/// fails: checked once by hand.
#[tokio::test]
async fn behind_a_trusted_proxy_only_the_attacker_is_locked_out() {
    let relay = TestRelay::start_with(&[], |c| {
        c.admin_token = Some(AdminToken::from_clear(TOKEN).unwrap());
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let b = Browser::new(&relay.base);
    let form = |token: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish()
    };
    let from = |xff: &'static str| {
        [
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-forwarded-for", xff),
        ]
    };
    for _ in 0..spareband_relay::admin::auth::MAX_FAILURES {
        let r = b
            .send(
                "POST",
                "/admin/login",
                &from("garbage, 203.0.113.9"),
                &form("wrong"),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = b
        .send("POST", "/admin/login", &from("203.0.113.9"), &form(TOKEN))
        .await;
    assert_eq!(r.status, 429, "the attacker is locked out");
    let r = b
        .send("POST", "/admin/login", &from("198.51.100.7"), &form(TOKEN))
        .await;
    assert_eq!(r.status, 303, "the admin is not: {}", r.text());
}

/// Sums straight from the stored records for one node: (ok bytes, ok jobs,
/// failed jobs).
async fn ledger_sums(relay: &TestRelay, node: &str) -> (i64, i64, i64) {
    let records = inspect::usage_records(&relay.state().db).await.unwrap();
    records
        .iter()
        .filter(|r| r.node_id == node)
        .fold((0, 0, 0), |(bytes, ok, failed), r| match r.outcome {
            JobOutcome::Ok => (bytes + (r.bytes_up + r.bytes_down) as i64, ok + 1, failed),
            JobOutcome::NodeFailed | JobOutcome::Timeout => (bytes, ok, failed + 1),
            JobOutcome::Cancelled | JobOutcome::Refused => (bytes, ok, failed),
        })
}

#[tokio::test]
async fn the_dashboard_adds_up_to_the_ledger_to_the_byte() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = relay_with_admin(&allow).await;
    let node = TestNode::start_with(&relay.base, &allow, |c| c.payout = Some(PAYOUT.into()));
    let bare = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(2).await;
    let node_id = node.id.to_string();
    let bare_id = bare.id.to_string();
    let customer = relay.customer();
    let mut jobs = 0;
    for (i, n) in [0usize, 1, 999, 4096, 65_537, 300_001].iter().enumerate() {
        let (status, body) = customer
            .fetch(json!({"url": target.url(&format!("/bytes?n={n}&seed={i}"))}))
            .await;
        assert_eq!(status, 200, "{body}");
        jobs += 1;
    }
    let b = Browser::new(&relay.base);
    let cookie = b.signed_in_cookie().await;
    let state = relay.state().clone();
    wait_for("every job in the ledger", || {
        state.ledger.queue_depth() == 0
    })
    .await;
    // Wait for the records to be committed with their aggregates.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (a, _, _) = ledger_sums(&relay, &node_id).await;
        let (c, _, _) = ledger_sums(&relay, &bare_id).await;
        let n = inspect::usage_record_count(&relay.state().db)
            .await
            .unwrap() as i64;
        if n >= jobs && a + c > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ledger incomplete");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let page = b.get("/admin/api/nodes?per_page=10", &cookie).await.json();
    assert_eq!(page["total"], 2);
    let rate: u128 = page["epoch"]["reward_per_gib"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut total_bytes = 0;
    for (id, paid) in [(&node_id, true), (&bare_id, false)] {
        let row = page["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} missing: {page}"));
        let (bytes, ok, failed) = ledger_sums(&relay, id).await;
        total_bytes += bytes;
        assert_eq!(row["bytes_all"], bytes, "{row}");
        assert_eq!(row["bytes_epoch"], bytes);
        assert_eq!(row["jobs_ok"], ok);
        assert_eq!(row["jobs_failed"], failed);
        assert_eq!(row["online"], true);
        assert_eq!(row["client_kind"], "native");
        let expected = if paid {
            spareband_ledger::rewards::math::reward(bytes as u64, rate).unwrap()
        } else {
            0
        };
        assert_eq!(row["earnings_epoch"], expected.to_string());
        assert_eq!(row["earnings_all"], expected.to_string());
        assert_eq!(
            row["payout_address"],
            if paid { json!(PAYOUT) } else { Value::Null }
        );
        // The node's page: the hourly chart adds up to the same bytes.
        let detail = b
            .get(&format!("/admin/api/nodes/{id}"), &cookie)
            .await
            .json();
        assert_eq!(detail["bytes_all"], bytes);
        let hourly: i64 = detail["hours"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["bytes"].as_i64().unwrap())
            .sum();
        assert_eq!(hourly, bytes);
        assert_eq!(detail["hours"].as_array().unwrap().len(), 48);
    }
    let overview = b.get("/admin/api/overview", &cookie).await.json();
    assert_eq!(overview["nodes_online"], 2);
    assert_eq!(overview["bytes_24h"], total_bytes);
    assert_eq!(overview["jobs_ok_24h"], jobs);
    assert_eq!(overview["success_rate_24h"], 1.0);
    assert_eq!(overview["top_customers"][0]["requests"], jobs);
    assert_eq!(overview["top_customers"][0]["bytes"], total_bytes);

    // The CSV carries the same figures.
    let csv = b.get("/admin/api/nodes.csv", &cookie).await;
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    let text = csv.text();
    let line = text.lines().find(|l| l.starts_with(&node_id)).unwrap();
    let (bytes, _, _) = ledger_sums(&relay, &node_id).await;
    assert!(line.contains(&format!(",{bytes},{bytes},")), "{line}");

    // Close the epoch: earnings move from "this epoch" to closed epochs, and
    // the per-epoch export lists what the node was paid.
    let closed = spareband_ledger::rewards::close_epoch(
        &relay.state().db,
        spareband_ledger::clock::now_ms() + 1,
        relay.state().config.epoch(),
        rate,
    )
    .await
    .unwrap()
    .unwrap();
    let detail = b
        .get(&format!("/admin/api/nodes/{node_id}"), &cookie)
        .await
        .json();
    let amount = spareband_ledger::rewards::math::reward(bytes as u64, rate).unwrap();
    // One epoch number: closed early, the epoch keeps the index the
    // dashboard showed while it ran, and its period is given in full.
    assert_eq!(closed.epoch, page["epoch"]["index"].as_i64().unwrap());
    assert_eq!(closed.start_ms, page["epoch"]["start_ms"].as_i64().unwrap());
    assert_eq!(detail["epochs"][0]["epoch"], closed.epoch);
    assert_eq!(detail["epochs"][0]["amount"], amount.to_string());
    // Still the same aligned epoch, so "this epoch" also counts those bytes;
    // all time is closed epochs plus this epoch.
    assert_eq!(detail["earnings_all"], (amount + amount).to_string());
    let csv = b
        .get(
            &format!("/admin/api/epochs/{}/nodes.csv", closed.epoch),
            &cookie,
        )
        .await
        .text();
    assert!(
        csv.contains(&format!(
            "{},{node_id},{PAYOUT},{bytes},{amount}",
            closed.epoch
        )),
        "{csv}"
    );
    let epochs = b.get("/admin/api/epochs", &cookie).await.json();
    assert_eq!(epochs["epochs"][0]["merkle_root"], json!(closed.root));
    // A node id or epoch that is malformed or unknown gets a specific error.
    assert_eq!(b.get("/admin/api/nodes/zz", &cookie).await.status, 400);
    let r = b
        .get(&format!("/admin/api/nodes/{}", "0".repeat(32)), &cookie)
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    assert_eq!(
        b.get("/admin/api/epochs/x/nodes.csv", &cookie).await.status,
        400
    );
    assert_eq!(
        b.get("/admin/api/epochs/999/nodes.csv", &cookie)
            .await
            .status,
        404
    );
    drop(node);
    drop(bare);
}

#[tokio::test]
async fn the_nodes_table_sorts_filters_and_pages_ten_thousand_nodes() {
    let relay = relay_with_admin(&[]).await;
    // Ten thousand nodes with varied totals, written as the relay would.
    let seeds: Vec<SeedNode> = (0..10_000i64)
        .map(|i| SeedNode {
            node_id: format!("{i:032x}"),
            client_kind: if i % 3 == 0 { "native" } else { "extension" }.into(),
            last_seen: i,
            country: Some(if i % 2 == 0 { "DE" } else { "FR" }.into()),
            online: i % 5 == 0,
            bytes_up: (i * 7919) % 10_007,
            bytes_down: (i * 104_729) % 1_000_003,
            jobs_ok: i % 97,
            jobs_failed: i % 13,
        })
        .collect();
    inspect::seed_nodes(&relay.state().db, &seeds)
        .await
        .unwrap();
    let b = Browser::new(&relay.base);
    let cookie = b.signed_in_cookie().await;

    let page = b
        .get(
            "/admin/api/nodes?sort=bytes_all&order=desc&per_page=500",
            &cookie,
        )
        .await
        .json();
    assert_eq!(page["total"], 10_000);
    let values: Vec<i64> = page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["bytes_all"].as_i64().unwrap())
        .collect();
    assert_eq!(values.len(), 500);
    assert!(values.windows(2).all(|w| w[0] >= w[1]));
    let max = seeds
        .iter()
        .map(|s| s.bytes_up + s.bytes_down)
        .max()
        .unwrap();
    assert_eq!(values[0], max);

    // Pages tile the whole table with no row twice.
    let mut seen = std::collections::HashSet::new();
    for p in 1..=20 {
        let page = b
            .get(
                &format!("/admin/api/nodes?sort=success_rate&order=asc&per_page=500&page={p}"),
                &cookie,
            )
            .await
            .json();
        for n in page["nodes"].as_array().unwrap() {
            assert!(seen.insert(n["node_id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(seen.len(), 10_000);

    // Filters combine: native (i % 3 == 0) and online (i % 5 == 0) is i % 15 == 0.
    let page = b
        .get(
            "/admin/api/nodes?kind=native&status=online&per_page=1",
            &cookie,
        )
        .await
        .json();
    assert_eq!(page["total"], 667);
    let page = b
        .get("/admin/api/nodes?q=00000000270f", &cookie)
        .await
        .json();
    assert_eq!(page["total"], 1);
    assert_eq!(page["nodes"][0]["node_id"], format!("{:032x}", 9999));
    // LIKE wildcards in the search are literal.
    assert_eq!(
        b.get("/admin/api/nodes?q=%25", &cookie).await.json()["total"],
        0
    );
    let page = b
        .get("/admin/api/nodes?q=FR&sort=node_id&order=asc", &cookie)
        .await
        .json();
    assert_eq!(page["total"], 5000);
    assert_eq!(page["nodes"][0]["node_id"], format!("{:032x}", 1));
    // Bad parameters are named.
    let r = b.get("/admin/api/nodes?sort=bytes_all;DROP", &cookie).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("sort must be one of"));
}
