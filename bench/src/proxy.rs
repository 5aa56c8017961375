//! Scenario 9: the proxy port beside the raw API, in one run, on one relay
//! (plain HTTP, as the raw tunnel of scenario 1 is) with one native node.
//! Small requests (1 KiB) three ways: `/v1/raw`, the HTTP proxy in absolute
//! form, and keep-alive requests inside one `CONNECT` tunnel per customer
//! connection (`mode-tunnel`); then one large body through `/v1/raw` and
//! through a tunnel, in Gbit/s (goal: the tunnel at least as fast as the
//! raw API). `mode-fetch` is not measured: it needs an https target, which
//! the benchmark's target is not.

use crate::load::{self, Endpoint};
use crate::procs::{free_port, Relay};
use crate::report::{ms, Row};
use crate::scenarios::{Plan, CUSTOMERS};
use base64::Engine;
use std::net::SocketAddr;
use std::time::Duration;

/// Runs the scenario.
pub async fn run(plan: &Plan, target: SocketAddr) -> anyhow::Result<Vec<Row>> {
    let port = free_port()?;
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let relay = Relay::start_configured(
        &[target],
        false,
        &format!("proxy_listen = \"{proxy}\"\n"),
        &[],
    )
    .await?;
    let _node = relay.start_nodes_at(1, target, None)?;
    relay.wait_nodes(1, Duration::from_secs(30)).await?;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{}", relay.key))
    );
    let small = |path: String, proxy_auth: Option<String>| load::Spec {
        path,
        auth: None,
        expect_len: 1024,
        proxy_auth,
    };
    let raw = load::run(
        &relay.endpoint(),
        &relay.raw(target, 1024),
        CUSTOMERS,
        plan.warmup,
        plan.load,
    )
    .await?;
    raw.explain("raw API");
    let absolute = load::run(
        &Endpoint::Plain(proxy),
        &small(format!("http://{target}/bytes?n=1024"), Some(auth.clone())),
        CUSTOMERS,
        plan.warmup,
        plan.load,
    )
    .await?;
    absolute.explain("proxy, absolute form");
    let tunnel_end = Endpoint::Connect {
        proxy,
        target,
        auth: auth.clone(),
    };
    let tunnel = load::run(
        &tunnel_end,
        &small("/bytes?n=1024".into(), None),
        CUSTOMERS,
        plan.warmup,
        plan.load,
    )
    .await?;
    tunnel.explain("CONNECT tunnel");
    // One large body, each way.
    let n = plan.large_bytes;
    load::fetch_counting(&relay.endpoint(), &relay.raw(target, 1 << 20), None).await?;
    let (got, raw_t) = load::fetch_counting(&relay.endpoint(), &relay.raw(target, n), None).await?;
    anyhow::ensure!(got == n, "raw API: {got} of {n} bytes");
    let big = load::Spec {
        path: format!("/bytes?n={n}"),
        auth: None,
        expect_len: n as usize,
        proxy_auth: None,
    };
    let (got, tunnel_t) = load::fetch_counting(&tunnel_end, &big, None).await?;
    anyhow::ensure!(got == n, "tunnel: {got} of {n} bytes");
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
        Row::goal(
            s,
            &format!("Gbit/s, {} MiB through a tunnel", n >> 20),
            format!("{:.2}", gbit(tunnel_t)),
            format!("{:.2} through /v1/raw", gbit(raw_t)),
            ">= the raw API",
            tunnel_t <= raw_t,
        ),
    ])
}
