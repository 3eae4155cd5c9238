//! The pooled HTTP/1 client used by every phase, plus tiny GET helpers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub fn client(concurrency: usize) -> Client {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.enforce_http(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency.max(1) * 2)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(conn)
}

/// GET a URL; (status, body). Bounded by `timeout`.
pub async fn get(client: &Client, url: &str, timeout: Duration) -> anyhow::Result<(u16, Bytes)> {
    get_as(client, url, None, timeout).await
}

/// [`get`] with a tenant API key (`Authorization: Bearer`).
pub async fn get_as(client: &Client, url: &str, api_key: Option<&str>, timeout: Duration) -> anyhow::Result<(u16, Bytes)> {
    let uri: hyper::Uri = url.parse()?;
    let mut req = hyper::Request::get(uri);
    if let Some(key) = api_key {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let req = req.body(Full::new(Bytes::new()))?;
    let fut = async {
        let resp = client.request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| anyhow::anyhow!("GET {url}: timed out after {timeout:?}"))?
}
