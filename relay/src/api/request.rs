//! Validation shared by both customer modes: method, target, headers,
//! country, session and timeout. Every refusal says which field and why.

use crate::error::{ApiError, ErrorCode};
use bytes::Bytes;
use spareband_protocol::limits::{
    DEFAULT_JOB_TIMEOUT, MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_JOB_TIMEOUT,
};
use spareband_protocol::{is_valid_header_name, is_valid_header_value};
use spareband_protocol::{Header, PolicyError, Target, TargetPolicy};
use std::time::Duration;

/// Methods a job may use. CONNECT and TRACE are refused: a node never opens
/// tunnels, and TRACE only echoes the request back.
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Longest `session` name.
pub const MAX_SESSION_LEN: usize = 128;

/// What to do with a header a customer sends.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderRule {
    /// Forward it to the target.
    Forward,
    /// Part of the customer's own connection to the relay (raw mode drops it
    /// silently; JSON mode refuses it).
    ConnectionOnly,
    /// Never forwarded: it would lie about the node or the customer's path, or
    /// steer the node's own HTTP stack.
    Refuse,
}

/// Besides the hop-by-hop ones: headers about the customer's own request to
/// the relay, which the node's HTTP client sets afresh.
pub const CONNECTION_HEADERS: &[&str] = &["host", "content-length", "authorization"];

/// Headers a proxy adds about the request it passes on. A customer may not
/// send them through a node, and a request to `/metrics` carrying one did not
/// come straight from the relay's machine.
pub const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
];

/// Headers a customer may never send through a node, besides
/// [`FORWARDING_HEADERS`].
pub const REFUSED_HEADERS: &[&str] = &["expect", "proxy-authorization"];

/// Name prefixes a JSON request may not set. `sec-` headers are fetch
/// metadata a customer's own HTTP client adds about its request to the
/// relay; they say nothing true about the job (raw mode drops them). The
/// other two are refused in every mode.
pub const REFUSED_PREFIXES: &[&str] = &["sec-", "proxy-", "x-spareband-"];

/// The rule for a customer header (name in any case).
pub fn header_rule(name: &str) -> HeaderRule {
    let n = name.to_ascii_lowercase();
    if is_hop_by_hop(&n) || CONNECTION_HEADERS.contains(&n.as_str()) || n.starts_with("sec-") {
        HeaderRule::ConnectionOnly
    } else if FORWARDING_HEADERS.contains(&n.as_str())
        || REFUSED_HEADERS.contains(&n.as_str())
        || REFUSED_PREFIXES.iter().any(|p| n.starts_with(p))
    {
        HeaderRule::Refuse
    } else {
        HeaderRule::Forward
    }
}

/// Whether a response header is hop-by-hop and must not be passed on.
pub use spareband_protocol::is_hop_by_hop;

/// Checks and normalises a method.
pub fn method(m: Option<&str>) -> Result<String, ApiError> {
    let m = m.unwrap_or("GET").to_ascii_uppercase();
    if ALLOWED_METHODS.contains(&m.as_str()) {
        Ok(m)
    } else {
        Err(ApiError::invalid_request(format!(
            "method '{m}' is not supported; use one of {}",
            ALLOWED_METHODS.join(", ")
        )))
    }
}

/// Checks the request's own method in raw mode and the proxy: 405
/// `method_not_allowed` (with `Allow`), since the method is the request's,
/// not a field of it.
pub fn request_method(m: &http::Method) -> Result<String, ApiError> {
    method(Some(m.as_str())).map_err(|e| ApiError {
        allow: Some(ALLOWED_METHODS),
        ..ApiError::new(ErrorCode::MethodNotAllowed, e.message)
    })
}

/// Checks the target URL against the policy.
pub fn target(policy: &TargetPolicy, url: &str) -> Result<Target, ApiError> {
    policy.check(url).map_err(|e| match e {
        PolicyError::Unparsable(_) | PolicyError::TooLong | PolicyError::NoHost => {
            ApiError::invalid_request(format!("url: {e}"))
        }
        other => ApiError::new(
            ErrorCode::TargetForbidden,
            format!("this target may not be fetched through a node: {other}"),
        ),
    })
}

/// Collects customer headers under the limits. `strict` (JSON mode) refuses
/// connection headers; raw mode drops them.
pub fn headers<'a>(
    input: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    strict: bool,
) -> Result<Vec<Header>, ApiError> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (name, value) in input {
        match header_rule(name) {
            HeaderRule::Forward => {}
            HeaderRule::ConnectionOnly if !strict => continue,
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "header '{name}' may not be set: the relay and the node manage it"
                )))
            }
        }
        if !is_valid_header_name(name) || !is_valid_header_value(value) {
            return Err(ApiError::invalid_request(format!(
                "header '{name}' has an invalid name or value"
            )));
        }
        total += name.len() + value.len();
        out.push((name.to_ascii_lowercase(), Bytes::copy_from_slice(value)));
    }
    if out.len() > MAX_HEADER_COUNT {
        return Err(ApiError::new(
            ErrorCode::RequestTooLarge,
            format!("more than {MAX_HEADER_COUNT} headers"),
        ));
    }
    if total > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            ErrorCode::RequestTooLarge,
            format!("headers are larger than {MAX_HEADER_BYTES} bytes"),
        ));
    }
    Ok(out)
}

/// Checks a country code: two ASCII letters, returned upper case.
pub fn country(c: Option<&str>) -> Result<Option<String>, ApiError> {
    match c {
        None => Ok(None),
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(c.to_ascii_uppercase()))
        }
        Some(c) => Err(ApiError::invalid_request(format!(
            "country '{c}' is not a two-letter ISO 3166 code"
        ))),
    }
}

/// Longest `city` name.
pub const MAX_CITY_LEN: usize = 64;

/// Checks a city, region and AS number to target: a city of letters (any
/// script), digits, spaces and `_ - . '` (underscores read as spaces,
/// compared without case), a region of 1 to 3 letters or digits (its ISO
/// 3166-2 code), an AS number above 0.
pub fn area(
    city: Option<&str>,
    region: Option<&str>,
    asn: Option<u64>,
) -> Result<crate::geo::Area, ApiError> {
    let city = match city {
        None => None,
        Some(c)
            if !c.trim().is_empty()
                && c.chars().count() <= MAX_CITY_LEN
                && c.chars()
                    .all(|ch| ch.is_alphanumeric() || matches!(ch, ' ' | '_' | '-' | '.' | '\'')) =>
        {
            Some(c.replace('_', " ").trim().to_lowercase())
        }
        Some(c) => {
            return Err(ApiError::invalid_request(format!(
                "city '{}' is not a city name: letters, digits, spaces and _ - . ' (at most {MAX_CITY_LEN})",
                c.chars().take(MAX_CITY_LEN).collect::<String>()
            )))
        }
    };
    let region = match region {
        None => None,
        Some(r) if (1..=3).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Some(r.to_ascii_uppercase())
        }
        Some(r) => {
            return Err(ApiError::invalid_request(format!(
                "region '{}' is not an ISO 3166-2 subdivision code (1 to 3 letters or digits, e.g. CA for California)",
                r.chars().take(16).collect::<String>()
            )))
        }
    };
    let asn = match asn {
        None => None,
        Some(a) if (1..=u64::from(u32::MAX)).contains(&a) => Some(a as u32),
        Some(a) => {
            return Err(ApiError::invalid_request(format!(
                "asn {a} is not an AS number (1 to {})",
                u32::MAX
            )))
        }
    };
    Ok(crate::geo::Area { city, region, asn })
}

/// Longest session lifetime any request may ask for (a relay may allow
/// less: `max_session_ttl_secs`).
pub const MAX_SESSION_TTL_SECS: u64 = 86_400;

/// Checks a session lifetime in seconds.
pub fn session_ttl(secs: Option<u64>) -> Result<Option<Duration>, ApiError> {
    match secs {
        None => Ok(None),
        Some(s) if (1..=MAX_SESSION_TTL_SECS).contains(&s) => Ok(Some(Duration::from_secs(s))),
        Some(s) => Err(ApiError::invalid_request(format!(
            "session_ttl_secs {s} is out of range (1 to {MAX_SESSION_TTL_SECS})"
        ))),
    }
}

/// Checks a session name.
pub fn session(s: Option<&str>) -> Result<Option<String>, ApiError> {
    match s {
        None => Ok(None),
        Some(s)
            if !s.is_empty()
                && s.len() <= MAX_SESSION_LEN
                && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(ApiError::invalid_request(format!(
            "session must be 1 to {MAX_SESSION_LEN} printable ASCII characters"
        ))),
    }
}

/// Checks a timeout in milliseconds.
pub fn timeout(ms: Option<u64>) -> Result<Duration, ApiError> {
    match ms {
        None => Ok(DEFAULT_JOB_TIMEOUT),
        Some(ms) if (1..=MAX_JOB_TIMEOUT.as_millis() as u64).contains(&ms) => {
            Ok(Duration::from_millis(ms))
        }
        Some(ms) => Err(ApiError::invalid_request(format!(
            "timeout_ms {ms} is out of range (1 to {})",
            MAX_JOB_TIMEOUT.as_millis()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_drops_connection_headers_and_json_mode_refuses_them() {
        let input = [
            ("Sec-Fetch-Mode", &b"cors"[..]),
            ("Host", b"x"),
            ("Accept", b"*/*"),
        ];
        let raw = headers(input.iter().copied(), false).unwrap();
        assert_eq!(
            raw,
            vec![("accept".to_string(), Bytes::from_static(b"*/*"))]
        );
        assert!(headers(input.iter().copied(), true).is_err());
        for refused in [
            "x-forwarded-for",
            "Forwarded",
            "via",
            "proxy-authorization",
            "x-spareband-node",
        ] {
            assert!(headers([(refused, &b"v"[..])], false).is_err(), "{refused}");
        }
    }
}
