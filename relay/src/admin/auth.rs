//! Admin sign-in: the token checked against its hash, sessions held in
//! memory (a restart signs everyone out), a CSRF token per session, and
//! failed attempts slowed down and then locked out per address group (an
//! IPv6 /64 counts as one address: see [`crate::peer`]).

use crate::peer::AddrGroup;
use crate::secret::AdminToken;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const SIGN_IN_COOKIE: &str = "sb_admin";
/// How long a session lasts after sign-in.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once; the oldest goes first beyond that.
pub const MAX_SESSIONS: usize = 1000;
/// Failed sign-ins from one address within [`FAILURE_WINDOW`] before it is
/// locked out until the window has passed.
pub const MAX_FAILURES: u32 = 5;
/// The window failures are counted in, and the lockout's length.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Each failure is answered this much later per failure so far, so guessing
/// gets slower with every try even before the lockout.
pub const FAILURE_DELAY_STEP: Duration = Duration::from_millis(250);
/// Most address groups whose failures are remembered. When the table is
/// full, expired entries go first, then the oldest entry that is not locked
/// out, and a lockout only when every entry is one: flooding the table from
/// other addresses never erases it wholesale, so it cannot free a locked-out
/// attacker (who would have to lock out this many groups first). At about
/// 100 bytes an entry, the table stays near 1 MiB.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The token state-changing requests must carry (header `x-csrf-token`).
    pub csrf: String,
    expires: Instant,
    created: Instant,
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRefused {
    /// The token is wrong (which part, is never said).
    Wrong,
    /// Too many failures from this address: try again after this long.
    LockedOut(Duration),
}

#[derive(Debug)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Failures {
    fn expired(&self) -> bool {
        self.since.elapsed() >= FAILURE_WINDOW
    }

    fn locked(&self) -> bool {
        self.count >= MAX_FAILURES && !self.expired()
    }
}

/// Failed sign-ins per address group, at most [`MAX_TRACKED_ADDRESSES`].
#[derive(Debug, Default)]
struct FailureTable(HashMap<AddrGroup, Failures>);

impl FailureTable {
    /// Counts one failure; returns the failures in the current window.
    fn record(&mut self, group: AddrGroup) -> u32 {
        if !self.0.contains_key(&group) && self.0.len() >= MAX_TRACKED_ADDRESSES {
            self.make_room();
        }
        let entry = self.0.entry(group).or_insert(Failures {
            count: 0,
            since: Instant::now(),
        });
        if entry.expired() {
            *entry = Failures {
                count: 0,
                since: Instant::now(),
            };
        }
        entry.count += 1;
        entry.count
    }

    /// Frees one place (at least): expired entries, else the oldest
    /// unlocked one, else the oldest lockout.
    fn make_room(&mut self) {
        self.0.retain(|_, f| !f.expired());
        if self.0.len() < MAX_TRACKED_ADDRESSES {
            return;
        }
        let victim = self
            .0
            .iter()
            .min_by_key(|(_, f)| (f.locked(), f.since))
            .map(|(g, _)| *g);
        if let Some(g) = victim {
            self.0.remove(&g);
        }
    }
}

/// Everything the dashboard's access control holds.
pub struct AdminAuth {
    token: AdminToken,
    signed_in: Mutex<HashMap<[u8; 32], SignIn>>,
    failures: Mutex<FailureTable>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Sessions are stored under the hash of their cookie value.
fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

/// Equality that takes the same time wherever the strings differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl AdminAuth {
    /// Access control for `token`.
    pub fn new(token: AdminToken) -> Self {
        AdminAuth {
            token,
            signed_in: Mutex::new(HashMap::new()),
            failures: Mutex::new(FailureTable::default()),
        }
    }

    /// Whether `ip`'s address group is locked out now, and for how long.
    pub fn locked_out(&self, ip: IpAddr) -> Option<Duration> {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = f.0.get(&AddrGroup::of(ip))?;
        entry
            .locked()
            .then(|| FAILURE_WINDOW.saturating_sub(entry.since.elapsed()))
    }

    /// Checks a presented token from `ip`. On success returns the new
    /// session's cookie value and the session. On failure, also returns how
    /// long to wait before answering.
    pub fn sign_in(
        &self,
        ip: IpAddr,
        presented: &str,
    ) -> Result<(String, SignIn), (SignInRefused, Duration)> {
        if let Some(left) = self.locked_out(ip) {
            return Err((SignInRefused::LockedOut(left), Duration::ZERO));
        }
        if !self.token.matches(presented) {
            let count = self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(AddrGroup::of(ip));
            return Err((SignInRefused::Wrong, FAILURE_DELAY_STEP * count));
        }
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .remove(&AddrGroup::of(ip));
        let cookie = random_hex();
        let now = Instant::now();
        let session = SignIn {
            csrf: random_hex(),
            expires: now + SIGN_IN_TTL,
            created: now,
        };
        let mut s = self.signed_in.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| v.expires > now);
        if s.len() >= MAX_SESSIONS {
            if let Some(oldest) = s.iter().min_by_key(|(_, v)| v.created).map(|(k, _)| *k) {
                s.remove(&oldest);
            }
        }
        s.insert(key(&cookie), session.clone());
        Ok((cookie, session))
    }

    /// The live session for a cookie value.
    pub fn signed_in(&self, cookie: &str) -> Option<SignIn> {
        let s = self.signed_in.lock().unwrap_or_else(|e| e.into_inner());
        s.get(&key(cookie))
            .filter(|v| v.expires > Instant::now())
            .cloned()
    }

    /// Ends a session.
    pub fn sign_out(&self, cookie: &str) {
        self.signed_in
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(cookie));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AdminAuth {
        AdminAuth::new(AdminToken::from_clear("the-admin-token-0123").unwrap())
    }

    #[test]
    fn sessions_come_only_from_the_right_token() {
        let a = auth();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (cookie, s) = a.sign_in(ip, "the-admin-token-0123").unwrap();
        assert_eq!(a.signed_in(&cookie).unwrap().csrf, s.csrf);
        assert!(a.signed_in("made-up").is_none());
        a.sign_out(&cookie);
        assert!(a.signed_in(&cookie).is_none());
    }

    #[test]
    fn failures_slow_down_then_lock_out_only_that_address() {
        let a = auth();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let mut delays = Vec::new();
        for _ in 0..MAX_FAILURES {
            match a.sign_in(ip, "wrong") {
                Err((SignInRefused::Wrong, d)) => delays.push(d),
                other => panic!("{other:?}"),
            }
        }
        assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
        // Locked now, even with the right token.
        assert!(matches!(
            a.sign_in(ip, "the-admin-token-0123"),
            Err((SignInRefused::LockedOut(d), _)) if d <= FAILURE_WINDOW
        ));
        // Another address is not.
        assert!(a
            .sign_in("10.0.0.3".parse().unwrap(), "the-admin-token-0123")
            .is_ok());
    }

    /// Without the grouping (keying by exact address), the sixth address of
    /// the /64 signs in: checked once by hand.
    #[test]
    fn an_ipv6_64_is_one_address_and_a_mapped_ipv4_is_its_ipv4() {
        let a = auth();
        for i in 1..=MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8:5:6::{i}").parse().unwrap();
            assert!(matches!(
                a.sign_in(ip, "wrong"),
                Err((SignInRefused::Wrong, _))
            ));
        }
        let same_64: IpAddr = "2001:db8:5:6:abcd::99".parse().unwrap();
        assert!(matches!(
            a.sign_in(same_64, "the-admin-token-0123"),
            Err((SignInRefused::LockedOut(_), _))
        ));
        assert!(a
            .sign_in("2001:db8:5:7::1".parse().unwrap(), "the-admin-token-0123")
            .is_ok());
        for _ in 0..MAX_FAILURES {
            let _ = a.sign_in("192.0.2.9".parse().unwrap(), "wrong");
        }
        assert!(a.locked_out("::ffff:192.0.2.9".parse().unwrap()).is_some());
    }

    /// With the old rule (the table cleared when full), the flood below
    /// frees the locked-out address: checked once by hand.
    #[test]
    fn flooding_the_failure_table_never_lifts_a_lockout() {
        let a = auth();
        let attacker: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            let _ = a.sign_in(attacker, "wrong");
        }
        assert!(a.locked_out(attacker).is_some());
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let _ = a.sign_in(ip, "wrong");
        }
        assert!(a.locked_out(attacker).is_some());
        let len = a.failures.lock().unwrap().0.len();
        assert!(len <= MAX_TRACKED_ADDRESSES, "{len}");
    }

    #[test]
    fn comparison_is_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
