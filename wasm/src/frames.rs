//! What the node does with each frame from the relay once the handshake is
//! under way: the challenge and welcome, jobs and their bodies and credit,
//! rules, receipts and reward terms. Lifecycle decisions (keep-alive,
//! closing) go back to `connection` as a [`FrameEffect`].

use crate::admission::start_job;
use crate::crypto;
use crate::error::NodeError;
use crate::js;
use crate::persist::persist_soon;
use crate::state::{register_payout, CoreRef, Phase};
use crate::weburl::Url;
use bytes::Bytes;
use spareband_protocol::identity::{auth_message, canonical_origin_in, receipts_message};
use spareband_protocol::limits::MAX_REQUEST_BODY_BYTES;
use spareband_protocol::{receipts::ReceiptBook, NodeMessage, RefuseCode, RelayMessage};
use wasm_bindgen::JsValue;

/// What the connection must do after a frame.
pub(crate) enum FrameEffect {
    /// Nothing.
    None,
    /// The relay welcomed the node: start the keep-alive and announce
    /// availability.
    Welcomed,
    /// The relay broke the protocol: close and reconnect later.
    Broken,
}

/// Handles one frame of connection `gen`.
pub(crate) fn on_frame(rc: &CoreRef, gen: u32, frame: Bytes) -> FrameEffect {
    let msg = {
        let mut i = rc.borrow_mut();
        if gen != i.gen {
            return FrameEffect::None;
        }
        i.last_rx = js::now_ms();
        match RelayMessage::decode(&frame) {
            Ok(m) => m,
            Err(e) => {
                i.problem = Some(NodeError::MalformedFrame(e.to_string()));
                return FrameEffect::Broken;
            }
        }
    };
    match msg {
        RelayMessage::Challenge { nonce, .. } => {
            let (key, message, max_concurrency) = {
                let i = rc.borrow();
                let origin = i
                    .relay_url()
                    .ok()
                    .and_then(|u| canonical_origin_in::<Url>(&u).ok())
                    .unwrap_or_default();
                let message = auth_message(&nonce, &origin, crate::SPOKEN_VERSION);
                (i.key.clone(), message, i.settings.max_concurrency)
            };
            // Web Crypto signs with a promise; the answer goes only on the
            // connection that asked (`send` checks `gen`).
            let rc = rc.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let signature = match key.sign(&message).await {
                    Ok(s) => s,
                    Err(e) => {
                        let mut i = rc.borrow_mut();
                        if i.gen == gen {
                            i.problem = Some(NodeError::Browser(js::describe(&e)));
                        }
                        return;
                    }
                };
                let auth = NodeMessage::Auth {
                    public_key: key.public(),
                    signature,
                    max_concurrency,
                };
                rc.borrow().send(gen, &auth);
            });
        }
        RelayMessage::Welcome { node_id, relay_key } => {
            {
                let mut i = rc.borrow_mut();
                // Pin the relay's receipt key on first use; a changed key is
                // not trusted, so its receipts count as problems.
                let origin = i
                    .relay_url()
                    .ok()
                    .and_then(|u| canonical_origin_in::<Url>(&u).ok())
                    .unwrap_or_default();
                let offered = hex::encode(relay_key);
                let pinned = i.relay_keys.entry(origin).or_insert(offered).clone();
                let mut trusted = [0u8; 32];
                let _ = hex::decode_to_slice(&pinned, &mut trusted);
                i.book = Some(ReceiptBook::new(node_id, trusted));
                i.book_gen = gen;
                i.phase = Phase::Up;
                i.backoff.reset();
                i.problem = None;
                // The relay assumes a new node accepts jobs.
                i.announced_accepting = true;
            }
            register_payout(rc);
            if !rc.borrow().settings.blocked_domains.is_empty() {
                rc.borrow().send_block_list();
            }
            return FrameEffect::Welcomed;
        }
        RelayMessage::Refused { code, message } => {
            let mut i = rc.borrow_mut();
            if code == RefuseCode::ShuttingDown {
                i.backoff.reset();
            } else {
                i.problem = Some(NodeError::Refused { code, message });
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
                let credit = NodeMessage::Credit {
                    stream,
                    bytes: data.len() as u32,
                };
                // Under a speed limit the credit goes back only when the
                // bytes are paid for, so the relay sends no faster.
                match i.pace(data.len()) {
                    0 => {
                        i.send(gen, &credit);
                    }
                    wait => {
                        let rc = rc.clone();
                        wasm_bindgen_futures::spawn_local(async move {
                            js::sleep(wait).await;
                            rc.borrow().send(gen, &credit);
                        });
                    }
                }
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
            let Some((relay_key, message)) = rc
                .borrow()
                .book
                .as_ref()
                .map(|b| (*b.relay_key(), receipts_message(b.node(), &batch.receipts)))
            else {
                return FrameEffect::None;
            };
            // Verified by the browser's Web Crypto, which answers later; the
            // book takes the batch if it is still the book of this batch's
            // session, even when that connection has closed meanwhile.
            let rc = rc.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let signed = crypto::verify(&relay_key, &message, &batch.signature).await;
                let mut i = rc.borrow_mut();
                if i.book_gen != gen {
                    return;
                }
                let checks = i.book.as_mut().map(|b| b.checked(batch, signed));
                let (day, _) = i.calendar();
                for (_, check) in checks.into_iter().flatten() {
                    i.stats.receipt(check, &day);
                }
                drop(i);
                persist_soon(&rc);
            });
        }
    }
    FrameEffect::None
}
