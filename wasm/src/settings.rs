//! The owner's settings and the rules that decide, from them, whether the node
//! shares right now. Enforced here in the core, whatever the UI shows.

use spareband_protocol::controls;
use spareband_protocol::PauseReason;

/// Most jobs a browser node runs at once.
pub const MAX_BROWSER_CONCURRENCY: u16 = 64;
/// Default daily data cap, in MB (10^6 bytes).
pub const DEFAULT_DAILY_CAP_MB: u32 = 1000;
/// Default concurrency.
pub const DEFAULT_CONCURRENCY: u16 = 8;

/// What the owner chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The sharing switch.
    pub sharing: bool,
    /// Whether the owner has switched sharing on once on the consent screen.
    pub consent: bool,
    /// A relay chosen in the options; the build's relay when `None`.
    pub relay_url: Option<String>,
    /// Daily data cap in MB; 0 means no cap.
    pub daily_cap_mb: u32,
    /// Share only while the computer is idle.
    pub idle_only: bool,
    /// Most jobs at once.
    pub max_concurrency: u16,
    /// The EVM address rewards are paid to, EIP-55 form.
    pub payout_address: Option<String>,
    /// Domains this node never fetches (each with its subdomains), in the
    /// form `spareband_protocol::policy::normalize_domain` gives.
    pub blocked_domains: Vec<String>,
    /// Download speed limit in Mbit/s; 0 means none.
    pub max_mbps_down: f64,
    /// Upload speed limit in Mbit/s; 0 means none.
    pub max_mbps_up: f64,
    /// Monthly data cap in GB (10^9 bytes); 0 means no cap.
    pub monthly_cap_gb: f64,
    /// The day of the month the owner's plan resets (1..=31).
    pub cap_reset_day: u8,
    /// When sharing may run, as `spareband_protocol::controls::Schedule`
    /// reads it; empty means always.
    pub schedule: String,
    /// Share on a connection the browser reports as metered.
    pub allow_metered: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sharing: false,
            consent: false,
            relay_url: None,
            daily_cap_mb: DEFAULT_DAILY_CAP_MB,
            idle_only: false,
            max_concurrency: DEFAULT_CONCURRENCY,
            payout_address: None,
            blocked_domains: Vec::new(),
            max_mbps_down: 0.0,
            max_mbps_up: 0.0,
            monthly_cap_gb: 0.0,
            cap_reset_day: 1,
            schedule: String::new(),
            allow_metered: false,
        }
    }
}

/// Largest monthly cap, GB: more than any plan, small enough to stay exact.
pub const MAX_MONTHLY_CAP_GB: f64 = 1_000_000.0;

/// What the browser's `idle` API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Someone is using the computer.
    Active,
    /// No input for a while.
    Idle,
    /// The screen is locked.
    Locked,
}

impl IdleState {
    /// From the API's string.
    pub fn parse(s: &str) -> Self {
        match s {
            "idle" => IdleState::Idle,
            "locked" => IdleState::Locked,
            _ => IdleState::Active,
        }
    }
}

/// Whether and how the node shares now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Not connected: consent not yet given.
    NeedsConsent,
    /// Not connected: the owner switched sharing off.
    SwitchedOff,
    /// Connected, taking no jobs.
    Paused(PauseReason),
    /// Connected and taking jobs.
    Sharing,
}

impl Settings {
    /// Checks values from the options page.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_BROWSER_CONCURRENCY).contains(&self.max_concurrency) {
            return Err(format!(
                "Concurrent requests must be between 1 and {MAX_BROWSER_CONCURRENCY}."
            ));
        }
        if self.daily_cap_mb > 10_000_000 {
            return Err("The daily cap is too large; use 0 for no cap.".into());
        }
        for (name, v) in [
            ("Download", self.max_mbps_down),
            ("Upload", self.max_mbps_up),
        ] {
            let ok = v == 0.0 || (controls::MIN_MBPS..=controls::MAX_MBPS).contains(&v);
            if !ok {
                return Err(format!(
                    "{name} speed limit: {} Mbit/s, or 0 for none.",
                    controls::MBPS_RANGE
                ));
            }
        }
        if !(0.0..=MAX_MONTHLY_CAP_GB).contains(&self.monthly_cap_gb) {
            return Err("The monthly cap must be 0 (no cap) or a number of GB.".into());
        }
        controls::Limits::check_reset_day(self.cap_reset_day)
            .map_err(|_| "The reset day is a day of the month, 1 to 31.".to_string())?;
        controls::Schedule::parse(&self.schedule).map_err(|e| format!("Schedule: {e}."))?;
        if let Some(a) = &self.payout_address {
            spareband_protocol::address::Address::parse(a)
                .map_err(|e| format!("Payout address: {e}."))?;
        }
        if let Some(typed) = &self.relay_url {
            let list = spareband_protocol::gateway::relay_list(typed);
            if list.len() > spareband_protocol::limits::MAX_RELAYS {
                return Err(format!(
                    "Relay: at most {} relays.",
                    spareband_protocol::limits::MAX_RELAYS
                ));
            }
            for url in list {
                spareband_protocol::identity::canonical_origin_in::<crate::weburl::Url>(url)
                    .map_err(|e| format!("Relay {url}: {e}."))?;
            }
        }
        if self.blocked_domains.len() > spareband_protocol::limits::MAX_BLOCKED_SITES {
            return Err(format!(
                "Blocked sites: at most {} domains.",
                spareband_protocol::limits::MAX_BLOCKED_SITES
            ));
        }
        for d in &self.blocked_domains {
            if spareband_protocol::policy::normalize_domain(d).as_deref() != Some(d.as_str()) {
                return Err(format!("Blocked sites: '{d}' is not a domain name."));
            }
        }
        Ok(())
    }

    /// Reads the owner's list of blocked sites: domain names separated by
    /// spaces, commas or new lines.
    pub fn parse_blocked(text: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for entry in text.split(|c: char| c.is_whitespace() || c == ',') {
            if entry.is_empty() {
                continue;
            }
            let d = spareband_protocol::policy::normalize_domain(entry).ok_or_else(|| {
                format!(
                    "Blocked sites: '{entry}' is not a domain name (write it like example.com)."
                )
            })?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The blocked domain that covers `host`, if any.
    pub fn blocks(&self, host: &str) -> Option<&str> {
        spareband_protocol::policy::covering_domain(&self.blocked_domains, host)
    }

    /// The caps and schedule, as both nodes apply them (validated settings;
    /// a schedule that does not read is "always").
    pub fn limits(&self) -> controls::Limits {
        controls::Limits {
            daily_cap_bytes: (self.daily_cap_mb > 0)
                .then_some(self.daily_cap_mb as u64 * 1_000_000),
            monthly_cap_bytes: (self.monthly_cap_gb > 0.0)
                .then_some((self.monthly_cap_gb * 1e9) as u64),
            reset_day: self.cap_reset_day.clamp(1, 31),
            schedule: controls::Schedule::parse(&self.schedule).unwrap_or_default(),
            allow_metered: self.allow_metered,
        }
    }

    /// The speed limits, `(download, upload)`.
    pub fn paces(&self) -> (Option<controls::Pace>, Option<controls::Pace>) {
        let pace = |v: f64| (v > 0.0).then(|| controls::Pace::mbps(v));
        (pace(self.max_mbps_down), pace(self.max_mbps_up))
    }

    /// Decides availability from the settings, the owner's limits (from
    /// [`Settings::limits`]), the usage, the local time, the connection and
    /// idleness.
    pub fn availability(&self, limits: &controls::Limits, now: &Now) -> Availability {
        if !self.consent {
            Availability::NeedsConsent
        } else if !self.sharing {
            Availability::SwitchedOff
        } else if let Some(reason) = limits.pause(now.usage, now.time, now.metered) {
            Availability::Paused(reason)
        } else if self.idle_only && now.idle == IdleState::Active {
            Availability::Paused(PauseReason::NotIdle)
        } else {
            Availability::Sharing
        }
    }
}

/// What availability depends on besides the settings.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Bytes shared today and this billing month.
    pub usage: controls::Usage,
    /// The owner's local time.
    pub time: controls::LocalTime,
    /// What the browser says of the connection (`None`: it says nothing).
    pub metered: Option<bool>,
    /// Whether someone uses the computer.
    pub idle: IdleState,
}

/// A pause reason as the popup names it (its `_locales` message is
/// `pause_<code>`).
pub fn pause_code(r: spareband_protocol::PauseReason) -> &'static str {
    use spareband_protocol::PauseReason::*;
    match r {
        User => "user",
        DailyCap => "daily_cap",
        NotIdle => "not_idle",
        Other => "other",
        MonthlyCap => "monthly_cap",
        Schedule => "schedule",
        Metered => "metered",
    }
}

/// Entry `at` (wrapping) of the relays in `typed`, or `typed` itself when it
/// names none (an empty list is refused by the settings; the connection
/// then reports the address as unusable).
pub fn current_relay(typed: &str, at: usize) -> &str {
    let list = spareband_protocol::gateway::relay_list(typed);
    match list.len() {
        0 => typed,
        n => list[at % n],
    }
}

/// The relay to dial after relay `at` of `count`: another one, chosen by
/// `draw` (in `[0, 1)`), or the only one.
pub fn next_relay(at: usize, count: usize, draw: f64) -> usize {
    if count <= 1 {
        return 0;
    }
    let step = 1 + ((draw * (count - 1) as f64) as usize).min(count - 2);
    (at % count + step) % count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_sites_are_read_checked_and_matched() {
        let list = Settings::parse_blocked("Bank.example.\n*.casino.test, bank.example").unwrap();
        assert_eq!(list, ["bank.example", "casino.test"]);
        let s = Settings {
            blocked_domains: list,
            ..Settings::default()
        };
        assert!(s.validate().is_ok());
        assert_eq!(s.blocks("www.bank.example"), Some("bank.example"));
        assert_eq!(s.blocks("notbank.example"), None);
        assert!(Settings::parse_blocked("http://x.com/").is_err());
        let bad = Settings {
            blocked_domains: vec!["Not Valid".into()],
            ..Settings::default()
        };
        assert!(bad.validate().is_err());
    }

    fn on() -> Settings {
        Settings {
            sharing: true,
            consent: true,
            ..Settings::default()
        }
    }

    /// Availability at noon on 2026-12-04 (a Friday), with `today` bytes
    /// shared today and this month, on an unmetered connection.
    fn at(s: &Settings, today: u64, idle: IdleState) -> Availability {
        let now = Now {
            usage: controls::Usage {
                today,
                this_month: today,
            },
            time: controls::LocalTime::at(
                controls::Date {
                    year: 2026,
                    month: 12,
                    day: 4,
                },
                12 * 60,
            ),
            metered: Some(false),
            idle,
        };
        s.availability(&s.limits(), &now)
    }

    #[test]
    fn nothing_is_shared_before_consent_or_when_switched_off() {
        assert_eq!(
            at(&Settings::default(), 0, IdleState::Idle),
            Availability::NeedsConsent
        );
        let off = Settings {
            sharing: false,
            ..on()
        };
        assert_eq!(at(&off, 0, IdleState::Idle), Availability::SwitchedOff);
        assert_eq!(at(&on(), 0, IdleState::Active), Availability::Sharing);
    }

    #[test]
    fn the_cap_and_idleness_pause_sharing() {
        let s = Settings {
            daily_cap_mb: 1,
            ..on()
        };
        assert_eq!(at(&s, 999_999, IdleState::Active), Availability::Sharing);
        assert_eq!(
            at(&s, 1_000_000, IdleState::Active),
            Availability::Paused(PauseReason::DailyCap)
        );
        let no_cap = Settings {
            daily_cap_mb: 0,
            ..on()
        };
        assert_eq!(
            at(&no_cap, u64::MAX, IdleState::Active),
            Availability::Sharing
        );
        let idle_only = Settings {
            idle_only: true,
            ..on()
        };
        assert_eq!(
            at(&idle_only, 0, IdleState::Active),
            Availability::Paused(PauseReason::NotIdle)
        );
        assert_eq!(at(&idle_only, 0, IdleState::Locked), Availability::Sharing);
    }

    #[test]
    fn the_owners_new_controls_are_checked_and_pause_in_words() {
        let month = Settings {
            monthly_cap_gb: 0.000_001,
            ..on()
        };
        assert_eq!(
            at(&month, 1000, IdleState::Active),
            Availability::Paused(PauseReason::MonthlyCap)
        );
        let friday_off = Settings {
            schedule: "sat,sun 0-24".into(),
            ..on()
        };
        assert_eq!(
            at(&friday_off, 0, IdleState::Active),
            Availability::Paused(PauseReason::Schedule)
        );
        for (bad, says) in [
            (
                Settings {
                    max_mbps_down: 0.01,
                    ..on()
                },
                "Download speed limit",
            ),
            (
                Settings {
                    max_mbps_up: -1.0,
                    ..on()
                },
                "Upload speed limit",
            ),
            (
                Settings {
                    monthly_cap_gb: -1.0,
                    ..on()
                },
                "monthly cap",
            ),
            (
                Settings {
                    cap_reset_day: 0,
                    ..on()
                },
                "reset day",
            ),
            (
                Settings {
                    schedule: "weekdays".into(),
                    ..on()
                },
                "Schedule: ",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn settings_are_validated_and_old_saved_settings_still_load() {
        assert!(Settings {
            max_concurrency: 0,
            ..on()
        }
        .validate()
        .is_err());
        assert!(Settings {
            max_concurrency: 65,
            ..on()
        }
        .validate()
        .is_err());
        assert!(Settings {
            relay_url: Some("ftp://x".into()),
            ..on()
        }
        .validate()
        .is_err());
        assert!(Settings {
            relay_url: Some("https://relay.example".into()),
            ..on()
        }
        .validate()
        .is_ok());
        // Several relays of one network, each checked, at most MAX_RELAYS.
        assert!(Settings {
            relay_url: Some("https://a.example, https://b.example".into()),
            ..on()
        }
        .validate()
        .is_ok());
        assert_eq!(
            Settings {
                relay_url: Some("https://a.example ftp://b".into()),
                ..on()
            }
            .validate()
            .unwrap_err(),
            "Relay ftp://b: relay URL must start with wss://, ws://, https:// or http://."
        );
        let seventeen: Vec<String> = (0..17).map(|i| format!("https://r{i}.example")).collect();
        assert_eq!(
            Settings {
                relay_url: Some(seventeen.join(",")),
                ..on()
            }
            .validate()
            .unwrap_err(),
            "Relay: at most 16 relays."
        );
        assert_eq!(
            current_relay("https://a.example, https://b.example", 0),
            "https://a.example"
        );
        assert_eq!(
            current_relay("https://a.example, https://b.example", 3),
            "https://b.example"
        );
        assert_eq!(current_relay("https://a.example", 7), "https://a.example");
        // After a failure: another relay, each of the others for some draw.
        assert_eq!(next_relay(0, 1, 0.9), 0);
        assert_eq!(next_relay(1, 3, 0.0), 2);
        assert_eq!(next_relay(1, 3, 0.99), 0);
        assert_eq!(next_relay(0, 2, 0.5), 1);
    }

    /// Every state and pause reason the popup can be given has words in
    /// every language the extension ships (`extension/_locales`).
    #[test]
    fn every_state_and_pause_has_words_in_every_language() {
        let locales = [
            (
                "en",
                include_str!("../../extension/_locales/en/messages.json"),
            ),
            (
                "de",
                include_str!("../../extension/_locales/de/messages.json"),
            ),
        ];
        let reasons = [
            PauseReason::User,
            PauseReason::DailyCap,
            PauseReason::NotIdle,
            PauseReason::Other,
            PauseReason::MonthlyCap,
            PauseReason::Schedule,
            PauseReason::Metered,
        ];
        let states = [
            "needs_consent",
            "off",
            "connected",
            "unreachable",
            "connecting",
        ];
        for (lang, text) in locales {
            let messages: serde_json::Value = serde_json::from_str(text).unwrap();
            let keys = reasons
                .iter()
                .map(|r| format!("pause_{}", pause_code(*r)))
                .chain(states.iter().map(|s| format!("state_{s}")));
            for key in keys {
                assert!(
                    messages[&key]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{lang}: no message {key}"
                );
            }
        }
    }
}
