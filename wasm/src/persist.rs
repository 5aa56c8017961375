//! Saving the node to extension storage: what is kept, and when it is
//! written (at once for the owner's changes, coalesced for busy jobs).

use crate::js;
use crate::jsvalue::{js_object, ToJs};
use crate::settings::Settings;
use crate::state::{CoreRef, Inner};
use crate::stats::Stats;
use std::collections::BTreeMap;
use wasm_bindgen::JsValue;

/// Saved state is written at most this often while jobs run.
const PERSIST_DELAY_MS: u32 = 1_000;

/// What is kept in extension storage.
#[derive(Default)]
pub(crate) struct Saved {
    /// The ed25519 key seed, hex.
    pub seed: String,
    pub settings: Settings,
    pub stats: Stats,
    /// Relay receipt keys pinned on first use: origin → hex key.
    pub relay_keys: BTreeMap<String, String>,
}

impl Saved {
    fn of(i: &Inner) -> Saved {
        Saved {
            seed: hex::encode(i.key.seed()),
            settings: i.settings.clone(),
            stats: i.stats.clone(),
            relay_keys: i.relay_keys.clone(),
        }
    }
}

// A missing seed makes a new key, as on first run.
js_object!(Saved, "saved state" { seed, settings, stats, relay_keys });

/// Saves now.
pub(crate) fn persist_now(rc: &CoreRef) {
    let (f, value) = {
        let mut i = rc.borrow_mut();
        i.persist_scheduled = false;
        (i.persist.clone(), Saved::of(&i).to_js())
    };
    let _ = f.call1(&JsValue::NULL, &value);
}

/// Saves soon (coalescing the many changes of busy jobs).
pub(crate) fn persist_soon(rc: &CoreRef) {
    if std::mem::replace(&mut rc.borrow_mut().persist_scheduled, true) {
        return;
    }
    let rc = rc.clone();
    wasm_bindgen_futures::spawn_local(async move {
        js::sleep(PERSIST_DELAY_MS).await;
        persist_now(&rc);
    });
}
