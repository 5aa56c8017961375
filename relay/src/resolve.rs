//! The relay's own look at a target name before any node sees the job: it
//! resolves the name and refuses the job when any answer is not a public
//! address, and refuses names on the operator's deny list.
//!
//! Resolution uses the system resolver, after an optional hosts file of the
//! operator's (`hosts_file`: `address name…` lines, as /etc/hosts) that pins
//! names the relay must see a certain way. A name the relay cannot resolve
//! goes only to native nodes, which resolve it again and connect only to
//! addresses that pass their own check; browser nodes cannot check an
//! address before they connect, so for them the relay fails closed. See
//! SECURITY.md for what this does and does not stop.

use spareband_protocol::limits::MAX_DENIED_SITES;
use spareband_protocol::policy::{covering_domain, normalize_domain, TargetHost};
use spareband_protocol::{Target, TargetPolicy};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Longest the relay waits for a name to resolve before passing the job on.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// A hosts or deny-list file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line that is not valid.
    #[error("{path} line {line}: {why}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

fn read(path: &Path) -> Result<String, ListError> {
    std::fs::read_to_string(path).map_err(|source| ListError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Lower case, no trailing dot.
fn norm(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Names pinned by the operator, then the system resolver.
#[derive(Debug, Default)]
pub struct Resolver {
    hosts: HashMap<String, Vec<IpAddr>>,
}

impl Resolver {
    /// A resolver with the operator's hosts file, if any.
    pub fn new(hosts_file: Option<&Path>) -> Result<Self, ListError> {
        let mut hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
        if let Some(path) = hosts_file {
            for (i, line) in read(path)?.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let addr: IpAddr =
                    parts
                        .next()
                        .and_then(|a| a.parse().ok())
                        .ok_or_else(|| ListError::Line {
                            path: path.display().to_string(),
                            line: i + 1,
                            why: "expected an IP address, then names".into(),
                        })?;
                for name in parts {
                    hosts.entry(norm(name)).or_default().push(addr);
                }
            }
        }
        Ok(Resolver { hosts })
    }

    /// Every address `name` resolves to; `None` when it does not resolve in
    /// time.
    pub async fn resolve(&self, name: &str, port: u16) -> Option<Vec<IpAddr>> {
        if let Some(pinned) = self.hosts.get(&norm(name)) {
            return Some(pinned.clone());
        }
        let lookup = tokio::net::lookup_host((name, port));
        match tokio::time::timeout(DNS_TIMEOUT, lookup).await {
            Ok(Ok(addrs)) => Some(addrs.map(|a| a.ip()).collect()),
            _ => None,
        }
    }

    /// The relay's DNS check: `Err` names the first answer that is not
    /// public. Allow-listed targets and IP literals (checked when parsed)
    /// pass. On success, says what the relay learned of the target's
    /// addresses, for routing.
    pub async fn check(
        &self,
        policy: &TargetPolicy,
        target: &Target,
    ) -> Result<Screened, NotPublic> {
        let name = match &target.host {
            // A test target the operator let through: no address rule holds.
            _ if target.allow_listed => return Ok(Screened::Known(Vec::new())),
            TargetHost::Ip(ip) => return Ok(Screened::Known(vec![*ip])),
            TargetHost::Domain(name) => name,
        };
        let Some(addrs) = self.resolve(name, target.port).await else {
            tracing::debug!(%name, "target name did not resolve at the relay");
            return Ok(Screened::Unresolved);
        };
        if let Some(bad) = addrs
            .iter()
            .find(|a| policy.check_resolved(target, **a).is_err())
        {
            return Err(NotPublic {
                name: name.clone(),
                addr: *bad,
            });
        }
        Ok(Screened::Known(addrs))
    }
}

/// A target name the relay refuses: one of its DNS answers is not public.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} resolves to {addr}, which is not a public address")]
pub struct NotPublic {
    /// The name.
    pub name: String,
    /// Its first answer that is not public.
    pub addr: IpAddr,
}

/// What the relay knows of a target's addresses after its DNS check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screened {
    /// The literal address, or every address the name resolved to, each
    /// public (or the target is allow-listed).
    Known(Vec<IpAddr>),
    /// The name did not resolve in time at the relay. Only native nodes take
    /// such a job: they resolve it themselves and connect only to addresses
    /// they checked, which a browser cannot do before it connects.
    Unresolved,
}

impl Screened {
    /// The addresses known, none when unresolved.
    pub fn addrs(&self) -> &[IpAddr] {
        match self {
            Screened::Known(a) => a,
            Screened::Unresolved => &[],
        }
    }
}

/// The operator's deny list: domains whose jobs are refused, each entry
/// covering the domain and every name under it.
#[derive(Debug, Default)]
pub struct DenyList {
    suffixes: Vec<String>,
}

impl DenyList {
    /// Reads `one domain per line` (`#` starts a comment; a leading `*.` or
    /// `.` is allowed and means the same).
    pub fn from_file(path: Option<&Path>) -> Result<Self, ListError> {
        let Some(path) = path else {
            return Ok(DenyList::default());
        };
        let mut suffixes = Vec::new();
        for (i, line) in read(path)?.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let domain = normalize_domain(entry).ok_or_else(|| ListError::Line {
                path: path.display().to_string(),
                line: i + 1,
                why: format!("'{entry}' is not a domain name"),
            })?;
            suffixes.push(domain);
        }
        if suffixes.len() > MAX_DENIED_SITES {
            // Every node gets the list to check redirect hops against, in one
            // frame.
            return Err(ListError::Line {
                path: path.display().to_string(),
                line: 0,
                why: format!(
                    "{} entries; a deny list holds at most {MAX_DENIED_SITES} (list parent domains instead)",
                    suffixes.len()
                ),
            });
        }
        Ok(DenyList { suffixes })
    }

    /// The entry that denies `host`, if any.
    pub fn denies(&self, host: &str) -> Option<&str> {
        covering_domain(&self.suffixes, host)
    }

    /// The entries, normalised, as nodes receive them.
    pub fn entries(&self) -> &[String] {
        &self.suffixes
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.suffixes.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.suffixes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn deny_entries_cover_the_domain_and_below_only() {
        let f = file("# banks we never fetch\nbank.example\n*.Casino.Example.\n");
        let d = DenyList::from_file(Some(f.path())).unwrap();
        assert_eq!(d.denies("bank.example"), Some("bank.example"));
        assert_eq!(d.denies("www.BANK.example."), Some("bank.example"));
        assert_eq!(d.denies("casino.example"), Some("casino.example"));
        assert_eq!(d.denies("notbank.example"), None);
        assert_eq!(d.denies("bank.example.org"), None);
        assert!(DenyList::from_file(Some(file("bad entry/x\n").path())).is_err());
    }

    #[tokio::test]
    async fn any_private_answer_refuses_the_target() {
        let f = file("93.184.216.34 public.test\n93.184.216.34 rebind.test\n127.0.0.1 rebind.test\n10.1.2.3 printer.test\n");
        let r = Resolver::new(Some(f.path())).unwrap();
        let policy = TargetPolicy::public_only();
        let t = |u: &str| policy.check(u).unwrap();
        assert!(r.check(&policy, &t("http://public.test/")).await.is_ok());
        let e = r
            .check(&policy, &t("http://rebind.test/"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
        assert!(r
            .check(&policy, &t("https://PRINTER.test./"))
            .await
            .is_err());
        assert!(Resolver::new(Some(file("not-an-ip host\n").path())).is_err());
    }

    #[tokio::test]
    async fn the_relay_says_what_it_learned_and_allow_listed_targets_learn_nothing() {
        let f = file("93.184.216.34 public.test\n");
        let r = Resolver::new(Some(f.path())).unwrap();
        let policy = TargetPolicy::with_allow_list(&["127.0.0.1:8000"]).unwrap();
        let t = |u: &str| policy.check(u).unwrap();
        assert_eq!(
            r.check(&policy, &t("https://public.test/")).await,
            Ok(Screened::Known(vec!["93.184.216.34".parse().unwrap()]))
        );
        assert_eq!(
            r.check(&policy, &t("https://81.2.69.142/")).await,
            Ok(Screened::Known(vec!["81.2.69.142".parse().unwrap()]))
        );
        assert_eq!(
            r.check(&policy, &t("http://127.0.0.1:8000/")).await,
            Ok(Screened::Known(Vec::new()))
        );
        // `.invalid` never resolves (RFC 6761): only native nodes may take it.
        assert_eq!(
            r.check(&policy, &t("https://no-such-name.invalid/")).await,
            Ok(Screened::Unresolved)
        );
    }

    #[test]
    fn a_deny_list_longer_than_nodes_can_receive_is_refused_at_start() {
        let long: String = (0..=MAX_DENIED_SITES)
            .map(|i| format!("site{i}.example\n"))
            .collect();
        let e = DenyList::from_file(Some(file(&long).path())).unwrap_err();
        assert!(e.to_string().contains("at most 400"), "{e}");
    }
}
