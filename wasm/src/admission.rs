//! Job admission and bookkeeping: whether the node takes a job the relay
//! sent (paused, full), the job's entry in the connection, and what is recorded
//! when it ends. The job itself (`job`) only sees a [`JobHost`].

use crate::job::{self, JobHost, JobOutcome};
use crate::js;
use crate::persist::persist_soon;
use crate::settings::Availability;
use crate::state::{CoreRef, JobEntry};
use spareband_protocol::flow::CreditGate;
use spareband_protocol::limits::STREAM_WINDOW;
use spareband_protocol::{FailReason, NodeMessage, RequestHead, TargetPolicy};
use std::rc::Rc;

/// Takes a job the relay sent on connection `gen`, or refuses it at once when
/// the node is paused or full.
pub(crate) fn start_job(rc: &CoreRef, gen: u32, head: RequestHead) {
    let stream = head.stream;
    let refusal = {
        let i = rc.borrow();
        match i.availability() {
            Availability::Sharing if i.jobs.len() >= i.settings.max_concurrency as usize => Some((
                FailReason::Busy,
                "the node is running as many jobs as it allows",
            )),
            Availability::Sharing => None,
            _ => Some((FailReason::Paused, "the node is paused")),
        }
    };
    if let Some((reason, message)) = refusal {
        rc.borrow().send(
            gen,
            &NodeMessage::Fail {
                stream,
                reason,
                message: message.into(),
            },
        );
        return;
    }
    let Ok(abort) = web_sys::AbortController::new() else {
        rc.borrow().send(
            gen,
            &NodeMessage::Fail {
                stream,
                reason: FailReason::Internal,
                message: "cannot create an AbortController".into(),
            },
        );
        return;
    };
    let credit = Rc::new(CreditGate::new(STREAM_WINDOW));
    let (tx, rx) = futures::channel::oneshot::channel();
    let has_body = head.body.has_body();
    rc.borrow_mut().jobs.insert(
        stream,
        JobEntry {
            credit: credit.clone(),
            abort: abort.clone(),
            body: Vec::new(),
            body_done: has_body.then_some(tx),
            body_too_large: false,
        },
    );
    let host = ConnectionHost {
        rc: rc.clone(),
        gen,
    };
    let rc = rc.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let outcome = job::run(host, head, credit, abort, has_body.then_some(rx)).await;
        finish_job(&rc, gen, outcome);
    });
}

/// The bookkeeping of a finished job: statistics, the receipt book and
/// saving for a delivered one, the `Fail` frame for a failed one; nothing for
/// one the relay cancelled.
fn finish_job(rc: &CoreRef, gen: u32, outcome: JobOutcome) {
    let JobOutcome {
        job,
        stream,
        result,
    } = outcome;
    if rc.borrow_mut().jobs.remove(&stream).is_none() {
        return;
    }
    match result {
        Ok((up, down)) => {
            let (day, month) = rc.borrow().calendar();
            {
                let mut i = rc.borrow_mut();
                i.stats
                    .record(js::now_ms() as u64, (&day, &month), up, down, true);
                if let Some(check) = i.book.as_mut().map(|b| b.delivered(job, up, down)) {
                    i.stats.receipt(check, &day);
                }
            }
            persist_soon(rc);
            // The bytes may have reached the owner's daily or monthly cap.
            rc.borrow_mut().announce_availability();
        }
        Err((reason, message)) => {
            rc.borrow().send(
                gen,
                &NodeMessage::Fail {
                    stream,
                    reason,
                    message,
                },
            );
        }
    }
}

/// A job's view of the node: its own connection (by generation) and the
/// node's current settings and rules.
struct ConnectionHost {
    rc: CoreRef,
    gen: u32,
}

impl JobHost for ConnectionHost {
    fn send(&self, msg: &NodeMessage) -> bool {
        self.rc.borrow().send(self.gen, msg)
    }

    fn queued_bytes(&self) -> u32 {
        self.rc.borrow().buffered()
    }

    fn pace(&self, n: usize) -> u32 {
        self.rc.borrow_mut().pace(n)
    }

    fn refuses_host(&self, host: &str) -> Option<String> {
        self.rc.borrow().refuses_host(host)
    }

    fn count_site(&self, host: &str) -> Result<(), String> {
        self.rc.borrow_mut().count_site(host)
    }

    fn verdict_hook(&self) -> Option<js_sys::Function> {
        self.rc.borrow().hooks.as_ref().map(|h| h.verdict.clone())
    }

    fn policy(&self) -> Rc<TargetPolicy> {
        self.rc.borrow().policy.clone()
    }
}
