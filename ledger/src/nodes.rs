//! Nodes as the relay knows them: first and last sight, kind, agent,
//! address and country, whether connected, and whether their jobs earn
//! (one earning node per IP address).

use crate::clock::now_ms;
use crate::db::on_pool;
use crate::{Db, LedgerError};

/// What the relay records about a node when it connects.
#[derive(Debug, Clone)]
pub struct NodeRecord<'a> {
    /// Node id (hex).
    pub node_id: &'a str,
    /// Public key (hex).
    pub public_key: &'a str,
    /// `native` or `extension`.
    pub client_kind: &'a str,
    /// Software agent string.
    pub agent: &'a str,
    /// Address the node connected from.
    pub ip: &'a str,
    /// GeoIP country, if known.
    pub country: Option<&'a str>,
    /// The relay holding the connection (its key, hex).
    pub relay: &'a str,
}

impl Db {
    /// Records a node connection (first sight or a return).
    pub async fn upsert_node(&self, n: &NodeRecord<'_>) -> Result<(), LedgerError> {
        let now = now_ms();
        on_pool!(self, |p| {
            sqlx::query(
            "INSERT INTO nodes (node_id, public_key, client_kind, agent, first_seen, last_seen, last_ip, country, online, relay)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 1, $8)
             ON CONFLICT (node_id) DO UPDATE SET client_kind = excluded.client_kind, online = 1,
                 agent = excluded.agent, last_seen = excluded.last_seen,
                 last_ip = excluded.last_ip, country = excluded.country, relay = excluded.relay",
        )
        .bind(n.node_id)
        .bind(n.public_key)
        .bind(n.client_kind)
        .bind(n.agent)
        .bind(now)
        .bind(n.ip)
        .bind(n.country)
        .bind(n.relay)
        .execute(p)
        .await
        .map(drop)
        })?;
        Ok(())
    }

    /// Marks a node as last seen now (on disconnect from `relay`); `online`
    /// is whether another connection of the same node is still up. A node
    /// that has meanwhile connected to another relay of the cluster is left
    /// to that relay.
    pub async fn touch_node(
        &self,
        node_id: &str,
        online: bool,
        relay: &str,
    ) -> Result<(), LedgerError> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE nodes SET last_seen = $1, online = $2 WHERE node_id = $3 AND relay IN ($4, '')"
        )
        .bind(now_ms())
        .bind(i64::from(online))
        .bind(node_id)
        .bind(relay)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Marks offline every node `relay` held (and those of rows older than
    /// the `relay` column): at its start, none of them is connected to it
    /// yet, whatever a crash left behind; and when another relay of the
    /// cluster is gone without saying so. Nodes other relays hold stay as
    /// they are.
    pub async fn mark_offline(&self, relay: &str) -> Result<(), LedgerError> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE nodes SET online = 0 WHERE online <> 0 AND relay IN ($1, '')"
        )
        .bind(relay)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Records whether a node's jobs earn now.
    pub async fn set_earning(&self, node_id: &str, earning: bool) -> Result<(), LedgerError> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE nodes SET earning = $1 WHERE node_id = $2"
        )
        .bind(i64::from(earning))
        .bind(node_id)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }
}
