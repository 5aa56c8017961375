//! The JS API: the `NodeCore` class the extension's background holds, and
//! nothing else. Each export reads or changes the state and then lets the
//! connection catch up (`connection::reconcile`).

use crate::build_config::BuildConfig;
use crate::connection::{self, close_connection, reconcile};
use crate::crypto::{self, NodeKey};
use crate::error::NodeError;
use crate::js;
use crate::jsvalue::{FromJs, ToJs};
use crate::patch::Patch;
use crate::persist::{persist_now, Saved};
use crate::settings::IdleState;
use crate::state::{CoreRef, GuardHooks, Inner, Phase};
use crate::status;
use crate::weburl::Url;
use spareband_protocol::backoff::Backoff;
use spareband_protocol::rules::{NodeRules, SiteCounter};
use spareband_protocol::NodeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// The extension's node core.
#[wasm_bindgen]
pub struct NodeCore {
    inner: CoreRef,
}

#[wasm_bindgen]
impl NodeCore {
    /// Restores the node from its saved state (or creates a key on first run).
    /// `persist(state)` is called with the state to save whenever it changes.
    /// A promise: the browser's Web Crypto reads the key.
    pub async fn create(saved: JsValue, persist: js_sys::Function) -> Result<NodeCore, NodeError> {
        let build = BuildConfig::current();
        let policy = build.policy().map_err(NodeError::Build)?;
        let mut saved: Saved = if saved.is_undefined() || saved.is_null() {
            Saved::default()
        } else {
            Saved::from_js(&saved).unwrap_or_default()
        };
        let mut seed = [0u8; 32];
        let fresh = hex::decode_to_slice(saved.seed.trim(), &mut seed).is_err();
        if fresh {
            js::get_random_values(&mut seed).map_err(|e| NodeError::Browser(js::describe(&e)))?;
        }
        if build.autostart && !saved.settings.consent {
            saved.settings.consent = true;
            saved.settings.sharing = true;
        }
        let browser = |e: JsValue| NodeError::Browser(js::describe(&e));
        let key = NodeKey::from_seed(seed).await.map_err(browser)?;
        let node_id = NodeId::from_sha256(&crypto::sha256(&key.public()).await.map_err(browser)?);
        let inner = Rc::new(RefCell::new(Inner {
            build,
            policy: Rc::new(policy),
            key: Rc::new(key),
            node_id,
            settings: saved.settings,
            stats: saved.stats,
            idle: IdleState::Active,
            metered: None,
            limits: Default::default(),
            paces: (None, None),
            persist,
            persist_scheduled: false,
            ws: None,
            gen: 0,
            phase: Phase::Down,
            last_rx: 0.0,
            backoff: Backoff::new(connection::RECONNECT_BASE, connection::RECONNECT_MAX),
            reconnect_scheduled: false,
            relay_at: 0,
            announced_accepting: true,
            problem: None,
            jobs: HashMap::new(),
            handlers: Vec::new(),
            relay_keys: saved.relay_keys,
            book: None,
            book_gen: 0,
            rules: NodeRules::default(),
            sites: SiteCounter::default(),
            hooks: None,
        }));
        inner.borrow_mut().apply_controls();
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
        let s = status::status(&self.inner.borrow());
        s.to_js()
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

    /// Applies settings from the options page; answers the new status, or
    /// throws a [`NodeError`] whose message is shown beside the form.
    #[wasm_bindgen(js_name = updateSettings)]
    pub fn update_settings(&self, patch: JsValue) -> Result<JsValue, NodeError> {
        let patch = Patch::from_js(&patch)
            .map_err(|e| NodeError::Settings(format!("Invalid settings: {e}.")))?;
        let changes = {
            let mut i = self.inner.borrow_mut();
            let (settings, changes) = patch.apply(&i.settings)?;
            i.settings = settings;
            i.apply_controls();
            if changes.reconnect {
                i.relay_at = 0;
            }
            // A reconnect registers them anyway, right after the handshake.
            if changes.payout && !changes.reconnect {
                crate::state::register_payout(&self.inner);
            }
            if changes.blocked && !changes.reconnect {
                i.send_block_list();
            }
            changes
        };
        persist_now(&self.inner);
        if changes.reconnect {
            close_connection(&self.inner, "settings changed");
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

    /// What the browser says of the connection (Chromium's
    /// `navigator.connection`): metered when it is cellular or the owner
    /// asked to save data; `undefined` where the browser says nothing.
    #[wasm_bindgen(js_name = setMetered)]
    pub fn set_metered(&self, metered: Option<bool>) {
        self.inner.borrow_mut().metered = metered;
        reconcile(&self.inner);
    }

    /// The alarm backstop: a new day, month or scheduled hour, a lost
    /// connection, a missed timer.
    pub fn tick(&self) {
        let (day, month) = self.inner.borrow().calendar();
        self.inner.borrow_mut().stats.roll(&day, &month);
        reconcile(&self.inner);
    }

    /// Moves the owner's local time by `ms` from the computer's, so that
    /// tests can cross a day or a month. Development builds only: a release
    /// build has no such call.
    #[cfg(feature = "dev")]
    #[wasm_bindgen(js_name = shiftClock)]
    pub fn shift_clock(&self, ms: f64) {
        js::shift_clock(ms);
        self.tick();
    }

    /// The public-targets policy's verdict on each URL, read by this
    /// browser's own `URL`: `ok <href>` or `refused <kind>`. Development
    /// builds only: the browser suite runs the hostile-URL matrix through it
    /// and compares with the `url` crate's verdicts (issue 16).
    #[cfg(feature = "dev")]
    #[wasm_bindgen(js_name = checkTargets)]
    pub fn check_targets(&self, urls: Vec<String>) -> Vec<String> {
        use spareband_protocol::weburl::WebUrl;
        let policy = spareband_protocol::TargetPolicy::public_only();
        urls.iter()
            .map(|u| match policy.check_in::<Url>(u) {
                Ok(t) => format!("ok {}", t.url.href()),
                Err(e) => format!("refused {}", e.kind()),
            })
            .collect()
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
        self.allowed_host(url).is_some()
    }

    /// [`NodeCore::allows_url`] for a redirect hop, which also counts
    /// against the relay's per-site cap (false when over it).
    #[wasm_bindgen(js_name = allowsHop)]
    pub fn allows_hop(&self, url: &str) -> bool {
        self.allowed_host(url)
            .is_some_and(|h| self.inner.borrow_mut().count_site(&h).is_ok())
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
        match (i.policy.check_in::<Url>(url), ip.parse()) {
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

impl NodeCore {
    /// The host of `url` when this build's policy, the owner's block list
    /// and the relay's deny list all let it through (one parse for all).
    fn allowed_host(&self, url: &str) -> Option<String> {
        use spareband_protocol::weburl::WebUrl;
        let i = self.inner.borrow();
        let t = i.policy.check_in::<Url>(url).ok()?;
        let host = t.url.host_str()?.to_string();
        i.refuses_host(&host).is_none().then_some(host)
    }
}
