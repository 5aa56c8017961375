//! The connection's life: connecting when the settings allow sharing, closing
//! when they do not, reconnecting with backoff after a loss, and the
//! keep-alive that notices a silent relay. Frames that arrive are handed to
//! `frames`, which says what the connection must do next.

use crate::error::NodeError;
use crate::frames::{on_frame, FrameEffect};
use crate::js;
use crate::settings::Availability;
use crate::state::{CoreRef, Phase};
use bytes::Bytes;
use spareband_protocol::limits::{DEAD_PEER_TIMEOUT, HANDSHAKE_TIMEOUT, PING_INTERVAL};
use spareband_protocol::{ClientKind, NodeMessage};
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, MessageEvent, WebSocket};

/// First reconnect delay ceiling.
pub(crate) const RECONNECT_BASE: Duration = Duration::from_millis(500);
/// Largest reconnect delay. Shorter than the native node's: a browser may stop
/// the background between attempts, and the alarm backstop only runs once a
/// minute.
pub(crate) const RECONNECT_MAX: Duration = Duration::from_secs(15);

/// Brings the connection in line with the settings: connect, disconnect, or
/// tell the relay whether jobs are welcome.
pub(crate) fn reconcile(rc: &CoreRef) {
    let (avail, phase, scheduled) = {
        let i = rc.borrow();
        (i.availability(), i.phase, i.reconnect_scheduled)
    };
    match avail {
        Availability::NeedsConsent | Availability::SwitchedOff => {
            close_connection(rc, "sharing is off");
            rc.borrow_mut().problem = None;
        }
        Availability::Sharing | Availability::Paused(_) => {
            if phase == Phase::Down && !scheduled {
                connect(rc);
            } else if phase == Phase::Up {
                rc.borrow_mut().announce_availability();
            }
        }
    }
}

/// Closes the connection (if any) and stops its jobs; its callbacks and jobs
/// are ignored from now on.
pub(crate) fn close_connection(rc: &CoreRef, why: &str) {
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

fn connect(rc: &CoreRef) {
    let url = rc.borrow().relay_url();
    let url = match url {
        Ok(url) => url,
        Err(e) => {
            rc.borrow_mut().problem = Some(e.into());
            schedule_reconnect(rc);
            return;
        }
    };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(e) => {
            rc.borrow_mut().problem = Some(NodeError::Browser(js::describe(&e)));
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
                version: crate::SPOKEN_VERSION,
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
            match on_frame(&rc, gen, bytes) {
                FrameEffect::None => {}
                FrameEffect::Welcomed => {
                    keepalive(rc.clone(), gen);
                    reconcile(&rc);
                }
                FrameEffect::Broken => {
                    close_connection(&rc, "protocol error");
                    schedule_reconnect(&rc);
                }
            }
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
    {
        let mut i = rc.borrow_mut();
        i.handlers = vec![on_open, on_message, on_close];
        i.ws = Some(ws);
    }
    handshake_deadline(rc.clone(), gen);
}

/// Gives up on a connection that is not welcomed within the handshake
/// limit: a relay that takes the socket and never answers (or an address
/// that drops packets, which a browser may wait minutes on) must not hold
/// the node away from the owner's other relays.
fn handshake_deadline(rc: CoreRef, gen: u32) {
    wasm_bindgen_futures::spawn_local(async move {
        js::sleep(HANDSHAKE_TIMEOUT.as_millis() as u32).await;
        {
            let mut i = rc.borrow_mut();
            if i.gen != gen || i.phase == Phase::Up {
                return;
            }
            i.problem = Some(NodeError::ConnectionFailed);
        }
        close_connection(&rc, "no welcome in time");
        schedule_reconnect(&rc);
    });
}

fn on_closed(rc: &CoreRef, gen: u32, reason: String) {
    {
        let mut i = rc.borrow_mut();
        if gen != i.gen {
            return;
        }
        if i.phase != Phase::Up && i.problem.is_none() {
            i.problem = Some(if reason.is_empty() {
                NodeError::ConnectionFailed
            } else {
                NodeError::RelayClosed(reason)
            });
        }
    }
    close_connection(rc, "closed");
    schedule_reconnect(rc);
}

fn schedule_reconnect(rc: &CoreRef) {
    let delay = {
        let mut i = rc.borrow_mut();
        if i.reconnect_scheduled {
            return;
        }
        i.reconnect_scheduled = true;
        // The next attempt goes to another of the owner's relays, drawn at
        // random: one that died loses its nodes evenly to the others.
        let count = i.relay_count();
        i.relay_at = crate::settings::next_relay(i.relay_at, count, js::random());
        i.backoff.next_delay(js::random())
    };
    let rc = rc.clone();
    wasm_bindgen_futures::spawn_local(async move {
        js::sleep(delay.as_millis() as u32).await;
        rc.borrow_mut().reconnect_scheduled = false;
        reconcile(&rc);
    });
}

/// Pings every 20 s (which also keeps a Chrome service worker alive) and
/// closes a connection that has heard nothing for the dead-peer timeout.
fn keepalive(rc: CoreRef, gen: u32) {
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
                rc.borrow_mut().problem = Some(NodeError::Silent);
                close_connection(&rc, "dead peer");
                schedule_reconnect(&rc);
                return;
            }
            nonce += 1;
            rc.borrow().send(gen, &NodeMessage::Ping { nonce });
        }
    });
}
