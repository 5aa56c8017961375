//! The browser node's state, shared by everything the background runs: the
//! key, settings and statistics, the one WebSocket connection (by generation),
//! its jobs, and the relay's rules. Also the few things every layer above
//! asks of it: sending a frame on the current connection, the name checks of a
//! hop, and telling the relay what the owner set.

use crate::build_config::BuildConfig;
use crate::crypto::NodeKey;
use crate::error::NodeError;
use crate::js;
use crate::settings::{Availability, IdleState, Settings};
use crate::stats::Stats;
use spareband_protocol::backoff::Backoff;
use spareband_protocol::flow::CreditGate;
use spareband_protocol::gateway::{gateway_url_in, GatewayUrlError};
use spareband_protocol::rules::{NodeRules, SiteCounter};
use spareband_protocol::{
    receipts::ReceiptBook, NodeId, NodeMessage, PauseReason, StreamId, TargetPolicy,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::WebSocket;

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No WebSocket.
    Down,
    /// Opened, not yet welcomed.
    Connecting,
    /// Welcomed: jobs may come.
    Up,
}

/// A running job as the connection sees it.
pub(crate) struct JobEntry {
    /// Credit for its response body.
    pub credit: Rc<CreditGate>,
    /// Stops its `fetch` and its body reader.
    pub abort: web_sys::AbortController,
    /// The request body collected so far (see `frames`).
    pub body: Vec<u8>,
    /// Hands the whole body to the job once it has arrived.
    pub body_done: Option<futures::channel::oneshot::Sender<Option<Vec<u8>>>>,
    /// The body passed the protocol's limit: the job fails.
    pub body_too_large: bool,
}

/// What the redirect guard in `guard.js` gives the core.
pub(crate) struct GuardHooks {
    /// Called when the relay's rules change, so the browser's own blocking
    /// rules follow them.
    pub rules_changed: js_sys::Function,
    /// `verdict(url, sinceMs)`: a promise of whether every response the
    /// browser received for `url` since then came from a public address.
    pub verdict: js_sys::Function,
}

/// The node's state.
pub(crate) struct Inner {
    pub build: BuildConfig,
    pub policy: Rc<TargetPolicy>,
    pub key: Rc<NodeKey>,
    pub node_id: NodeId,
    pub settings: Settings,
    pub stats: Stats,
    pub idle: IdleState,
    /// What the browser says of the connection: metered (cellular or
    /// save-data) or not; `None` where it says nothing (Firefox).
    pub metered: Option<bool>,
    /// The caps and schedule from the settings, read once per change.
    pub limits: spareband_protocol::controls::Limits,
    /// The speed limits `(download, upload)`, shared by every job.
    pub paces: (
        Option<spareband_protocol::controls::Pace>,
        Option<spareband_protocol::controls::Pace>,
    ),
    /// `persist(state)` from the background (see `persist`).
    pub persist: js_sys::Function,
    pub persist_scheduled: bool,
    // The connection.
    pub ws: Option<WebSocket>,
    /// Counts connections; callbacks and jobs of an older one are ignored.
    pub gen: u32,
    pub phase: Phase,
    /// When the relay was last heard from, Unix ms.
    pub last_rx: f64,
    pub backoff: Backoff,
    pub reconnect_scheduled: bool,
    /// Which of the owner's relays to dial: every attempt after a failed or
    /// ended connection moves to the next, and a settings change starts
    /// again at the first.
    pub relay_at: usize,
    /// What the relay was last told about taking jobs.
    pub announced_accepting: bool,
    /// Why the relay cannot be reached, in the popup's words.
    pub problem: Option<NodeError>,
    pub jobs: HashMap<StreamId, JobEntry>,
    /// The WebSocket's callbacks, kept alive as long as it is.
    pub handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    /// Relay receipt keys pinned on first use: origin → hex key.
    pub relay_keys: BTreeMap<String, String>,
    /// This connection's receipts, checked against the pinned relay key.
    pub book: Option<ReceiptBook>,
    /// The connection (`gen`) whose Welcome made `book`: receipts verified
    /// after that connection closed still count in it.
    pub book_gen: u32,
    /// The relay's rules for every hop (deny list, site cap, own address).
    pub rules: NodeRules,
    /// This node's own per-site counts, every hop included.
    pub sites: SiteCounter,
    /// The redirect guard's hooks (see `guard.js`).
    pub hooks: Option<GuardHooks>,
}

/// The state as every callback and task holds it (one thread in a browser).
pub(crate) type CoreRef = Rc<RefCell<Inner>>;

impl Inner {
    /// The checks on a host that every hop passes besides the target
    /// policy: the owner's block list and the relay's deny list. The host is
    /// a checked target's, so each URL is parsed once.
    pub fn refuses_host(&self, host: &str) -> Option<String> {
        if let Some(d) = self.settings.blocks(host) {
            return Some(format!("this node's owner does not share with {d}"));
        }
        spareband_protocol::policy::covering_domain(&self.rules.deny, host)
            .map(|d| format!("{host} is on the relay's deny list ({d})"))
    }

    /// Counts one request to `host`'s site; an error when over the cap.
    pub fn count_site(&mut self, host: &str) -> Result<(), String> {
        let per_minute = self.rules.site_per_minute;
        self.sites
            .count(per_minute, host, js::now_ms() as u64)
            .map_err(|e| e.to_string())
    }

    /// The relay to dial now: of the relays the owner set (or the build's),
    /// the one at [`Inner::relay_at`].
    pub fn relay_address(&self) -> &str {
        let typed = self
            .settings
            .relay_url
            .as_deref()
            .unwrap_or(&self.build.relay_url);
        crate::settings::current_relay(typed, self.relay_at)
    }

    /// How many relays the owner set (or the build's one).
    pub fn relay_count(&self) -> usize {
        let typed = self
            .settings
            .relay_url
            .as_deref()
            .unwrap_or(&self.build.relay_url);
        spareband_protocol::gateway::relay_list(typed).len().max(1)
    }

    /// The gateway URL to dial.
    pub fn relay_url(&self) -> Result<String, GatewayUrlError> {
        gateway_url_in::<crate::weburl::Url>(self.relay_address())
    }

    /// The local day and the first day of the billing month, as the
    /// counts are kept.
    pub fn calendar(&self) -> (String, String) {
        let now = js::local_now();
        let (month, _) =
            spareband_protocol::controls::billing_month(now.date, self.limits.reset_day);
        (now.date.to_string(), month.to_string())
    }

    /// Whether the owner's settings let the node share now.
    pub fn availability(&self) -> Availability {
        let time = js::local_now();
        let (month, _) =
            spareband_protocol::controls::billing_month(time.date, self.limits.reset_day);
        let now = crate::settings::Now {
            usage: spareband_protocol::controls::Usage {
                today: self.stats.today_bytes(&time.date.to_string()),
                this_month: self.stats.month_bytes(&month.to_string()),
            },
            time,
            metered: self.metered,
            idle: self.idle,
        };
        self.settings.availability(&self.limits, &now)
    }

    /// Reads the limits and speed limits again after the settings changed.
    pub fn apply_controls(&mut self) {
        self.limits = self.settings.limits();
        self.paces = self.settings.paces();
    }

    /// Books `n` bytes through both speed limits; the milliseconds to wait
    /// before they may go.
    pub fn pace(&mut self, n: usize) -> u32 {
        // Every chunk of every job passes here: without a limit, nothing.
        if matches!(self.paces, (None, None)) {
            return 0;
        }
        let now_us = (js::now_ms() * 1000.0) as u64;
        let (down, up) = &mut self.paces;
        let wait_us = [down, up]
            .into_iter()
            .flatten()
            .map(|p| p.book(n as u64, now_us))
            .max()
            .unwrap_or(0);
        wait_us.div_ceil(1000) as u32
    }

    /// Sends a frame on connection `gen`, if it is still the current one.
    pub fn send(&self, gen: u32, msg: &NodeMessage) -> bool {
        match &self.ws {
            Some(ws) if gen == self.gen && self.phase != Phase::Down => {
                ws.send_with_u8_array(&msg.encode()).is_ok()
            }
            _ => false,
        }
    }

    /// Bytes queued on the WebSocket, not yet sent.
    pub fn buffered(&self) -> u32 {
        self.ws.as_ref().map_or(0, |w| w.buffered_amount())
    }

    /// Tells the relay whether jobs are welcome, when that changed since it
    /// was last told (a welcomed connection only; switching sharing off closes
    /// the connection instead, in `connection::reconcile`).
    pub fn announce_availability(&mut self) {
        if self.phase != Phase::Up {
            return;
        }
        let (accepting, reason) = match self.availability() {
            Availability::Paused(r) => (false, r),
            Availability::Sharing => (true, PauseReason::Other),
            Availability::NeedsConsent | Availability::SwitchedOff => return,
        };
        if accepting != self.announced_accepting {
            self.announced_accepting = accepting;
            let max_concurrency = self.settings.max_concurrency;
            self.send(
                self.gen,
                &NodeMessage::Availability {
                    accepting,
                    reason,
                    max_concurrency,
                },
            );
        }
    }

    /// Tells the relay which domains the owner blocks (it routes around them).
    pub fn send_block_list(&self) {
        if self.phase == Phase::Up {
            self.send(
                self.gen,
                &NodeMessage::BlockList {
                    domains: self.settings.blocked_domains.clone(),
                },
            );
        }
    }
}

/// Tells the relay where rewards go, signed with the node key. The browser
/// signs later (Web Crypto answers with a promise), so the state is read
/// then, and the frame goes only on the connection it was signed for.
pub(crate) fn register_payout(rc: &CoreRef) {
    let rc = rc.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let (gen, address, key) = {
            let i = rc.borrow();
            match (&i.settings.payout_address, i.phase) {
                (Some(a), Phase::Up) => (i.gen, a.clone(), i.key.clone()),
                _ => return,
            }
        };
        let message = spareband_protocol::identity::payout_message(&address);
        if let Ok(signature) = key.sign(&message).await {
            // Signatures may finish out of order: an address the owner has
            // replaced meanwhile is not sent after its successor.
            let i = rc.borrow();
            if i.settings.payout_address.as_deref() == Some(address.as_str()) {
                i.send(gen, &NodeMessage::SetPayout { address, signature });
            }
        }
    });
}
