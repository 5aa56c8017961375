//! The owner's controls on a native node (issue 16), through the real
//! relay: the speed limit measured on a raw job, the monthly cap pausing
//! the node at the relay and a new billing month resuming it (the node's
//! clock set by the test), and a schedule that excludes now.

use http_body_util::BodyExt;
use spareband_node::owner::Clock;
use spareband_protocol::controls::{Date, LocalTime, Schedule};
use spareband_tests::customer::enc;
use spareband_tests::{pattern, sha256_hex, target, TestNode, TestRelay};
use std::time::{Duration, Instant};

/// How far a measured rate may be from the limit set (the bound).
const RATE_TOLERANCE: f64 = 0.10;

/// Seconds a paced transfer of `bytes` should take at `mbps`: the burst
/// goes at once (`PACE_BURST_BYTES`), the rest at the rate.
fn paced_secs(bytes: usize, mbps: f64) -> f64 {
    let burst = spareband_protocol::controls::PACE_BURST_BYTES as f64;
    (bytes as f64 - burst) * 8.0 / (mbps * 1e6)
}

/// 8 Mbit/s on a 16 MiB download, then on a 2 MiB upload echoed back (4
/// MiB carried), each within 10 % of the time the limit allows. Checked
/// once with the pacing left out of the node's response loop: the 16 MiB
/// came in 0.4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speed_limit_of_8_mbit_s_holds_within_10_percent_both_ways() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let _node = TestNode::start_with(&relay.base, &allow, |c| {
        c.controls.down_mbps = Some(8.0);
        c.controls.up_mbps = Some(8.0);
    });
    relay.wait_nodes(1).await;
    let c = relay.customer();

    const N: usize = 16 * 1024 * 1024;
    let url = target.url(&format!("/bytes?n={N}&seed=16"));
    let t0 = Instant::now();
    let res = c
        .raw("GET", &format!("url={}&timeout_ms=120000", enc(&url)), None)
        .await;
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(sha256_hex(&body), sha256_hex(&pattern(N, 16)));
    let want = paced_secs(N, 8.0);
    let mbps = N as f64 * 8.0 / took / 1e6;
    println!("16 MiB down at 8 Mbit/s: {took:.2} s ({mbps:.2} Mbit/s), {want:.2} s expected");
    assert!(
        (took - want).abs() <= want * RATE_TOLERANCE,
        "{took:.2} s, not {want:.2} s ± 10 %"
    );

    const UP: usize = 2 * 1024 * 1024;
    let upload = pattern(UP, 17);
    let t0 = Instant::now();
    let res = c
        .raw(
            "POST",
            &format!("url={}&timeout_ms=120000", enc(&target.url("/echo"))),
            Some(upload.clone()),
        )
        .await;
    assert_eq!(res.status(), 200);
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    let took = t0.elapsed().as_secs_f64();
    assert!(echoed == upload, "the upload came back byte for byte");
    // Up to the target, then back: 4 MiB through the one limit.
    let want = paced_secs(2 * UP, 8.0);
    println!("2 MiB up and back at 8 Mbit/s: {took:.2} s, {want:.2} s expected");
    assert!(
        (took - want).abs() <= want * RATE_TOLERANCE,
        "{took:.2} s, not {want:.2} s ± 10 %"
    );
}

/// Noon on a day of December 2026.
fn december(day: u8) -> LocalTime {
    LocalTime::at(
        Date {
            year: 2026,
            month: 12,
            day,
        },
        12 * 60,
    )
}

/// Asks for `q` until the answer is `want` or `within` has passed;
/// returns the last status.
async fn status_within(
    c: &spareband_tests::customer::Customer,
    q: &str,
    want: u16,
    within: Duration,
) -> u16 {
    let until = Instant::now() + within;
    loop {
        let res = c.raw("GET", q, None).await;
        let status = res.status().as_u16();
        res.into_body().collect().await.unwrap();
        if status == want || Instant::now() > until {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A monthly cap of 1 MB with a plan that resets on the 15th: a 2 MB job
/// reaches it and the relay stops routing to the node (503); on the 15th
/// the node shares again, within the node's check interval. Checked once
/// with the cap left out of `Limits::pause`: the second job was served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_cap_pauses_the_node_at_the_relay_until_the_plan_resets() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let (clock, time) = Clock::settable(december(10));
    let _node = TestNode::start_with(&relay.base, &allow, |c| {
        c.controls.limits.monthly_cap_bytes = Some(1_000_000);
        c.controls.limits.reset_day = 15;
        c.clock = Some(clock);
    });
    relay.wait_nodes(1).await;
    let c = relay.customer();
    let url = target.url("/bytes?n=2000000&seed=3");
    let q = format!("url={}", enc(&url));
    let res = c.raw("GET", &q, None).await;
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    // The node tells the relay it paused as soon as the job is counted.
    let status = status_within(&c, &q, 503, Duration::from_secs(10)).await;
    assert_eq!(status, 503, "the capped node is not routed to");
    *time.lock().unwrap() = december(15);
    let check = spareband_node::owner::PAUSE_CHECK_EVERY + Duration::from_secs(5);
    let status = status_within(&c, &q, 200, check).await;
    assert_eq!(status, 200, "a new billing month, sharing again");
}

/// A schedule that excludes now (the node's clock says Thursday noon;
/// sharing only on Sundays) pauses the node from its first connection.
/// Checked once with the schedule left out of `Limits::pause`: served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_that_excludes_now_pauses_the_node_at_the_relay() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let (clock, _) = Clock::settable(december(10));
    let _node = TestNode::start_with(&relay.base, &allow, |c| {
        c.controls.limits.schedule = Schedule::parse("sun 00:00-24:00").unwrap();
        c.clock = Some(clock);
    });
    relay.wait_nodes(1).await;
    let c = relay.customer();
    let q = format!("url={}", enc(&target.url("/hello")));
    // Were the relay to send a job before the pause reaches it, the node
    // refuses it itself.
    let res = c.raw("GET", &q, None).await;
    assert_eq!(res.status(), 503);
    assert_eq!(target.hits(), 0, "nothing was fetched outside the schedule");
}
