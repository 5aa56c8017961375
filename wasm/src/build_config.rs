//! What a build of the extension is allowed to do, fixed at compile time.
//!
//! A release build always connects to [`DEFAULT_RELAY_URL`] (the user may
//! choose another relay in the options) and fetches public targets only. A
//! development build (`--features dev`) also reads, at compile time:
//! `SPAREBAND_RELAY_URL`, `SPAREBAND_ALLOW_TARGETS` (comma-separated
//! `host:port` test targets) and `SPAREBAND_AUTOSTART=1` (share without the
//! consent click, for automated tests). Without the feature there is no code
//! that reads them, so nothing at run time can widen the policy.

use spareband_protocol::{PolicyError, TargetPolicy};

/// The relay a release build connects to unless the user picks another.
pub const DEFAULT_RELAY_URL: &str = "wss://relay.spareband.org/v1/node";

/// The compiled-in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    /// Relay to use when the user has not set one.
    pub relay_url: String,
    /// Non-public `host:port` targets (development builds only).
    pub allow_targets: Vec<String>,
    /// Start sharing without the consent click (development builds only).
    pub autostart: bool,
    /// Whether this is a development build.
    pub dev: bool,
}

impl BuildConfig {
    /// The configuration this binary was built with.
    pub fn current() -> Self {
        #[cfg(feature = "dev")]
        {
            Self::from_env(
                option_env!("SPAREBAND_RELAY_URL"),
                option_env!("SPAREBAND_ALLOW_TARGETS"),
                option_env!("SPAREBAND_AUTOSTART"),
            )
        }
        #[cfg(not(feature = "dev"))]
        {
            Self::release()
        }
    }

    /// A release build's configuration.
    pub fn release() -> Self {
        BuildConfig {
            relay_url: DEFAULT_RELAY_URL.to_string(),
            allow_targets: Vec::new(),
            autostart: false,
            dev: false,
        }
    }

    /// A development build's configuration from the three variables.
    pub fn from_env(relay: Option<&str>, allow: Option<&str>, autostart: Option<&str>) -> Self {
        BuildConfig {
            relay_url: relay
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or(DEFAULT_RELAY_URL)
                .to_string(),
            allow_targets: allow
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            autostart: autostart.map(str::trim) == Some("1"),
            dev: true,
        }
    }

    /// The target policy of this build.
    pub fn policy(&self) -> Result<TargetPolicy, PolicyError> {
        // Browser nodes take only https on 443 (or an allow-listed test
        // target): see `Target::fits_browser` for why.
        if self.dev {
            Ok(
                TargetPolicy::with_allow_list_in::<crate::weburl::Url, _>(&self.allow_targets)?
                    .for_browser(),
            )
        } else {
            Ok(TargetPolicy::public_only().for_browser())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weburl::Url;

    #[test]
    fn a_release_build_reaches_public_targets_only() {
        let c = BuildConfig::release();
        let p = c.policy().unwrap();
        assert!(p.check_in::<Url>("http://127.0.0.1:8080/").is_err());
        assert!(p.check_in::<Url>("https://example.com/").is_ok());
        assert!(!c.autostart);
        assert_eq!(c.relay_url, DEFAULT_RELAY_URL);
    }

    #[test]
    fn a_dev_build_takes_its_three_variables() {
        let c = BuildConfig::from_env(
            Some("ws://127.0.0.1:9000/v1/node"),
            Some("127.0.0.1:8080, localhost:8081"),
            Some("1"),
        );
        assert_eq!(c.relay_url, "ws://127.0.0.1:9000/v1/node");
        assert!(c.autostart);
        let p = c.policy().unwrap();
        assert!(p.check_in::<Url>("http://127.0.0.1:8080/").is_ok());
        assert!(p.check_in::<Url>("http://localhost:8081/").is_ok());
        assert!(p.check_in::<Url>("http://127.0.0.1:8082/").is_err());
        let none = BuildConfig::from_env(None, None, None);
        assert!(!none.autostart && none.allow_targets.is_empty());
    }

    #[cfg(not(feature = "dev"))]
    #[test]
    fn this_build_is_a_release_build() {
        assert_eq!(BuildConfig::current(), BuildConfig::release());
    }
}
