//! The node core as the extension's background sees it: one `NodeCore`, one
//! WebSocket session at a time, settings enforced before every job.

use crate::build_config::BuildConfig;
use crate::job::{self, JobHost, JobOutcome};
use crate::js;
use crate::settings::{pause_words, Availability, IdleState, Settings};
use crate::stats::{Counts, Stats};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use spareband_protocol::backoff::Backoff;
use spareband_protocol::flow::CreditGate;
use spareband_protocol::gateway::{gateway_url, GatewayUrlError};
use spareband_protocol::identity::{canonical_origin, sign_challenge};
use spareband_protocol::limits::{
    DEAD_PEER_TIMEOUT, MAX_REQUEST_BODY_BYTES, PING_INTERVAL, STREAM_WINDOW,
};
use spareband_protocol::rules::{NodeRules, SiteCounter};
use spareband_protocol::{
    receipts::ReceiptBook, ClientKind, FailReason, NodeId, NodeMessage, PauseReason, RefuseCode,
    RelayMessage, RequestHead, StreamId, TargetPolicy, PROTOCOL_VERSION,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, MessageEvent, WebSocket};

/// First reconnect delay ceiling.
const RECONNECT_BASE: Duration = Duration::from_millis(500);
/// Largest reconnect delay. Shorter than the native node's: a browser may stop
/// the background between attempts, and the alarm backstop only runs once a
/// minute.
const RECONNECT_MAX: Duration = Duration::from_secs(15);
/// Saved state is written at most this often while jobs run.
const PERSIST_DELAY_MS: u32 = 1_000;

/// What is kept in extension storage.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Saved {
    /// The ed25519 key seed, hex.
    seed: String,
    settings: Settings,
    stats: Stats,
    /// Relay receipt keys pinned on first use: origin → hex key.
    relay_keys: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Down,
    Connecting,
    Up,
}

pub(crate) struct JobEntry {
    pub credit: Rc<CreditGate>,
    pub abort: web_sys::AbortController,
    pub body: Vec<u8>,
    pub body_done: Option<futures::channel::oneshot::Sender<Option<Vec<u8>>>>,
    pub body_too_large: bool,
}

pub(crate) struct Inner {
    build: BuildConfig,
    pub(crate) policy: Rc<TargetPolicy>,
    key: SigningKey,
    node_id: NodeId,
    pub(crate) settings: Settings,
    pub(crate) stats: Stats,
    idle: IdleState,
    persist: js_sys::Function,
    persist_scheduled: bool,
    // The session.
    ws: Option<WebSocket>,
    pub(crate) gen: u32,
    phase: Phase,
    last_rx: f64,
    backoff: Backoff,
    reconnect_scheduled: bool,
    announced_accepting: bool,
    problem: Option<String>,
    pub(crate) jobs: HashMap<StreamId, JobEntry>,
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    relay_keys: std::collections::BTreeMap<String, String>,
    /// This session's receipts, checked against the pinned relay key.
    pub(crate) book: Option<ReceiptBook>,
    /// The relay's rules for every hop (deny list, site cap, own address).
    pub(crate) rules: NodeRules,
    /// This node's own per-site counts, every hop included.
    pub(crate) sites: SiteCounter,
    /// The redirect guard's hooks (see `guard.js`).
    pub(crate) hooks: Option<GuardHooks>,
}

/// What the redirect guard in `guard.js` gives the core.
pub(crate) struct GuardHooks {
    /// Called when the relay's rules change, so the browser's own blocking
    /// rules follow them.
    rules_changed: js_sys::Function,
    /// `verdict(url, sinceMs)`: a promise of whether every response the
    /// browser received for `url` since then came from a public address.
    pub(crate) verdict: js_sys::Function,
}

impl Inner {
    /// The checks on a URL's name that every hop passes besides the target
    /// policy: the owner's block list and the relay's deny list.
    pub(crate) fn refuses_name(&self, url: &str) -> Option<String> {
        if let Some(d) = self.settings.blocks(url) {
            return Some(format!("this node's owner does not share with {d}"));
        }
        let host = url::Url::parse(url).ok()?.host_str()?.to_string();
        spareband_protocol::policy::covering_domain(&self.rules.deny, &host)
            .map(|d| format!("{host} is on the relay's deny list ({d})"))
    }

    /// Counts one request to `url`'s site; an error when over the cap.
    pub(crate) fn count_site(&mut self, url: &str) -> Result<(), String> {
        let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
        else {
            return Ok(());
        };
        let per_minute = self.rules.site_per_minute;
        self.sites
            .count(per_minute, &host, js::now_ms() as u64)
            .map_err(|e| e.to_string())
    }
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

impl Inner {
    /// The relay address the owner set, or the build's.
    fn relay_address(&self) -> &str {
        self.settings
            .relay_url
            .as_deref()
            .unwrap_or(&self.build.relay_url)
    }

    /// The gateway URL to dial.
    fn relay_url(&self) -> Result<String, GatewayUrlError> {
        gateway_url(self.relay_address())
    }

    pub(crate) fn availability(&self) -> Availability {
        let day = js::local_day();
        self.settings
            .availability(self.stats.today_bytes(&day), self.idle)
    }

    /// Sends a frame on the current session.
    pub(crate) fn send(&self, gen: u32, msg: &NodeMessage) -> bool {
        match &self.ws {
            Some(ws) if gen == self.gen && self.phase != Phase::Down => {
                ws.send_with_u8_array(&msg.encode()).is_ok()
            }
            _ => false,
        }
    }

    pub(crate) fn buffered(&self) -> u32 {
        self.ws.as_ref().map_or(0, |w| w.buffered_amount())
    }

    fn saved(&self) -> Saved {
        Saved {
            seed: hex::encode(self.key.to_bytes()),
            settings: self.settings.clone(),
            stats: self.stats.clone(),
            relay_keys: self.relay_keys.clone(),
        }
    }
}

/// The extension's node core.
#[wasm_bindgen]
pub struct NodeCore {
    inner: Shared,
}

#[wasm_bindgen]
impl NodeCore {
    /// Restores the node from its saved state (or creates a key on first run).
    /// `persist(state)` is called with the state to save whenever it changes.
    #[wasm_bindgen(constructor)]
    pub fn new(saved: JsValue, persist: js_sys::Function) -> Result<NodeCore, JsValue> {
        let build = BuildConfig::current();
        let policy = build
            .policy()
            .map_err(|e| JsValue::from_str(&e.to_string()))?;
        let mut saved: Saved = if saved.is_undefined() || saved.is_null() {
            Saved::default()
        } else {
            serde_wasm_bindgen::from_value(saved).unwrap_or_default()
        };
        let mut seed = [0u8; 32];
        let fresh = hex::decode_to_slice(saved.seed.trim(), &mut seed).is_err();
        if fresh {
            js::get_random_values(&mut seed)?;
        }
        if build.autostart && !saved.settings.consent {
            saved.settings.consent = true;
            saved.settings.sharing = true;
        }
        let key = SigningKey::from_bytes(&seed);
        let node_id = NodeId::from_public_key(&key.verifying_key().to_bytes());
        let inner = Rc::new(RefCell::new(Inner {
            build,
            policy: Rc::new(policy),
            key,
            node_id,
            settings: saved.settings,
            stats: saved.stats,
            idle: IdleState::Active,
            persist,
            persist_scheduled: false,
            ws: None,
            gen: 0,
            phase: Phase::Down,
            last_rx: 0.0,
            backoff: Backoff::new(RECONNECT_BASE, RECONNECT_MAX),
            reconnect_scheduled: false,
            announced_accepting: true,
            problem: None,
            jobs: HashMap::new(),
            handlers: Vec::new(),
            relay_keys: saved.relay_keys,
            book: None,
            rules: NodeRules::default(),
            sites: SiteCounter::default(),
            hooks: None,
        }));
        persist_now(&inner);
        Ok(NodeCore { inner })
    }

    /// Connects if the settings allow it.
    pub fn start(&self) {
        reconcile(&self.inner);
    }

    /// The node id, as shown to the owner.
    #[wasm_bindgen(js_name = nodeId)]
    pub fn node_id(&self) -> String {
        self.inner.borrow().node_id.to_string()
    }

    /// Everything the popup shows.
    pub fn status(&self) -> JsValue {
        let s = status(&self.inner.borrow());
        serde_wasm_bindgen::to_value(&s).unwrap_or(JsValue::NULL)
    }

    /// The sharing switch. Switching on for the first time records consent.
    #[wasm_bindgen(js_name = setSharing)]
    pub fn set_sharing(&self, on: bool) -> JsValue {
        {
            let mut i = self.inner.borrow_mut();
            i.settings.sharing = on;
            if on {
                i.settings.consent = true;
            }
        }
        persist_now(&self.inner);
        reconcile(&self.inner);
        self.status()
    }

    /// Applies settings from the options page; answers the new status or an
    /// error message.
    #[wasm_bindgen(js_name = updateSettings)]
    pub fn update_settings(&self, patch: JsValue) -> Result<JsValue, JsValue> {
        #[derive(Deserialize)]
        struct Patch {
            /// An empty string goes back to the build's relay.
            relay_url: Option<String>,
            daily_cap_mb: Option<u32>,
            idle_only: Option<bool>,
            max_concurrency: Option<u16>,
            /// An empty string removes it.
            payout_address: Option<String>,
            /// Domain names, separated by spaces, commas or new lines.
            blocked_domains: Option<String>,
        }
        let p: Patch = serde_wasm_bindgen::from_value(patch)
            .map_err(|e| JsValue::from_str(&format!("Invalid settings: {e}")))?;
        let reconnect;
        {
            let mut i = self.inner.borrow_mut();
            let mut s = i.settings.clone();
            if let Some(url) = p.relay_url {
                s.relay_url = Some(url.trim().to_string()).filter(|u| !u.is_empty());
            }
            if let Some(v) = p.daily_cap_mb {
                s.daily_cap_mb = v;
            }
            if let Some(v) = p.idle_only {
                s.idle_only = v;
            }
            if let Some(v) = p.max_concurrency {
                s.max_concurrency = v;
            }
            if let Some(a) = p.payout_address {
                let a = a.trim();
                s.payout_address = if a.is_empty() {
                    None
                } else {
                    // Stored in its checksummed form.
                    Some(
                        spareband_protocol::address::Address::parse(a)
                            .map_err(|e| JsValue::from_str(&format!("Payout address: {e}.")))?
                            .to_checksum(),
                    )
                };
            }
            if let Some(text) = p.blocked_domains {
                s.blocked_domains =
                    Settings::parse_blocked(&text).map_err(|e| JsValue::from_str(&e))?;
            }
            s.validate().map_err(|e| JsValue::from_str(&e))?;
            let new_blocked = s.blocked_domains != i.settings.blocked_domains;
            reconnect = s.relay_url != i.settings.relay_url
                || s.max_concurrency != i.settings.max_concurrency;
            let new_payout = s.payout_address != i.settings.payout_address;
            i.settings = s;
            // A reconnect registers it anyway, right after the handshake.
            if new_payout && !reconnect {
                register_payout(&i);
            }
            if new_blocked && !reconnect {
                send_block_list(&i);
            }
        }
        persist_now(&self.inner);
        if reconnect {
            close_session(&self.inner, "settings changed");
        }
        reconcile(&self.inner);
        Ok(self.status())
    }

    /// From the `idle` API: "active", "idle" or "locked".
    #[wasm_bindgen(js_name = setIdleState)]
    pub fn set_idle_state(&self, state: &str) {
        self.inner.borrow_mut().idle = IdleState::parse(state);
        reconcile(&self.inner);
    }

    /// The alarm backstop: a new day, a lost connection, a missed timer.
    pub fn tick(&self) {
        let day = js::local_day();
        self.inner.borrow_mut().stats.roll(&day);
        reconcile(&self.inner);
    }

    /// The redirect guard's hooks: `rulesChanged()` when the relay's rules
    /// change, and `verdict(url, sinceMs)` (see [`GuardHooks`]).
    #[wasm_bindgen(js_name = setGuardHooks)]
    pub fn set_guard_hooks(&self, rules_changed: js_sys::Function, verdict: js_sys::Function) {
        self.inner.borrow_mut().hooks = Some(GuardHooks {
            rules_changed,
            verdict,
        });
    }

    /// Whether this build's policy, the owner's block list and the relay's
    /// deny list let a URL through (for the redirect guard).
    #[wasm_bindgen(js_name = allowsUrl)]
    pub fn allows_url(&self, url: &str) -> bool {
        let i = self.inner.borrow();
        i.policy.check(url).is_ok() && i.refuses_name(url).is_none()
    }

    /// [`NodeCore::allows_url`] for a redirect hop, which also counts
    /// against the relay's per-site cap (false when over it).
    #[wasm_bindgen(js_name = allowsHop)]
    pub fn allows_hop(&self, url: &str) -> bool {
        self.allows_url(url) && self.inner.borrow_mut().count_site(url).is_ok()
    }

    /// The relay's deny list (the Chrome guard blocks it at every hop).
    #[wasm_bindgen(js_name = deniedDomains)]
    pub fn denied_domains(&self) -> Vec<String> {
        self.inner.borrow().rules.deny.clone()
    }

    /// The owner's blocked domains (the Chrome guard blocks them too).
    #[wasm_bindgen(js_name = blockedDomains)]
    pub fn blocked_domains(&self) -> Vec<String> {
        self.inner.borrow().settings.blocked_domains.clone()
    }

    /// Whether an address a target resolved to may be reached.
    #[wasm_bindgen(js_name = allowsAddress)]
    pub fn allows_address(&self, url: &str, ip: &str) -> bool {
        let i = self.inner.borrow();
        match (i.policy.check(url), ip.parse()) {
            (Ok(t), Ok(addr)) => {
                i.policy.check_resolved(&t, addr).is_ok()
                    && (t.allow_listed || i.rules.check_address(addr).is_ok())
            }
            _ => false,
        }
    }

    /// This build's allow list (`host:port`, empty in a release build).
    #[wasm_bindgen(js_name = allowList)]
    pub fn allow_list(&self) -> Vec<String> {
        self.inner.borrow().policy.allow_list()
    }
}

#[derive(Serialize)]
struct Status {
    state: &'static str,
    words: String,
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
}

fn status(i: &Inner) -> Status {
    let (state, words) = match i.availability() {
        Availability::NeedsConsent => (
            "needs_consent",
            "Not sharing yet. Read what sharing means and switch it on when you are ready."
                .to_string(),
        ),
        Availability::SwitchedOff => ("off", "Off. Nothing is shared.".to_string()),
        Availability::Paused(r) if i.phase == Phase::Up => ("paused", pause_words(r).to_string()),
        _ => match (i.phase, &i.problem) {
            (Phase::Up, _) => ("connected", "Connected and sharing.".to_string()),
            (_, Some(p)) => (
                "unreachable",
                format!("Cannot reach the relay: {p}. Retrying."),
            ),
            _ => ("connecting", "Connecting to the relay…".to_string()),
        },
    };
    let day = js::local_day();
    let mut today = i.stats.today;
    if i.stats.day != day {
        today = Counts::default();
    }
    Status {
        state,
        words,
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
    }
}

fn persist_now(rc: &Shared) {
    let (f, value) = {
        let mut i = rc.borrow_mut();
        i.persist_scheduled = false;
        (i.persist.clone(), serde_wasm_bindgen::to_value(&i.saved()))
    };
    if let Ok(v) = value {
        let _ = f.call1(&JsValue::NULL, &v);
    }
}

/// Saves soon (coalescing the many changes of busy jobs).
pub(crate) fn persist_soon(rc: &Shared) {
    if std::mem::replace(&mut rc.borrow_mut().persist_scheduled, true) {
        return;
    }
    let rc = rc.clone();
    wasm_bindgen_futures::spawn_local(async move {
        js::sleep(PERSIST_DELAY_MS).await;
        persist_now(&rc);
    });
}

/// Brings the session in line with the settings: connect, disconnect, or
/// tell the relay whether jobs are welcome.
pub(crate) fn reconcile(rc: &Shared) {
    let (avail, phase, scheduled) = {
        let i = rc.borrow();
        (i.availability(), i.phase, i.reconnect_scheduled)
    };
    match avail {
        Availability::NeedsConsent | Availability::SwitchedOff => {
            close_session(rc, "sharing is off");
            rc.borrow_mut().problem = None;
        }
        Availability::Sharing | Availability::Paused(_) => {
            if phase == Phase::Down && !scheduled {
                connect(rc);
            } else if phase == Phase::Up {
                let mut i = rc.borrow_mut();
                let (accepting, reason) = match avail {
                    Availability::Paused(r) => (false, r),
                    _ => (true, PauseReason::Other),
                };
                if accepting != i.announced_accepting {
                    i.announced_accepting = accepting;
                    let max_concurrency = i.settings.max_concurrency;
                    let gen = i.gen;
                    i.send(
                        gen,
                        &NodeMessage::Availability {
                            accepting,
                            reason,
                            max_concurrency,
                        },
                    );
                }
            }
        }
    }
}

fn close_session(rc: &Shared, why: &str) {
    let mut i = rc.borrow_mut();
    if let Some(ws) = i.ws.take() {
        ws.set_onmessage(None);
        ws.set_onclose(None);
        ws.set_onopen(None);
        let _ = ws.close_with_code_and_reason(1000, why);
    }
    i.gen += 1;
    i.phase = Phase::Down;
    i.handlers.clear();
    for (_, job) in i.jobs.drain() {
        job.credit.close();
        job.abort.abort();
    }
}

fn connect(rc: &Shared) {
    let url = rc.borrow().relay_url();
    let url = match url {
        Ok(url) => url,
        Err(e) => {
            rc.borrow_mut().problem = Some(format!("the relay address is unusable: {e}"));
            schedule_reconnect(rc);
            return;
        }
    };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(e) => {
            rc.borrow_mut().problem = Some(js::describe(&e));
            schedule_reconnect(rc);
            return;
        }
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    let gen = {
        let mut i = rc.borrow_mut();
        i.gen += 1;
        i.phase = Phase::Connecting;
        i.last_rx = js::now_ms();
        i.gen
    };
    let on_open = {
        let rc = rc.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_| {
            let i = rc.borrow();
            let hello = NodeMessage::Hello {
                version: PROTOCOL_VERSION,
                client: ClientKind::Extension,
                agent: format!("spareband-extension/{}", env!("CARGO_PKG_VERSION")),
            };
            i.send(gen, &hello);
        })
    };
    let on_message = {
        let rc = rc.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let Ok(e) = e.dyn_into::<MessageEvent>() else {
                return;
            };
            let Ok(buf) = e.data().dyn_into::<js_sys::ArrayBuffer>() else {
                return;
            };
            let bytes = Bytes::from(js_sys::Uint8Array::new(&buf).to_vec());
            on_frame(&rc, gen, bytes);
        })
    };
    let on_close = {
        let rc = rc.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let reason = e
                .dyn_into::<web_sys::CloseEvent>()
                .map(|c| c.reason())
                .unwrap_or_default();
            on_closed(&rc, gen, reason);
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut i = rc.borrow_mut();
    i.handlers = vec![on_open, on_message, on_close];
    i.ws = Some(ws);
}

fn on_closed(rc: &Shared, gen: u32, reason: String) {
    {
        let mut i = rc.borrow_mut();
        if gen != i.gen {
            return;
        }
        if i.phase != Phase::Up && i.problem.is_none() {
            i.problem = Some(if reason.is_empty() {
                "connection failed".into()
            } else {
                reason
            });
        }
    }
    close_session(rc, "closed");
    schedule_reconnect(rc);
}

fn schedule_reconnect(rc: &Shared) {
    let delay = {
        let mut i = rc.borrow_mut();
        if i.reconnect_scheduled {
            return;
        }
        i.reconnect_scheduled = true;
        i.backoff.next_delay(js::random())
    };
    let rc = rc.clone();
    wasm_bindgen_futures::spawn_local(async move {
        js::sleep(delay.as_millis() as u32).await;
        rc.borrow_mut().reconnect_scheduled = false;
        reconcile(&rc);
    });
}

fn on_frame(rc: &Shared, gen: u32, frame: Bytes) {
    let msg = {
        let mut i = rc.borrow_mut();
        if gen != i.gen {
            return;
        }
        i.last_rx = js::now_ms();
        match RelayMessage::decode(&frame) {
            Ok(m) => m,
            Err(e) => {
                i.problem = Some(format!("the relay sent a malformed frame ({e})"));
                drop(i);
                close_session(rc, "protocol error");
                schedule_reconnect(rc);
                return;
            }
        }
    };
    match msg {
        RelayMessage::Challenge { nonce, .. } => {
            let i = rc.borrow();
            let origin = i
                .relay_url()
                .ok()
                .and_then(|u| canonical_origin(&u).ok())
                .unwrap_or_default();
            let auth = NodeMessage::Auth {
                public_key: i.key.verifying_key().to_bytes(),
                signature: sign_challenge(&i.key, &nonce, &origin, PROTOCOL_VERSION),
                max_concurrency: i.settings.max_concurrency,
            };
            i.send(gen, &auth);
        }
        RelayMessage::Welcome { node_id, relay_key } => {
            {
                let mut i = rc.borrow_mut();
                // Pin the relay's receipt key on first use; a changed key is
                // not trusted, so its receipts count as problems.
                let origin = i
                    .relay_url()
                    .ok()
                    .and_then(|u| canonical_origin(&u).ok())
                    .unwrap_or_default();
                let offered = hex::encode(relay_key);
                let pinned = i.relay_keys.entry(origin).or_insert(offered).clone();
                let mut trusted = [0u8; 32];
                let _ = hex::decode_to_slice(&pinned, &mut trusted);
                i.book = Some(ReceiptBook::new(node_id, trusted));
                i.phase = Phase::Up;
                i.backoff.reset();
                i.problem = None;
                // The relay assumes a new node accepts jobs.
                i.announced_accepting = true;
            }
            register_payout(&rc.borrow());
            if !rc.borrow().settings.blocked_domains.is_empty() {
                send_block_list(&rc.borrow());
            }
            keepalive(rc.clone(), gen);
            reconcile(rc);
        }
        RelayMessage::Refused { code, message } => {
            let mut i = rc.borrow_mut();
            if code == RefuseCode::ShuttingDown {
                i.backoff.reset();
            } else {
                i.problem = Some(message);
            }
        }
        RelayMessage::Request(head) => start_job(rc, gen, head),
        RelayMessage::RequestBody { stream, data } => {
            let mut i = rc.borrow_mut();
            if let Some(job) = i.jobs.get_mut(&stream) {
                // The browser sends request bodies whole (Firefox cannot
                // stream uploads, Chrome only over HTTP/2), so the body is
                // collected here, bounded by the protocol's body limit, and
                // credit goes straight back.
                if job.body.len() as u64 + data.len() as u64 > MAX_REQUEST_BODY_BYTES {
                    job.body_too_large = true;
                } else {
                    job.body.extend_from_slice(&data);
                }
                i.send(
                    gen,
                    &NodeMessage::Credit {
                        stream,
                        bytes: data.len() as u32,
                    },
                );
            }
        }
        RelayMessage::RequestEnd { stream } => {
            let mut i = rc.borrow_mut();
            if let Some(job) = i.jobs.get_mut(&stream) {
                let body = (!job.body_too_large).then(|| std::mem::take(&mut job.body));
                if let Some(tx) = job.body_done.take() {
                    let _ = tx.send(body);
                }
            }
        }
        RelayMessage::Credit { stream, bytes } => {
            if let Some(job) = rc.borrow().jobs.get(&stream) {
                job.credit.grant(bytes);
            }
        }
        RelayMessage::Cancel { stream, .. } => {
            if let Some(job) = rc.borrow_mut().jobs.remove(&stream) {
                job.credit.close();
                job.abort.abort();
            }
        }
        RelayMessage::Ping { nonce } => {
            rc.borrow().send(gen, &NodeMessage::Pong { nonce });
        }
        RelayMessage::Pong { .. } => {}
        RelayMessage::Rules(rules) => {
            let hook = {
                let mut i = rc.borrow_mut();
                i.rules = rules;
                i.hooks.as_ref().map(|h| h.rules_changed.clone())
            };
            if let Some(f) = hook {
                let _ = f.call0(&JsValue::NULL);
            }
        }
        RelayMessage::Rewards(t) => {
            rc.borrow_mut().stats.terms = Some((&t).into());
            persist_soon(rc);
        }
        RelayMessage::Receipts(batch) => {
            let mut i = rc.borrow_mut();
            let checks = i.book.as_mut().map(|b| b.receipts(batch));
            let day = js::local_day();
            for (_, check) in checks.into_iter().flatten() {
                i.stats.receipt(check, &day);
            }
            drop(i);
            persist_soon(rc);
        }
    }
}

/// Tells the relay which domains the owner blocks (it routes around them).
fn send_block_list(i: &Inner) {
    if i.phase == Phase::Up {
        i.send(
            i.gen,
            &NodeMessage::BlockList {
                domains: i.settings.blocked_domains.clone(),
            },
        );
    }
}

/// Tells the relay where rewards go, signed with the node key.
fn register_payout(i: &Inner) {
    if let (Some(address), Phase::Up) = (&i.settings.payout_address, i.phase) {
        let signature = spareband_protocol::identity::sign_payout(&i.key, address);
        i.send(
            i.gen,
            &NodeMessage::SetPayout {
                address: address.clone(),
                signature,
            },
        );
    }
}

/// Pings every 20 s (which also keeps a Chrome service worker alive) and
/// closes a session that has heard nothing for the dead-peer timeout.
fn keepalive(rc: Shared, gen: u32) {
    wasm_bindgen_futures::spawn_local(async move {
        let mut nonce = 0u64;
        loop {
            js::sleep(PING_INTERVAL.as_millis() as u32).await;
            let silent = {
                let i = rc.borrow();
                if i.gen != gen {
                    return;
                }
                js::now_ms() - i.last_rx > DEAD_PEER_TIMEOUT.as_millis() as f64
            };
            if silent {
                rc.borrow_mut().problem = Some("the relay stopped answering".into());
                close_session(&rc, "dead peer");
                schedule_reconnect(&rc);
                return;
            }
            nonce += 1;
            rc.borrow().send(gen, &NodeMessage::Ping { nonce });
        }
    });
}

fn start_job(rc: &Shared, gen: u32, head: RequestHead) {
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
    let host = SessionHost {
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
fn finish_job(rc: &Shared, gen: u32, outcome: JobOutcome) {
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
            let day = js::local_day();
            {
                let mut i = rc.borrow_mut();
                i.stats.record(js::now_ms() as u64, &day, up, down, true);
                if let Some(check) = i.book.as_mut().map(|b| b.delivered(job, up, down)) {
                    i.stats.receipt(check, &day);
                }
            }
            persist_soon(rc);
            reconcile(rc);
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

/// A job's view of the node: its own session (by generation) and the
/// node's current settings and rules.
struct SessionHost {
    rc: Shared,
    gen: u32,
}

impl JobHost for SessionHost {
    fn send(&self, msg: &NodeMessage) -> bool {
        self.rc.borrow().send(self.gen, msg)
    }

    fn queued_bytes(&self) -> u32 {
        self.rc.borrow().buffered()
    }

    fn refuses_name(&self, url: &str) -> Option<String> {
        self.rc.borrow().refuses_name(url)
    }

    fn count_site(&self, url: &str) -> Result<(), String> {
        self.rc.borrow_mut().count_site(url)
    }

    fn verdict_hook(&self) -> Option<js_sys::Function> {
        self.rc.borrow().hooks.as_ref().map(|h| h.verdict.clone())
    }

    fn policy(&self) -> Rc<TargetPolicy> {
        self.rc.borrow().policy.clone()
    }
}
