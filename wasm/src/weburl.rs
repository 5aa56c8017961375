//! The core's URL parser. In the browser it is the browser's own `URL`: the
//! parser `fetch` uses, so the target policy sees exactly what will be
//! fetched, and the core carries no URL parser or Unicode tables of its own
//! (issue 16). The policy's rules run on its parts through
//! [`spareband_protocol::weburl::WebUrl`], as they do on the `url` crate's in
//! the relay and the native node. Built for the host (this crate's unit
//! tests), the `url` crate stands in; the browser suite runs the hostile-URL
//! matrix through the real thing.

#[cfg(target_arch = "wasm32")]
pub use browser::BrowserUrl as Url;
#[cfg(not(target_arch = "wasm32"))]
pub use url::Url;

#[cfg(target_arch = "wasm32")]
mod browser {
    use spareband_protocol::weburl::WebUrl;

    /// A URL as the browser's `URL` reads it, its parts read out once.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BrowserUrl {
        href: String,
        scheme: String,
        credentials: bool,
        host: Option<String>,
        port: Option<u16>,
        path: String,
    }

    impl WebUrl for BrowserUrl {
        fn parse(input: &str) -> Result<Self, String> {
            let u = web_sys::Url::new(input).map_err(|e| crate::js::describe(&e))?;
            let protocol = u.protocol();
            let host = u.hostname();
            Ok(BrowserUrl {
                href: u.href(),
                scheme: protocol.strip_suffix(':').unwrap_or(&protocol).to_string(),
                credentials: !u.username().is_empty() || !u.password().is_empty(),
                host: (!host.is_empty()).then_some(host),
                // The browser writes no port when it is the scheme's default.
                port: u.port().parse().ok(),
                path: u.pathname(),
            })
        }
        fn href(&self) -> &str {
            &self.href
        }
        fn scheme(&self) -> &str {
            &self.scheme
        }
        fn has_credentials(&self) -> bool {
            self.credentials
        }
        fn host_str(&self) -> Option<&str> {
            self.host.as_deref()
        }
        fn port(&self) -> Option<u16> {
            self.port
        }
        fn path(&self) -> &str {
            &self.path
        }
    }
}
