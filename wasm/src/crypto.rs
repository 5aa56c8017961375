//! The node key, SHA-256 and the relay's receipt signatures through the
//! browser's own Web Crypto, so that the core carries no curve arithmetic or
//! hash functions of its own (issue 16: they were a tenth of it). Ed25519 is
//! in Web Crypto from Chrome 137 (the manifest's `minimum_chrome_version`)
//! and Firefox 129 (the manifest asks for 142). The messages signed are the
//! protocol crate's, byte for byte what the native node signs with
//! `ed25519-dalek`; the relay verifies both alike.

use std::fmt;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_key(
        format: &str,
        data: &[u8],
        algorithm: &str,
        extractable: bool,
        usages: &js_sys::Array,
    ) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = exportKey, catch)]
    fn export_key(format: &str, key: &JsValue) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = sign, catch)]
    fn subtle_sign(algorithm: &str, key: &JsValue, data: &[u8])
        -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &str,
        key: &JsValue,
        signature: &[u8],
        data: &[u8],
    ) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = digest, catch)]
    fn subtle_digest(algorithm: &str, data: &[u8]) -> Result<js_sys::Promise, JsValue>;
    /// Base64 to a string of byte-valued characters.
    #[wasm_bindgen(catch)]
    fn atob(data: &str) -> Result<String, JsValue>;
}

const ED25519: &str = "Ed25519";

/// The fixed DER head of an Ed25519 private key in PKCS #8 (RFC 8410),
/// which Web Crypto takes where it takes no raw seed.
const PKCS8_HEAD: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Awaits a Web Crypto promise; the Web Crypto calls copy their inputs
/// before they return, so borrowed wasm memory is not read afterwards.
async fn settle(p: Result<js_sys::Promise, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(p?).await
}

fn bytes<const N: usize>(v: &JsValue) -> Option<[u8; N]> {
    let a = js_sys::Uint8Array::new(v);
    if a.length() as usize != N {
        return None;
    }
    let mut out = [0u8; N];
    a.copy_to(&mut out);
    Some(out)
}

/// The node's signing key: the seed (what is saved), its public key, and
/// the browser's key object that signs. Never printed: its `Debug` shows
/// the public key only.
pub struct NodeKey {
    seed: [u8; 32],
    public: [u8; 32],
    private: JsValue,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", hex::encode(self.public))
    }
}

impl NodeKey {
    /// The key of a 32-byte seed (RFC 8032). Its public key is read back
    /// from the browser (the `x` of the key's JWK).
    pub async fn from_seed(seed: [u8; 32]) -> Result<NodeKey, JsValue> {
        let der = [PKCS8_HEAD.as_slice(), &seed].concat();
        let usages = js_sys::Array::of1(&"sign".into());
        // Exportable once, to read the public key; the key that signs is not.
        let readable = settle(import_key("pkcs8", &der, ED25519, true, &usages)).await?;
        let private = settle(import_key("pkcs8", &der, ED25519, false, &usages)).await?;
        let jwk = settle(export_key("jwk", &readable)).await?;
        let x = js_sys::Reflect::get(&jwk, &"x".into())?
            .as_string()
            .ok_or("the browser's key has no public part")?;
        // JWK uses unpadded base64url; atob wants padded base64.
        let b64 = format!("{}=", x.replace('-', "+").replace('_', "/"));
        let raw = atob(&b64)?;
        let public: Vec<u8> = raw.chars().map(|c| c as u32 as u8).collect();
        let public = <[u8; 32]>::try_from(public.as_slice())
            .map_err(|_| "the browser's public key is not 32 bytes")?;
        Ok(NodeKey {
            seed,
            public,
            private,
        })
    }

    /// The seed, to save.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// An Ed25519 signature of `message`.
    pub async fn sign(&self, message: &[u8]) -> Result<[u8; 64], JsValue> {
        let sig = settle(subtle_sign(ED25519, &self.private, message)).await?;
        bytes(&sig).ok_or_else(|| "the browser's signature is not 64 bytes".into())
    }
}

/// Whether `signature` is `public`'s Ed25519 signature of `message`. A key
/// the browser refuses to import verifies nothing.
pub async fn verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let usages = js_sys::Array::of1(&"verify".into());
    let Ok(key) = settle(import_key("raw", public, ED25519, false, &usages)).await else {
        return false;
    };
    settle(subtle_verify(ED25519, &key, signature, message))
        .await
        .is_ok_and(|v| v.is_truthy())
}

/// SHA-256 of `data`.
pub async fn sha256(data: &[u8]) -> Result<[u8; 32], JsValue> {
    let d = settle(subtle_digest("SHA-256", data)).await?;
    bytes(&d).ok_or_else(|| "the browser's digest is not 32 bytes".into())
}
