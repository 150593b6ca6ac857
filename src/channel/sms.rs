//! SMS through Kannel's HTTP `sendsms` interface (smsbox).
//!
//! Request: `GET <url>?username=…&password=…&to=<E.164>&text=<UTF-8>&charset=UTF-8&coding=<0|2>`
//! (`from` when configured). `coding=2` (UCS-2) is chosen for any text outside GSM-7 —
//! Cyrillic, Romanian ș/ț — so the handset shows it intact. Kannel answers `202` with
//! `0: Accepted for delivery` or `3: Queued for later delivery`; `4xx` (bad credentials, bad
//! number) cannot succeed on retry; `5xx`, timeouts and refused connections can.

use std::time::Duration;

use super::SendError;
use crate::config::KannelConfig;
use crate::render::{SmsEncoding, sms_length};

#[derive(Debug)]
pub struct Kannel {
    cfg: KannelConfig,
    http: reqwest::Client,
}

impl Kannel {
    pub fn new(cfg: KannelConfig) -> Result<Kannel, SendError> {
        super::init_tls();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs as u64))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.min(10) as u64))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SendError::permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Kannel { cfg, http })
    }

    pub async fn send(&self, to: &str, text: &str) -> Result<String, SendError> {
        let coding = match sms_length(text).encoding {
            SmsEncoding::Gsm7 => "0",
            SmsEncoding::Ucs2 => "2",
        };
        let mut query: Vec<(&str, &str)> = vec![
            ("username", self.cfg.username.as_str()),
            ("password", self.cfg.password.expose()),
            ("to", to),
            ("text", text),
            ("charset", "UTF-8"),
            ("coding", coding),
        ];
        if let Some(from) = &self.cfg.from {
            query.push(("from", from.as_str()));
        }
        let resp = self
            .http
            .get(&self.cfg.url)
            .query(&query)
            .send()
            .await
            .map_err(|e| {
                // The URL carries the password: never let it reach an error message.
                SendError::transient(format!("kannel unreachable: {}", e.without_url()))
            })?;
        let status = resp.status();
        let body: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let body = body.trim().to_string();
        if status.is_success() {
            Ok(format!("{} {body}", status.as_u16()))
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::transient(format!(
                "kannel {}: {body}",
                status.as_u16()
            )))
        } else {
            Err(SendError::permanent(format!(
                "kannel {}: {body}",
                status.as_u16()
            )))
        }
    }
}
