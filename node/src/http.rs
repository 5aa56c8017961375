//! The node's HTTP client: rustls, connection pooling, no cookie jar, no
//! stored credentials, no decompression (bytes pass through as the target
//! sent them).
//!
//! The target policy runs twice for every hop: on the URL (scheme, host
//! literal, port) and on every address the name resolves to, inside the
//! connector's resolver. The connector then connects only to the addresses
//! that were checked, so a DNS answer cannot steer the node into its owner's
//! network between the check and the connect.

use crate::guard::HopGuard;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use spareband_protocol::policy::is_public_ip;
use spareband_protocol::TargetPolicy;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Time allowed to open a TCP connection to a target.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections to targets are closed after this.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Request bodies the client sends.
pub type ReqBody = UnsyncBoxBody<Bytes, Infallible>;

/// A resolution the policy refused.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name resolves to a non-public address.
    #[error("{host} resolves to {addr}, which is not a public address")]
    Forbidden {
        /// The name.
        host: String,
        /// The offending address.
        addr: IpAddr,
    },
    /// The name resolves into the owner's own network.
    #[error("{host} resolves to {source}")]
    Own {
        /// The name.
        host: String,
        /// Which rule.
        source: spareband_protocol::rules::RuleError,
    },
    /// DNS failed.
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        /// The name.
        host: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A resolver that refuses names with any non-public address, unless the name
/// is on the allow list.
#[derive(Clone)]
pub struct PolicyResolver {
    policy: Arc<TargetPolicy>,
    guard: Arc<HopGuard>,
}

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| ResolveError::Lookup {
                    host: host.clone(),
                    source,
                })?
                .collect();
            if !policy.allows_host(&host) {
                if let Some(bad) = addrs.iter().find(|a| !is_public_ip(a.ip())) {
                    return Err(ResolveError::Forbidden {
                        host,
                        addr: bad.ip(),
                    });
                }
                if let Some(Err(source)) = addrs
                    .iter()
                    .map(|a| guard.check_address(a.ip()))
                    .find(Result::is_err)
                {
                    return Err(ResolveError::Own { host, source });
                }
            }
            Ok(addrs.into_iter())
        })
    }
}

/// The pooled client.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<PolicyResolver>>, ReqBody>;

/// The TCP connector every target connection goes through: names are
/// resolved, and every address checked, by [`PolicyResolver`]. Tunnels
/// (`CONNECT` jobs) use it bare.
pub type Connector = HttpConnector<PolicyResolver>;

/// Builds the connector for a policy.
pub fn connector(policy: Arc<TargetPolicy>, guard: Arc<HopGuard>) -> Connector {
    let mut http = HttpConnector::new_with_resolver(PolicyResolver { policy, guard });
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    http
}

/// Builds the client for a policy.
pub fn client(
    policy: Arc<TargetPolicy>,
    guard: Arc<HopGuard>,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> HttpClient {
    let http = connector(policy, guard);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for r in extra_roots {
        // A root that does not parse is a test's mistake: it fails there.
        let _ = roots.add(r.clone());
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(https)
}

/// Finds a policy refusal in an error's source chain.
pub fn forbidden_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r @ (ResolveError::Forbidden { .. } | ResolveError::Own { .. })) =
            err.downcast_ref::<ResolveError>()
        {
            return Some(r.to_string());
        }
        cur = err.source();
    }
    None
}

/// The whole error chain as one line.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}
