//! One small GET over https, for what a webhook needs from the web: the signing certificate
//! of Amazon SNS (`http/webhooks.rs`). The server's certificate is checked against the
//! system's roots; no redirects, a timeout, a size cap.

use std::time::Duration;

/// The body of `url` (https only), at most `max_bytes`, within `timeout_secs`.
pub async fn get_small(url: &str, max_bytes: usize, timeout_secs: u32) -> Result<Vec<u8>, String> {
    if !url.starts_with("https://") {
        return Err(format!("not an https URL: {url}"));
    }
    super::init_tls();
    let timeout = Duration::from_secs(timeout_secs.max(1) as u64);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout / 2)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .user_agent(concat!("ritualist/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("GET {url}: more than {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
