//! The codec: every message round-trips, and malformed frames are refused
//! with a specific error.

use super::*;
use crate::NodeId;
use proptest::prelude::*;

fn header() -> impl Strategy<Value = Header> {
    (
        "[a-z][a-z0-9-]{0,20}",
        proptest::collection::vec(0x20u8..0x7f, 0..40),
    )
        .prop_map(|(n, v)| (n, Bytes::from(v)))
}

fn headers() -> impl Strategy<Value = Vec<Header>> {
    proptest::collection::vec(header(), 0..8)
}

fn chunk() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..2048).prop_map(Bytes::from)
}

fn node_message() -> impl Strategy<Value = NodeMessage> {
    let client = prop_oneof![Just(ClientKind::Native), Just(ClientKind::Extension)];
    let fail = prop_oneof![
        Just(FailReason::TargetUnreachable),
        Just(FailReason::TargetForbidden),
        Just(FailReason::SiteCapped),
        Just(FailReason::Timeout),
        Just(FailReason::Busy),
        Just(FailReason::Paused),
        Just(FailReason::TooLarge),
        Just(FailReason::BadRequest),
        Just(FailReason::Internal),
    ];
    let pause = prop_oneof![
        Just(PauseReason::User),
        Just(PauseReason::DailyCap),
        Just(PauseReason::NotIdle),
        Just(PauseReason::Other),
        Just(PauseReason::MonthlyCap),
        Just(PauseReason::Schedule),
        Just(PauseReason::Metered),
    ];
    prop_oneof![
        (any::<u16>(), client, "[ -~]{0,64}").prop_map(|(version, client, agent)| {
            NodeMessage::Hello {
                version,
                client,
                agent,
            }
        }),
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u16>()
        )
            .prop_map(|(public_key, s1, s2, max_concurrency)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&s1);
                signature[32..].copy_from_slice(&s2);
                NodeMessage::Auth {
                    public_key,
                    signature,
                    max_concurrency,
                }
            }),
        (any::<bool>(), pause, any::<u16>()).prop_map(|(accepting, reason, max_concurrency)| {
            NodeMessage::Availability {
                accepting,
                reason,
                max_concurrency,
            }
        }),
        (any::<u32>(), 100u16..1000, headers()).prop_map(|(stream, status, headers)| {
            NodeMessage::ResponseHead(ResponseHead {
                stream,
                status,
                headers,
            })
        }),
        (any::<u32>(), chunk())
            .prop_map(|(stream, data)| NodeMessage::ResponseBody { stream, data }),
        any::<u32>().prop_map(|stream| NodeMessage::ResponseEnd { stream }),
        (
            any::<u32>(),
            100u16..=999,
            headers(),
            proptest::collection::vec(any::<u8>(), 0..2048)
        )
            .prop_map(|(stream, status, headers, body)| NodeMessage::Response {
                head: ResponseHead {
                    stream,
                    status,
                    headers
                },
                body: Bytes::from(body),
            }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(stream, bytes)| NodeMessage::Credit { stream, bytes }),
        (any::<u32>(), fail, "[ -~]{0,100}").prop_map(|(stream, reason, message)| {
            NodeMessage::Fail {
                stream,
                reason,
                message,
            }
        }),
        any::<u64>().prop_map(|nonce| NodeMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| NodeMessage::Pong { nonce }),
        ("0x[0-9a-fA-F]{40}", any::<[u8; 32]>()).prop_map(|(address, s)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&s);
            NodeMessage::SetPayout { address, signature }
        }),
        proptest::collection::vec("[a-z0-9]{1,10}(\\.[a-z0-9-]{0,8}[a-z0-9])?", 0..20)
            .prop_map(|domains| NodeMessage::BlockList { domains }),
    ]
}

fn relay_message() -> impl Strategy<Value = RelayMessage> {
    let cancel = prop_oneof![
        Just(CancelReason::CustomerGone),
        Just(CancelReason::DeadlinePassed),
        Just(CancelReason::Shutdown),
        Just(CancelReason::TooLarge),
        Just(CancelReason::ProtocolViolation),
    ];
    let refuse = prop_oneof![
        Just(RefuseCode::IncompatibleVersion),
        Just(RefuseCode::BadSignature),
        Just(RefuseCode::ProtocolViolation),
        Just(RefuseCode::ShuttingDown),
        Just(RefuseCode::HandshakeTimeout),
    ];
    prop_oneof![
        (any::<u16>(), any::<[u8; 32]>())
            .prop_map(|(version, nonce)| RelayMessage::Challenge { version, nonce }),
        (any::<[u8; 16]>(), any::<[u8; 32]>()).prop_map(|(id, relay_key)| RelayMessage::Welcome {
            node_id: NodeId(id),
            relay_key,
        }),
        (
            proptest::collection::vec((any::<[u8; 16]>(), any::<[u64; 4]>()), 1..5),
            any::<[u8; 32]>()
        )
            .prop_map(|(rs, s)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&s);
                let receipts = rs
                    .into_iter()
                    .map(|(job, n)| Receipt {
                        job: JobId(job),
                        bytes_up: n[0],
                        bytes_down: n[1],
                        epoch: n[2],
                        time_ms: n[3],
                    })
                    .collect();
                RelayMessage::Receipts(ReceiptBatch {
                    receipts,
                    signature,
                })
            }),
        (
            1..u64::MAX,
            any::<u128>(),
            any::<u64>(),
            any::<u128>(),
            any::<bool>()
        )
            .prop_map(|(e, r, n, c, earning)| {
                RelayMessage::Rewards(RewardTerms {
                    epoch_ms: e,
                    reward_per_gib: r,
                    last_closed_epoch: n,
                    claimable: c,
                    earning,
                })
            }),
        (refuse, "[ -~]{0,100}")
            .prop_map(|(code, message)| RelayMessage::Refused { code, message }),
        (
            proptest::collection::vec("[a-z0-9]{1,10}(\\.[a-z0-9-]{0,8}[a-z0-9])?", 0..20),
            any::<u32>(),
            prop_oneof![
                Just(None),
                any::<[u8; 4]>().prop_map(|b| Some(std::net::IpAddr::from(b))),
                any::<[u8; 16]>().prop_map(|b| Some(std::net::IpAddr::from(b))),
            ]
        )
            .prop_map(|(deny, site_per_minute, public_ip)| {
                RelayMessage::Rules(crate::rules::NodeRules {
                    deny,
                    site_per_minute,
                    public_ip,
                })
            }),
        (
            any::<u32>(),
            any::<[u8; 16]>(),
            "[A-Z]{1,10}",
            "https?://[a-z]{1,20}\\.[a-z]{2,5}/[ -~]{0,80}",
            headers(),
            prop_oneof![
                Just(BodyKind::Empty),
                Just(BodyKind::Streamed),
                (0..=MAX_REQUEST_BODY_BYTES).prop_map(BodyKind::Sized)
            ],
            any::<u32>()
        )
            .prop_map(|(stream, job, method, url, headers, body, deadline_ms)| {
                RelayMessage::Request(RequestHead {
                    stream,
                    job: JobId(job),
                    method,
                    url,
                    headers,
                    body,
                    deadline_ms,
                })
            }),
        (any::<u32>(), chunk())
            .prop_map(|(stream, data)| RelayMessage::RequestBody { stream, data }),
        any::<u32>().prop_map(|stream| RelayMessage::RequestEnd { stream }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(stream, bytes)| RelayMessage::Credit { stream, bytes }),
        (any::<u32>(), cancel).prop_map(|(stream, reason)| RelayMessage::Cancel { stream, reason }),
        any::<u64>().prop_map(|nonce| RelayMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| RelayMessage::Pong { nonce }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn node_messages_round_trip(msg in node_message()) {
        let frame = msg.encode();
        prop_assert!(frame.len() <= MAX_FRAME_BYTES);
        prop_assert_eq!(NodeMessage::decode(&frame), Ok(msg));
    }

    #[test]
    fn relay_messages_round_trip(msg in relay_message()) {
        let frame = msg.encode();
        prop_assert!(frame.len() <= MAX_FRAME_BYTES);
        prop_assert_eq!(RelayMessage::decode(&frame), Ok(msg));
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let frame = Bytes::from(bytes);
        let _ = NodeMessage::decode(&frame);
        let _ = RelayMessage::decode(&frame);
    }

    #[test]
    fn decoders_never_panic_on_mutated_valid_frames(
        msg in relay_message(),
        node in node_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        for frame in [msg.encode(), node.encode()] {
            let mut bytes = frame.to_vec();
            for (i, v) in &flips {
                let i = i.index(bytes.len());
                bytes[i] = *v;
            }
            let mutated = Bytes::from(bytes.clone());
            let _ = NodeMessage::decode(&mutated);
            let _ = RelayMessage::decode(&mutated);
            let truncated = Bytes::from(bytes[..cut.index(bytes.len())].to_vec());
            let _ = NodeMessage::decode(&truncated);
            let _ = RelayMessage::decode(&truncated);
        }
    }
}

#[test]
fn a_frame_sent_the_wrong_way_is_an_unknown_tag() {
    let frame = RelayMessage::Ping { nonce: 1 }.encode();
    assert_eq!(
        NodeMessage::decode(&frame),
        Err(DecodeError::UnknownTag(0xa0))
    );
}

#[test]
fn oversized_and_truncated_frames_are_refused() {
    let big = Bytes::from(vec![0x11u8; MAX_FRAME_BYTES + 1]);
    assert_eq!(
        NodeMessage::decode(&big),
        Err(DecodeError::FrameTooLarge(MAX_FRAME_BYTES + 1))
    );
    assert_eq!(NodeMessage::decode(&Bytes::new()), Err(DecodeError::Empty));
    let frame = NodeMessage::Ping { nonce: 9 }.encode();
    assert!(matches!(
        NodeMessage::decode(&frame.slice(..5)),
        Err(DecodeError::Truncated(_))
    ));
    let mut long = frame.to_vec();
    long.push(0);
    assert_eq!(
        NodeMessage::decode(&Bytes::from(long)),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn a_chunk_over_the_limit_is_refused_even_inside_the_frame_limit() {
    let msg = NodeMessage::ResponseBody {
        stream: 1,
        data: Bytes::from(vec![7u8; MAX_CHUNK_BYTES + 1]),
    };
    assert_eq!(
        NodeMessage::decode(&msg.encode()),
        Err(DecodeError::TooLarge("body chunk"))
    );
}

#[test]
fn a_whole_response_over_its_limit_is_refused() {
    let whole = |n: usize| NodeMessage::Response {
        head: ResponseHead {
            stream: 1,
            status: 200,
            headers: vec![],
        },
        body: Bytes::from(vec![7u8; n]),
    };
    let at = whole(crate::limits::MAX_WHOLE_RESPONSE_BYTES);
    assert_eq!(NodeMessage::decode(&at.encode()), Ok(at));
    assert_eq!(
        NodeMessage::decode(&whole(crate::limits::MAX_WHOLE_RESPONSE_BYTES + 1).encode()),
        Err(DecodeError::TooLarge("whole response body"))
    );
}

#[test]
fn header_injection_is_refused() {
    let head = |name: &str, value: &[u8]| {
        NodeMessage::ResponseHead(ResponseHead {
            stream: 1,
            status: 200,
            headers: vec![(name.to_string(), Bytes::copy_from_slice(value))],
        })
        .encode()
    };
    assert_eq!(
        NodeMessage::decode(&head("x-ok", b"a\r\nset-cookie: x=1")),
        Err(DecodeError::Invalid("header value"))
    );
    assert_eq!(
        NodeMessage::decode(&head("bad name", b"v")),
        Err(DecodeError::Invalid("header name"))
    );
    assert!(NodeMessage::decode(&head("x-ok", b"tab\tok")).is_ok());
}

#[test]
fn too_many_or_too_large_headers_are_refused() {
    let many: Vec<Header> = (0..=MAX_HEADER_COUNT)
        .map(|i| (format!("h{i}"), Bytes::from_static(b"v")))
        .collect();
    let frame = NodeMessage::ResponseHead(ResponseHead {
        stream: 1,
        status: 200,
        headers: many,
    })
    .encode();
    assert_eq!(
        NodeMessage::decode(&frame),
        Err(DecodeError::TooLarge("header count"))
    );
    let big = vec![
        (
            "a".to_string(),
            Bytes::from(vec![b'x'; MAX_HEADER_BYTES / 2]),
        ),
        (
            "b".to_string(),
            Bytes::from(vec![b'x'; MAX_HEADER_BYTES / 2]),
        ),
    ];
    let frame = NodeMessage::ResponseHead(ResponseHead {
        stream: 1,
        status: 200,
        headers: big,
    })
    .encode();
    assert_eq!(
        NodeMessage::decode(&frame),
        Err(DecodeError::TooLarge("headers"))
    );
}

#[test]
fn bodies_are_sliced_not_copied() {
    let data = Bytes::from(vec![5u8; 1000]);
    let frame = NodeMessage::ResponseBody {
        stream: 3,
        data: data.clone(),
    }
    .encode();
    let NodeMessage::ResponseBody { data: out, .. } = NodeMessage::decode(&frame).unwrap() else {
        panic!("wrong variant");
    };
    assert_eq!(out, data);
    // The decoded body points into the frame's buffer.
    let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    assert!(frame_range.contains(&(out.as_ptr() as usize)));
}

#[test]
fn receipt_batches_must_hold_between_one_and_the_limit() {
    let r = Receipt {
        job: JobId([1; 16]),
        bytes_up: 1,
        bytes_down: 2,
        epoch: 3,
        time_ms: 4,
    };
    let ok = RelayMessage::Receipts(ReceiptBatch {
        receipts: vec![r],
        signature: [7; 64],
    })
    .encode();
    assert!(RelayMessage::decode(&ok).is_ok());
    // The count follows the tag byte.
    let with_count = |n: u16| {
        let mut f = ok.to_vec();
        f[1..3].copy_from_slice(&n.to_be_bytes());
        Bytes::from(f)
    };
    assert_eq!(
        RelayMessage::decode(&with_count(0)),
        Err(DecodeError::Invalid("receipt count"))
    );
    assert_eq!(
        RelayMessage::decode(&with_count(MAX_RECEIPTS_PER_BATCH as u16 + 1)),
        Err(DecodeError::TooLarge("receipt count"))
    );
    // Claims two, carries one: truncated, not misread.
    assert!(matches!(
        RelayMessage::decode(&with_count(2)),
        Err(DecodeError::Truncated(_))
    ));
    // The version-1 single receipt tag is gone for good.
    let mut old = ok.to_vec();
    old[0] = 0xb0;
    assert_eq!(
        RelayMessage::decode(&Bytes::from(old)),
        Err(DecodeError::UnknownTag(0xb0))
    );
}
