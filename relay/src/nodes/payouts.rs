//! What a node earns: its payout address (checked and stored), whether its
//! jobs earn (recorded for the dashboard), and the reward terms it is told.

use super::handle::NodeHandle;
use crate::AppState;
use spareband_protocol::RelayMessage;
use tracing::{info, warn};

/// Records a node's payout address when its signature and checksum hold; a
/// bad one is logged and ignored (the node keeps serving; it earns into its
/// previous address, if any).
pub(super) async fn set_payout(
    state: &AppState,
    handle: &NodeHandle,
    address: &str,
    signature: &[u8; 64],
) {
    use spareband_ledger::rewards::address::Address;
    if !spareband_protocol::identity::verify_payout(&handle.public_key, address, signature) {
        warn!(%address, "payout address with a bad signature ignored");
        return;
    }
    let parsed = match Address::parse(address) {
        Ok(a) => a,
        Err(e) => {
            warn!(%address, error = %e, "payout address refused");
            return;
        }
    };
    match spareband_ledger::rewards::set_payout(
        &state.db,
        &handle.id.to_string(),
        &parsed,
        &hex::encode(signature),
    )
    .await
    {
        Ok(()) => {
            info!(address = %parsed, "payout address registered");
            send_terms(state, handle).await;
        }
        Err(e) => warn!(error = %e, "could not store the payout address"),
    }
}

/// Records whether a node earns, for the dashboard.
pub(super) async fn set_earning(state: &AppState, node_id: &str, earning: bool) {
    if let Err(e) = state.db.set_earning(node_id, earning).await {
        warn!(error = %e, "could not record whether the node earns");
    }
}

/// Records, tells and shares the earning of nodes whose earning changed
/// (see [`super::earning`]): the dashboard's row, the node's terms, and a
/// claim or release for the other relays of a cluster.
pub async fn earning_changed(state: &AppState, changed: Vec<std::sync::Arc<NodeHandle>>) {
    if changed.is_empty() {
        return;
    }
    let (mut claims, mut released) = (Vec::new(), Vec::new());
    for n in &changed {
        let earns = n.earning.load(std::sync::atomic::Ordering::Acquire);
        info!(node = %n.id, earns, "the node's earning changed");
        set_earning(state, &n.id.to_string(), earns).await;
        send_terms(state, n).await;
        if earns {
            claims.push(n.claim());
        } else {
            released.push(n.id.to_string());
        }
    }
    if let Some(c) = state.cluster.get() {
        c.share_earning(claims, released);
    }
}

/// Tells a node the reward terms and what its address can claim.
pub async fn send_terms(state: &AppState, handle: &NodeHandle) {
    let rate = state.config.reward_per_gib.0;
    match spareband_ledger::rewards::terms_for(
        &state.db,
        &handle.id.to_string(),
        state.config.epoch(),
        rate,
    )
    .await
    {
        Ok(mut terms) => {
            terms.earning = handle.earning.load(std::sync::atomic::Ordering::Acquire);
            handle.send(&RelayMessage::Rewards(terms));
        }
        Err(e) => warn!(error = %e, "could not read the reward terms"),
    }
}
