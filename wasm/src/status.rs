//! The popup's status: the node's state as codes the popup puts in words
//! (its `_locales` messages `state_<state>` and `pause_<pause>`), and the
//! counts the popup and the options page show.

use crate::js;
use crate::jsvalue::js_object;
use crate::settings::{pause_code, Availability, Settings};
use crate::state::{Inner, Phase};
use crate::stats::Counts;

/// Everything the popup shows, in one glance: whether the node shares, what
/// is wrong when it cannot, and what it has served.
pub(crate) struct Status {
    state: &'static str,
    /// Why the relay cannot be reached, in the core's (English) words.
    problem: Option<String>,
    node_id: String,
    relay_url: String,
    settings: Settings,
    today: Counts,
    total: Counts,
    chart: Vec<u64>,
    jobs: usize,
    dev_build: bool,
    verified: Counts,
    verified_today: Counts,
    verified_epochs: Vec<(u64, Counts)>,
    terms: Option<crate::stats::Terms>,
    now_ms: f64,
    receipt_problems: u64,
    /// The code of why the relay cannot be reached ([`crate::error::NodeError::code`]).
    problem_code: Option<&'static str>,
    /// Why the node is paused ([`pause_code`]), when it is.
    pause: Option<&'static str>,
    /// When the schedule lets sharing start again (Unix ms), when it is
    /// what pauses the node.
    next_start_ms: Option<f64>,
    /// This billing month's counts, and its first day.
    this_month: Counts,
    month_start: String,
    /// What the browser says of the connection (`None`: nothing).
    metered: Option<bool>,
}

js_object!(to Status {
    state, problem, node_id, relay_url, settings, today, total, chart, jobs,
    dev_build, verified, verified_today, verified_epochs, terms, now_ms,
    receipt_problems, problem_code, pause, next_start_ms, this_month,
    month_start, metered,
});

/// The status of the node now.
pub(crate) fn status(i: &Inner) -> Status {
    let state = match i.availability() {
        Availability::NeedsConsent => "needs_consent",
        Availability::SwitchedOff => "off",
        Availability::Paused(_) if i.phase == Phase::Up => "paused",
        _ => match (i.phase, &i.problem) {
            (Phase::Up, _) => "connected",
            (_, Some(_)) => "unreachable",
            _ => "connecting",
        },
    };
    let (day, month) = i.calendar();
    let mut today = i.stats.today;
    if i.stats.day != day {
        today = Counts::default();
    }
    let availability = i.availability();
    let pause = match availability {
        Availability::Paused(r) => Some(r),
        _ => None,
    };
    let next_start_ms = match pause {
        Some(spareband_protocol::PauseReason::Schedule) => {
            let now = js::local_now();
            i.limits.schedule.next_start(now).map(|(days, minute)| {
                let minutes = days as f64 * 1440.0 + minute as f64 - now.minute as f64;
                // To the start of the minute the schedule names.
                let into_minute = js::now_ms() % 60_000.0;
                js::now_ms() - into_minute + minutes * 60_000.0
            })
        }
        _ => None,
    };
    Status {
        state,
        problem: i.problem.as_ref().map(|p| p.to_string()),
        node_id: i.node_id.to_string(),
        relay_url: i
            .relay_url()
            .unwrap_or_else(|_| i.relay_address().to_string()),
        settings: i.settings.clone(),
        today,
        total: i.stats.total,
        chart: i.stats.last_day(js::now_ms() as u64),
        jobs: i.jobs.len(),
        dev_build: i.build.dev,
        verified: i.stats.verified,
        verified_today: if i.stats.verified_day == day {
            i.stats.verified_today
        } else {
            Counts::default()
        },
        verified_epochs: i.stats.verified_epochs.clone(),
        terms: i.stats.terms.clone(),
        now_ms: js::now_ms(),
        receipt_problems: i.stats.receipt_problems,
        problem_code: i.problem.as_ref().map(|p| p.code()),
        pause: pause.map(pause_code),
        next_start_ms,
        this_month: if i.stats.month == month {
            i.stats.this_month
        } else {
            Counts::default()
        },
        month_start: month,
        metered: i.metered,
    }
}
