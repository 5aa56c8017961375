//! A settings change from the options page: which fields it sets, how they
//! are read (trimmed, checksummed, parsed), and what the connection must do
//! about it. Plain Rust, tested natively.

use crate::settings::Settings;

/// The fields the options page may send; a missing one is left as it is.
#[derive(Debug, Default)]
pub struct Patch {
    /// An empty string goes back to the build's relay.
    pub relay_url: Option<String>,
    /// Daily cap in MB (0: none).
    pub daily_cap_mb: Option<u32>,
    /// Share only while the computer is idle.
    pub idle_only: Option<bool>,
    /// Most jobs at once.
    pub max_concurrency: Option<u16>,
    /// An empty string removes it.
    pub payout_address: Option<String>,
    /// Domain names, separated by spaces, commas or new lines.
    pub blocked_domains: Option<String>,
    /// Download speed limit, Mbit/s (0: none).
    pub max_mbps_down: Option<f64>,
    /// Upload speed limit, Mbit/s (0: none).
    pub max_mbps_up: Option<f64>,
    /// Monthly cap, GB (0: none).
    pub monthly_cap_gb: Option<f64>,
    /// The day of the month the plan resets.
    pub cap_reset_day: Option<u8>,
    /// When sharing may run (empty: always).
    pub schedule: Option<String>,
    /// Share on a metered connection.
    pub allow_metered: Option<bool>,
}

/// What a patch changed that the relay must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// The relay or the concurrency changed: the connection starts over (and
    /// registers everything in its handshake).
    pub reconnect: bool,
    /// The payout address changed.
    pub payout: bool,
    /// The blocked domains changed.
    pub blocked: bool,
}

/// Why a patch was refused: the owner's input is wrong (the words are shown
/// beside the form as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError(pub String);

impl Patch {
    /// The settings with the patch applied, and what changed; the current
    /// settings are left as they are when any field is refused.
    pub fn apply(self, current: &Settings) -> Result<(Settings, Changes), PatchError> {
        let mut s = current.clone();
        if let Some(url) = self.relay_url {
            s.relay_url = Some(url.trim().to_string()).filter(|u| !u.is_empty());
        }
        if let Some(v) = self.daily_cap_mb {
            s.daily_cap_mb = v;
        }
        if let Some(v) = self.idle_only {
            s.idle_only = v;
        }
        if let Some(v) = self.max_concurrency {
            s.max_concurrency = v;
        }
        if let Some(a) = self.payout_address {
            let a = a.trim();
            s.payout_address = if a.is_empty() {
                None
            } else {
                // Stored in its checksummed form.
                Some(
                    spareband_protocol::address::Address::parse(a)
                        .map_err(|e| PatchError(format!("Payout address: {e}.")))?
                        .to_checksum(),
                )
            };
        }
        s.max_mbps_down = self.max_mbps_down.unwrap_or(s.max_mbps_down);
        s.max_mbps_up = self.max_mbps_up.unwrap_or(s.max_mbps_up);
        s.monthly_cap_gb = self.monthly_cap_gb.unwrap_or(s.monthly_cap_gb);
        s.cap_reset_day = self.cap_reset_day.unwrap_or(s.cap_reset_day);
        s.allow_metered = self.allow_metered.unwrap_or(s.allow_metered);
        if let Some(text) = self.schedule {
            // Stored as the core writes it back, so the options page shows
            // what the node understood.
            s.schedule = spareband_protocol::controls::Schedule::parse(&text)
                .map_err(|e| PatchError(format!("Schedule: {e}.")))?
                .to_string();
        }
        if let Some(text) = self.blocked_domains {
            s.blocked_domains = Settings::parse_blocked(&text).map_err(PatchError)?;
        }
        s.validate().map_err(PatchError)?;
        let changes = Changes {
            reconnect: s.relay_url != current.relay_url
                || s.max_concurrency != current.max_concurrency,
            payout: s.payout_address != current.payout_address,
            blocked: s.blocked_domains != current.blocked_domains,
        };
        Ok((s, changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(f: impl FnOnce(&mut Patch)) -> Patch {
        let mut p = Patch::default();
        f(&mut p);
        p
    }

    #[test]
    fn a_patch_sets_only_its_fields() {
        let current = Settings::default();
        let (s, changes) = patch(|p| {
            p.daily_cap_mb = Some(500);
            p.blocked_domains = Some("b.example, A.example".into());
        })
        .apply(&current)
        .unwrap();
        assert_eq!(s.daily_cap_mb, 500);
        assert_eq!(s.blocked_domains, ["b.example", "a.example"]);
        assert_eq!(s.max_concurrency, current.max_concurrency);
        assert_eq!(
            changes,
            Changes {
                reconnect: false,
                payout: false,
                blocked: true
            }
        );
    }

    #[test]
    fn a_new_relay_reconnects_and_an_empty_one_goes_back_to_the_build() {
        let current = Settings::default();
        let (s, changes) = patch(|p| p.relay_url = Some(" https://relay.example ".into()))
            .apply(&current)
            .unwrap();
        assert_eq!(s.relay_url.as_deref(), Some("https://relay.example"));
        assert!(changes.reconnect);
        let (s, _) = patch(|p| p.relay_url = Some(String::new()))
            .apply(&s)
            .unwrap();
        assert_eq!(s.relay_url, None);
    }

    #[test]
    fn bad_input_is_refused_in_the_owners_words() {
        let current = Settings::default();
        let e = patch(|p| p.payout_address = Some("0x12".into()))
            .apply(&current)
            .unwrap_err();
        assert!(e.0.starts_with("Payout address: "), "{e:?}");
        let e = patch(|p| p.max_concurrency = Some(0))
            .apply(&current)
            .unwrap_err();
        assert!(e.0.starts_with("Concurrent requests must be between 1 and"));
        let e = patch(|p| p.blocked_domains = Some("not a domain!".into()))
            .apply(&current)
            .unwrap_err();
        assert!(e.0.starts_with("Blocked sites: "), "{e:?}");
    }
}
