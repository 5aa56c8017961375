//! A customer of the relay API over a real HTTP connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

type ReqBody = Full<Bytes>;

#[derive(Clone)]
pub struct Customer {
    pub base: String,
    pub key: String,
    client: Client<HttpConnector, ReqBody>,
}

impl Customer {
    pub fn new(base: &str, key: &str) -> Self {
        Customer {
            base: base.to_string(),
            key: key.to_string(),
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build_http(),
        }
    }

    /// `POST /v1/fetch` with a JSON document; returns status and JSON.
    pub async fn fetch(&self, doc: Value) -> (u16, Value) {
        self.fetch_raw_body(doc.to_string().into_bytes(), Some(&self.key))
            .await
    }

    /// `GET` of a relay path with the key; returns status and JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get_text(path).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET` of a relay path with the key; returns status and text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let req = http::Request::get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.client.request(req).await.expect("relay answers");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST /v1/fetch` with any body and optional key.
    pub async fn fetch_raw_body(&self, body: Vec<u8>, key: Option<&str>) -> (u16, Value) {
        let mut req = http::Request::post(format!("{}/v1/fetch", self.base))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let res = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .expect("relay answers");
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, json)
    }

    /// A raw-mode request; `query` is the part after `?`.
    pub async fn raw(
        &self,
        method: &str,
        query: &str,
        body: Option<Vec<u8>>,
    ) -> http::Response<Incoming> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}/v1/raw?{query}", self.base))
            .header("authorization", format!("Bearer {}", self.key))
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        self.client.request(req).await.expect("relay answers")
    }
}

/// Percent-encodes a target URL for `/v1/raw?url=`.
pub fn enc(url: &str) -> String {
    url::form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

/// Decodes the base64 body of a `/v1/fetch` answer.
pub fn body_of(v: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v["body"].as_str().expect("body field"))
        .expect("base64")
}
