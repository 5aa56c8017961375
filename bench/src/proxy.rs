//! Scenario 9: the proxy port beside the raw API, in one run, on one relay
//! (plain HTTP, as the raw tunnel of scenario 1 is) with one native node.
//! Small requests (1 KiB) three ways: `/v1/raw`, the HTTP proxy in absolute
//! form, and keep-alive requests inside one `CONNECT` tunnel per customer
//! connection (`mode-tunnel`), and to an https target with `mode-fetch`
//! (the customer's TLS ended by the relay with its proxy CA, each request
//! inside run as an https job, which the node fetches over its own TLS);
//! then one large body through `/v1/raw` and through a tunnel, three times
//! each, alternating, in Gbit/s (goal: the tunnel's median at least as fast
//! as the raw API's).

use crate::load::{self, Endpoint};
use crate::procs::{free_port, Relay};
use crate::report::{ms, Row};
use crate::scenarios::{Plan, CUSTOMERS};
use base64::Engine;
use std::net::SocketAddr;
use std::time::Duration;

/// Large transfers each way; the median of each is compared.
const LARGE_ROUNDS: usize = 3;

/// The 1 KiB load of one row, from [`CUSTOMERS`] connections.
async fn small_load(
    plan: &Plan,
    end: &Endpoint,
    spec: &load::Spec,
    what: &str,
) -> anyhow::Result<load::LoadResult> {
    let r = load::run(end, spec, CUSTOMERS, plan.warmup, plan.load).await?;
    r.explain(what);
    Ok(r)
}

/// Runs the scenario.
pub async fn run(plan: &Plan, target: SocketAddr) -> anyhow::Result<Vec<Row>> {
    let port = free_port()?;
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let (https_target, target_pem) = crate::target::start_tls()?;
    let relay = Relay::start_configured(
        &[target, https_target],
        false,
        &format!("proxy_listen = \"{proxy}\"\n"),
        &[],
    )
    .await?;
    // The node trusts the https target's certificate (a development flag).
    let target_ca = relay.dir.path().join("https-target.pem");
    std::fs::write(&target_ca, &target_pem)?;
    let _node = relay.start_nodes_with(
        1,
        &[target, https_target],
        &["--trust-target-ca".into(), target_ca.display().to_string()],
    )?;
    relay.wait_nodes(1, Duration::from_secs(30)).await?;
    let basic = |user: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", relay.key))
        )
    };
    let auth = basic("bench");
    let small = |path: String, proxy_auth: Option<String>| load::Spec {
        path,
        auth: None,
        expect_len: 1024,
        proxy_auth,
    };
    let raw = small_load(plan, &relay.endpoint(), &relay.raw(target, 1024), "raw API").await?;
    let absolute = small_load(
        plan,
        &Endpoint::Plain(proxy),
        &small(format!("http://{target}/bytes?n=1024"), Some(auth.clone())),
        "proxy, absolute form",
    )
    .await?;
    let tunnel_end = Endpoint::Connect {
        proxy,
        target,
        auth: auth.clone(),
        tls: None,
    };
    let inside = small("/bytes?n=1024".into(), None);
    let tunnel = small_load(plan, &tunnel_end, &inside, "CONNECT tunnel").await?;
    // mode-fetch: the customer trusts the relay's proxy CA.
    let proxy_ca = relay.get("/v1/proxy-ca.pem").await?;
    let fetch_end = Endpoint::Connect {
        proxy,
        target: https_target,
        auth: basic("bench-mode-fetch"),
        tls: Some(load::trust_pem(proxy_ca.as_bytes())?),
    };
    let fetch = small_load(plan, &fetch_end, &inside, "CONNECT mode-fetch").await?;
    // One large body each way, three times, alternating, so that both see
    // the same moments of a noisy machine; the medians are compared.
    let n = plan.large_bytes;
    load::fetch_counting(&relay.endpoint(), &relay.raw(target, 1 << 20), None).await?;
    let big = load::Spec {
        path: format!("/bytes?n={n}"),
        auth: None,
        expect_len: n as usize,
        proxy_auth: None,
    };
    let (mut raw_ts, mut tunnel_ts) = (Vec::new(), Vec::new());
    for _ in 0..LARGE_ROUNDS {
        let (got, t) = load::fetch_counting(&relay.endpoint(), &relay.raw(target, n), None).await?;
        anyhow::ensure!(got == n, "raw API: {got} of {n} bytes");
        raw_ts.push(t);
        let (got, t) = load::fetch_counting(&tunnel_end, &big, None).await?;
        anyhow::ensure!(got == n, "tunnel: {got} of {n} bytes");
        tunnel_ts.push(t);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (raw_t, tunnel_t) = (median(raw_ts), median(tunnel_ts));
    let gbit = |d: Duration| n as f64 * 8.0 / d.as_secs_f64() / 1e9;
    let s = "9 proxy port";
    let rps = |r: &load::LoadResult| format!("{:.0} (p50 {})", r.rps, ms(r.p50_us));
    Ok(vec![
        Row::info(
            s,
            "1 KiB requests/s, /v1/raw (plain)",
            rps(&raw),
            format!("{} failed", raw.errors),
        ),
        Row::info(
            s,
            "1 KiB requests/s, HTTP proxy, absolute form",
            rps(&absolute),
            format!(
                "{:.2}× raw, {} failed",
                absolute.rps / raw.rps,
                absolute.errors
            ),
        ),
        Row::info(
            s,
            "1 KiB requests/s inside CONNECT tunnels (mode-tunnel)",
            rps(&tunnel),
            format!("{:.2}× raw, {} failed", tunnel.rps / raw.rps, tunnel.errors),
        ),
        Row::info(
            s,
            "1 KiB requests/s inside CONNECT with mode-fetch (https jobs)",
            rps(&fetch),
            format!("{:.2}× raw, {} failed", fetch.rps / raw.rps, fetch.errors),
        ),
        Row::goal(
            s,
            &format!(
                "Gbit/s, {} MiB through a tunnel (median of {LARGE_ROUNDS})",
                n >> 20
            ),
            format!("{:.2}", gbit(tunnel_t)),
            format!("{:.2} through /v1/raw", gbit(raw_t)),
            ">= the raw API",
            tunnel_t <= raw_t,
        ),
    ])
}
