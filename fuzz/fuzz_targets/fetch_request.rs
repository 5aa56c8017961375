//! Fuzzes the `/v1/fetch` request parser, `spareband_relay::api::fetch::parse`,
//! on arbitrary bytes as the JSON body, with the public-only policy.
//!
//! This is the first code a customer's bytes reach, so it must refuse bad
//! input with an `ApiError` and never panic. When it accepts a document the
//! job must be one the rest of the system can carry: the target passes the
//! same policy again, the body is at most `limits::MAX_REQUEST_BODY_BYTES`,
//! and the `RelayMessage::Request` frame the relay builds from the job (as
//! `jobs.rs` does) fits in a frame and decodes on the node side to the same
//! request, whose URL passes the node's own policy check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spareband_protocol::limits::{MAX_FRAME_BYTES, MAX_REQUEST_BODY_BYTES};
use spareband_protocol::{BodyKind, JobId, RelayMessage, RequestHead, TargetPolicy};
use spareband_relay::api::fetch::parse;
use spareband_relay::jobs::JobBody;

fuzz_target!(|data: &[u8]| {
    let policy = TargetPolicy::default();
    let Ok(job) = parse(&policy, 1, data) else {
        return;
    };
    assert_eq!(job.customer, 1);

    let again = policy
        .check(job.target.url.as_str())
        .unwrap_or_else(|e| panic!("accepted target {} fails the policy: {e}", job.target.url));
    assert_eq!(again.host, job.target.host);
    assert_eq!(again.port, job.target.port);

    let kind = match &job.body {
        JobBody::Empty => BodyKind::Empty,
        JobBody::Buffered(b) => {
            assert!(
                b.len() as u64 <= MAX_REQUEST_BODY_BYTES,
                "body of {} bytes",
                b.len()
            );
            if b.is_empty() {
                BodyKind::Empty
            } else {
                BodyKind::Sized(b.len() as u64)
            }
        }
        JobBody::Streaming { .. } => panic!("JSON mode produced a streaming body"),
    };

    let head = RequestHead {
        stream: 1,
        job: JobId([7; 16]),
        method: job.method.clone(),
        url: job.target.url.to_string(),
        headers: job.headers.clone(),
        body: kind,
        deadline_ms: job.timeout.as_millis().min(u32::MAX as u128) as u32,
    };
    let msg = RelayMessage::Request(head);
    let frame = msg.encode();
    assert!(
        frame.len() <= MAX_FRAME_BYTES,
        "request frame of {} bytes",
        frame.len()
    );
    let decoded = RelayMessage::decode(&frame)
        .unwrap_or_else(|e| panic!("node cannot decode the request frame: {e}"));
    assert_eq!(decoded, msg);
    if let RelayMessage::Request(head) = decoded {
        policy
            .check(&head.url)
            .unwrap_or_else(|e| panic!("node refuses the URL {}: {e}", head.url));
    }
});
