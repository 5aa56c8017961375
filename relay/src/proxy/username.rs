//! The proxy username: a label of the customer's choosing followed by
//! targeting parameters, each a name and a value separated by `-`, the way
//! residential proxy networks take them
//! (`user-country-us-city-new_york-session-abc123-sesstime-30`). The label
//! is always the first word; every word after it is a parameter name or
//! its value. An unknown name, a name without a value, a name given twice
//! or a value out of its range is an error naming it: a typo never falls
//! back silently to a job without the targeting the customer asked for.

use std::fmt;
use std::time::Duration;

/// Longest session name (`session-ID`).
pub const MAX_SESSION_LEN: usize = 50;
/// Longest session lifetime a username may ask for, in minutes (a day).
pub const MAX_SESSTIME_MINUTES: u64 = 1440;
/// A session's lifetime when the username names none, in minutes.
pub const DEFAULT_SESSTIME_MINUTES: u64 = 10;
/// Longest username read: a label and every parameter fit well within it.
pub const MAX_USERNAME_LEN: usize = 512;

/// How a `CONNECT` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// An end-to-end TLS tunnel through a native node (the default).
    #[default]
    Tunnel,
    /// The relay ends the customer's TLS with its proxy CA and runs each
    /// request inside as an ordinary job.
    Fetch,
}

/// What a username asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Targeting {
    /// The customer's own label (the first word), unused by the relay.
    pub label: String,
    /// ISO country code, upper case.
    pub country: Option<String>,
    /// City name, underscores read as spaces, lower case.
    pub city: Option<String>,
    /// Region (subdivision) code, upper case.
    pub region: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Sticky session name.
    pub session: Option<String>,
    /// How long the session keeps its node after its last use.
    pub sesstime: Option<Duration>,
    /// How a `CONNECT` is served.
    pub mode: Mode,
}

/// What is wrong with a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameError {
    /// No label at all (an empty username).
    Empty,
    /// Longer than [`MAX_USERNAME_LEN`].
    TooLong,
    /// A parameter this proxy does not know.
    Unknown(String),
    /// A parameter with no value after it.
    MissingValue(&'static str),
    /// A parameter given twice.
    Twice(&'static str),
    /// A value out of its parameter's range.
    Invalid {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

impl fmt::Display for UsernameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsernameError::Empty => f.write_str("the proxy username is empty: give any label, e.g. 'user'"),
            UsernameError::TooLong => write!(f, "the proxy username is longer than {MAX_USERNAME_LEN} bytes"),
            UsernameError::Unknown(name) => write!(
                f,
                "unknown parameter '{name}' in the proxy username (known: country, city, region, asn, session, sesstime, mode)"
            ),
            UsernameError::MissingValue(name) => {
                write!(f, "the parameter '{name}' in the proxy username has no value")
            }
            UsernameError::Twice(name) => {
                write!(f, "the parameter '{name}' appears twice in the proxy username")
            }
            UsernameError::Invalid { name, value, expected } => write!(
                f,
                "'{value}' is not a valid {name} in the proxy username: expected {expected}"
            ),
        }
    }
}

impl std::error::Error for UsernameError {}

impl Targeting {
    /// The city, region and AS number asked for, checked as the JSON and
    /// raw APIs check them.
    pub fn area(&self) -> Result<crate::geo::Area, crate::error::ApiError> {
        crate::api::request::area(
            self.city.as_deref(),
            self.region.as_deref(),
            self.asn.map(u64::from),
        )
    }

    /// The session's lifetime for a job: `sesstime` minutes, 10 when a
    /// session names none. A `sesstime` without a session stays, so that
    /// the job is refused in words, as the APIs refuse a lifetime without
    /// a session (never ignored).
    pub fn session_ttl(&self) -> Option<Duration> {
        match self.session {
            Some(_) => Some(
                self.sesstime
                    .unwrap_or(Duration::from_secs(DEFAULT_SESSTIME_MINUTES * 60)),
            ),
            None => self.sesstime,
        }
    }
}

/// Reads a username.
pub fn parse(username: &str) -> Result<Targeting, UsernameError> {
    if username.len() > MAX_USERNAME_LEN {
        return Err(UsernameError::TooLong);
    }
    let mut words = username.split('-');
    let label = words.next().unwrap_or_default();
    if label.is_empty() {
        return Err(UsernameError::Empty);
    }
    let mut t = Targeting {
        label: label.to_string(),
        ..Targeting::default()
    };
    let mut mode = None;
    while let Some(word) = words.next() {
        let name = known(word)?;
        let value = words.next().ok_or(UsernameError::MissingValue(name))?;
        let invalid = |expected| UsernameError::Invalid {
            name,
            value: value.to_string(),
            expected,
        };
        let given = match name {
            "country" => {
                let ok = value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic());
                set(&mut t.country, ok.then(|| value.to_ascii_uppercase()), name)
                    .map_err(|e| e.unwrap_or_else(|| invalid("a two-letter ISO 3166 code")))
            }
            "city" => {
                let ok = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                let city = value.replace('_', " ").to_ascii_lowercase();
                set(&mut t.city, ok.then_some(city), name)
                    .map_err(|e| e.unwrap_or_else(|| invalid("letters and digits, '_' for spaces")))
            }
            "region" => {
                let ok = (1..=3).contains(&value.len())
                    && value.bytes().all(|b| b.is_ascii_alphanumeric());
                set(&mut t.region, ok.then(|| value.to_ascii_uppercase()), name).map_err(|e| {
                    e.unwrap_or_else(|| {
                        invalid("an ISO 3166-2 subdivision code (1 to 3 letters or digits)")
                    })
                })
            }
            "asn" => {
                let asn = value
                    .strip_prefix("AS")
                    .or_else(|| value.strip_prefix("as"))
                    .unwrap_or(value)
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0);
                set(&mut t.asn, asn, name)
                    .map_err(|e| e.unwrap_or_else(|| invalid("an AS number, e.g. 3320")))
            }
            "session" => {
                let ok = (1..=MAX_SESSION_LEN).contains(&value.len())
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~'));
                set(&mut t.session, ok.then(|| value.to_string()), name).map_err(|e| {
                    e.unwrap_or_else(|| invalid("1 to 50 characters of 0-9 A-Z a-z . _ ~"))
                })
            }
            "sesstime" => {
                let minutes = value
                    .parse::<u64>()
                    .ok()
                    .filter(|m| (1..=MAX_SESSTIME_MINUTES).contains(m));
                let d = minutes.map(|m| Duration::from_secs(m * 60));
                set(&mut t.sesstime, d, name)
                    .map_err(|e| e.unwrap_or_else(|| invalid("minutes, 1 to 1440")))
            }
            "mode" => {
                let m = match value {
                    "tunnel" => Some(Mode::Tunnel),
                    "fetch" => Some(Mode::Fetch),
                    _ => None,
                };
                set(&mut mode, m, name).map_err(|e| e.unwrap_or_else(|| invalid("tunnel or fetch")))
            }
            _ => unreachable!("known() returns only the names above"),
        };
        given?;
    }
    t.mode = mode.unwrap_or_default();
    Ok(t)
}

/// The parameter `word` names, or the error naming it.
fn known(word: &str) -> Result<&'static str, UsernameError> {
    const NAMES: [&str; 7] = [
        "country", "city", "region", "asn", "session", "sesstime", "mode",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(word))
        .copied()
        .ok_or_else(|| UsernameError::Unknown(word.chars().take(40).collect()))
}

/// Sets a parameter once: `Err(Some)` when it was already set, `Err(None)`
/// when the value was not valid.
fn set<T>(
    slot: &mut Option<T>,
    value: Option<T>,
    name: &'static str,
) -> Result<(), Option<UsernameError>> {
    if slot.is_some() {
        return Err(Some(UsernameError::Twice(name)));
    }
    *slot = Some(value.ok_or(None)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_read() {
        let t = parse("user-country-us-city-new_york-region-ny-asn-7922-session-abc.1_~x-sesstime-30-mode-fetch").unwrap();
        assert_eq!(
            t,
            Targeting {
                label: "user".into(),
                country: Some("US".into()),
                city: Some("new york".into()),
                region: Some("NY".into()),
                asn: Some(7922),
                session: Some("abc.1_~x".into()),
                sesstime: Some(Duration::from_secs(1800)),
                mode: Mode::Fetch,
            }
        );
        let plain = parse("scraper").unwrap();
        assert_eq!(
            (plain.label.as_str(), plain.mode),
            ("scraper", Mode::Tunnel)
        );
        assert_eq!(parse("u-ASN-AS3320").unwrap().asn, Some(3320));
    }

    #[test]
    fn every_mistake_names_its_parameter() {
        let err = |u: &str| parse(u).unwrap_err();
        assert_eq!(
            err("user-contry-us"),
            UsernameError::Unknown("contry".into())
        );
        assert!(err("user-contry-us").to_string().contains("'contry'"));
        assert_eq!(err("user-country"), UsernameError::MissingValue("country"));
        assert_eq!(
            err("user-country-us-country-de"),
            UsernameError::Twice("country")
        );
        assert_eq!(err(""), UsernameError::Empty);
        assert_eq!(err("-country-us"), UsernameError::Empty);
        assert_eq!(
            err(&"u".repeat(MAX_USERNAME_LEN + 1)),
            UsernameError::TooLong
        );
        for (u, name) in [
            ("u-country-usa", "country"),
            ("u-city-new york", "city"),
            ("u-region-abcd", "region"),
            ("u-asn-0", "asn"),
            ("u-asn-x1", "asn"),
            ("u-session-a/b", "session"),
            (&format!("u-session-{}", "a".repeat(51)), "session"),
            ("u-sesstime-0", "sesstime"),
            ("u-sesstime-1441", "sesstime"),
            ("u-mode-socks", "mode"),
        ] {
            match err(u) {
                UsernameError::Invalid { name: n, .. } => assert_eq!(n, name, "{u}"),
                other => panic!("{u}: {other:?}"),
            }
        }
        assert!(parse("u-sesstime-1440").is_ok() && parse("u-sesstime-1").is_ok());
        assert!(parse(&format!("u-session-{}", "a".repeat(50))).is_ok());
    }
}
