//! Kannel's inbound SMS: `GET`/`POST /sms/kannel` takes what a Kannel `group = sms-service`
//! sends, as it sends it, so a customer's STOP reaches ritualist with no adapter between them.
//!
//! | Kannel     | sender                                  | text                      | its encoding                             |
//! |------------|-----------------------------------------|---------------------------|------------------------------------------|
//! | `get-url`  | `from=%p`                               | `text=%b` (or `%a`)       | `coding=%c`, `charset=%C`                |
//! | `post-url` | `X-Kannel-From` (`send-sender = true`)  | the body                  | `X-Kannel-Coding`, `Content-Type` charset |
//!
//! Kannel hands the text over as it has it: a UCS-2 message is UTF-16BE bytes (`coding` 2,
//! charset `UTF-16BE`), a 7-bit one or one recoded by smsbox's `mo-recode` is UTF-8 (`coding`
//! 0). [`decode_text`] turns those bytes into text by the charset Kannel names (by the coding
//! when it names none). The text then goes through the same keyword path as every inbound
//! route ([`super::inbound::act`]): same consent records, same events, same replies.
//!
//! The key (`http.kannel_key_env`, default `RITUALIST_KANNEL_INBOUND_KEY`, or its `_FILE`) is
//! what Kannel can carry: `?key=` in the URL or the password of HTTP Basic (`user:key@` in the
//! URL), compared in constant time. A missing or wrong one is refused with 401 and logged;
//! while the key is unset the route answers 404.
//!
//! The answer is the reply SMS itself, `text/plain; charset=UTF-8`: the HELP text, the STOP
//! confirmation when one is configured, otherwise an empty body (`omit-empty = true` makes
//! Kannel send nothing). A reply outside GSM-7 carries `X-Kannel-Coding: 2` so Kannel sends it
//! as UCS-2 (`accept-x-kannel-headers = true`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::inbound::{act, reply};
use super::respond::{basic_password, same_secret};
use crate::app::App;
use crate::render::{SmsEncoding, sms_length};

/// The parameters of a query string, values as the bytes they encode (Kannel's `%b` and a
/// UCS-2 `%a` are not UTF-8).
fn query_pairs(query: &str) -> Vec<(String, Vec<u8>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&url_decode(k)).into_owned(),
                url_decode(v),
            )
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding to bytes: `+` is a space, `%XX` a byte; a `%`
/// not followed by two hex digits stays as it is.
fn url_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The text of an inbound SMS from the bytes Kannel sent, by `charset` (`%C`, the
/// `Content-Type` charset) or, when Kannel names none, by `coding` (`%c`: 2 is UCS-2).
/// UTF-16BE/UCS-2 and ISO-8859-1 are decoded as such, anything else as UTF-8; invalid
/// sequences become U+FFFD (a keyword is never read out of garbage).
fn decode_text(bytes: &[u8], coding: Option<&str>, charset: Option<&str>) -> String {
    let charset = charset
        .map(|c| c.trim().trim_matches('"').to_ascii_uppercase())
        .filter(|c| !c.is_empty());
    let ucs2 = match charset.as_deref() {
        Some(c) => matches!(
            c,
            "UTF-16BE" | "UTF-16" | "UCS-2" | "UCS-2BE" | "UCS2" | "ISO-10646-UCS-2"
        ),
        None => coding.map(str::trim) == Some("2"),
    };
    if ucs2 {
        let bytes = bytes.strip_prefix(&[0xFE, 0xFF]).unwrap_or(bytes);
        let units = bytes
            .chunks(2)
            .map(|c| match c {
                [h, l] => u16::from_be_bytes([*h, *l]),
                _ => 0xFFFD,
            })
            .collect::<Vec<u16>>();
        return char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
    }
    match charset.as_deref() {
        Some("ISO-8859-1" | "ISO_8859-1" | "LATIN1" | "LATIN-1") => {
            bytes.iter().map(|&b| b as char).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The `charset` parameter of a `Content-Type` (`text/plain; charset="UTF-16BE"`).
fn content_type_charset(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// One inbound SMS as Kannel described it.
#[derive(Debug, PartialEq, Eq)]
struct KannelSms {
    from: String,
    text: String,
}

/// Reads the sender and text of a `get-url` (`body` empty, all in the query) or a `post-url`
/// request (the text is the body, the rest in `X-Kannel-*` headers, the query as a fallback).
fn read_sms(
    params: &[(String, Vec<u8>)],
    headers: &HeaderMap,
    post: bool,
    body: &[u8],
) -> Result<KannelSms, &'static str> {
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let head = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let from = if post {
        head("x-kannel-from").or_else(|| param("from"))
    } else {
        param("from")
    }
    .filter(|f| !f.trim().is_empty())
    .ok_or(if post {
        "no sender: set `send-sender = true` in the sms-service group (or add from=%p to post-url)"
    } else {
        "no sender: add from=%p to get-url"
    })?;
    let text = if post {
        let coding = head("x-kannel-coding").or_else(|| param("coding"));
        let charset = content_type_charset(headers).or_else(|| param("charset"));
        decode_text(body, coding.as_deref(), charset.as_deref())
    } else {
        let raw = params
            .iter()
            .find(|(n, _)| n == "text")
            .map_or(&[][..], |(_, v)| v.as_slice());
        decode_text(raw, param("coding").as_deref(), param("charset").as_deref())
    };
    Ok(KannelSms { from, text })
}

pub(super) async fn kannel(
    State(app): State<Arc<App>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((http, key)) = app
        .cfg
        .http
        .as_ref()
        .and_then(|h| h.kannel_key.as_ref().map(|k| (h, k)))
    else {
        return (
            StatusCode::NOT_FOUND,
            "no Kannel inbound key is configured\n",
        )
            .into_response();
    };
    let params = query_pairs(uri.query().unwrap_or(""));
    let given: Vec<String> = params
        .iter()
        .filter(|(n, _)| n == "key")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .chain(basic_password(&headers))
        .filter(|k| !k.is_empty())
        .collect();
    if !given.iter().any(|k| same_secret(k, key.expose())) {
        tracing::warn!(
            key = if given.is_empty() { "missing" } else { "wrong" },
            "Kannel inbound SMS with a missing or wrong key: refused (401)"
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"ritualist\"")],
            "missing or wrong key\n",
        )
            .into_response();
    }
    let sms = match read_sms(&params, &headers, method == axum::http::Method::POST, &body) {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!("Kannel inbound SMS refused: {why}");
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    match act(&app, &sms.from, &sms.text).await {
        Ok(o) => {
            tracing::info!(action = o.as_str(), "Kannel inbound SMS");
            let text = reply(o, http).unwrap_or("");
            let coding = if sms_length(text).encoding == SmsEncoding::Ucs2 {
                "2"
            } else {
                "0"
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=UTF-8"),
                    (header::HeaderName::from_static("x-kannel-coding"), coding),
                ],
                text.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!("inbound SMS: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn get_url_texts_as_kannel_1_4_5_sends_them() {
        // Captured from smsbox 1.4.5: `text=%b&coding=%c&charset=%C` for "СТОП" in UCS-2, the
        // same after `mo-recode = true`, and a 7-bit "HELP".
        let cases = [
            (
                "from=0721000002&to=1234&text=%04!%04%22%04%1E%04%1F&coding=2&charset=UTF-16BE",
                "0721000002",
                "СТОП",
            ),
            (
                "from=0721000002&to=1234&text=%D0%A1%D0%A2%D0%9E%D0%9F&coding=0&charset=UTF-8",
                "0721000002",
                "СТОП",
            ),
            (
                "key=k&from=%2B40721000001&to=1234&text=HELP&coding=0&charset=UTF-8",
                "+40721000001",
                "HELP",
            ),
            // U+0420 is the bytes 04 20: Kannel writes the 0x20 as `+`.
            (
                "from=1&text=%04+%040%044%00+%00x&coding=2&charset=UTF-16BE",
                "1",
                "Рад x",
            ),
            // No charset named: coding 2 is UCS-2.
            ("from=1&text=%00S%00T%00O%00P&coding=2", "1", "STOP"),
            ("from=1&text=stop.", "1", "stop."),
            ("from=1&text=Cr%E8me&charset=ISO-8859-1", "1", "Crème"),
        ];
        for (query, from, text) in cases {
            let got = read_sms(&query_pairs(query), &HeaderMap::new(), false, b"").unwrap();
            assert_eq!(
                got,
                KannelSms {
                    from: from.into(),
                    text: text.into()
                },
                "{query}"
            );
        }
    }

    #[test]
    fn post_url_texts_as_kannel_1_4_5_sends_them() {
        let ucs2 = headers(&[
            ("content-type", "text/plain; charset=\"UTF-16BE\""),
            ("x-kannel-from", "0721000002"),
            ("x-kannel-coding", "2"),
        ]);
        let got = read_sms(&[], &ucs2, true, &[4, 0x21, 4, 0x22, 4, 0x1E, 4, 0x1F]).unwrap();
        assert_eq!(
            (got.from.as_str(), got.text.as_str()),
            ("0721000002", "СТОП")
        );
        let utf8 = headers(&[
            ("content-type", "text/plain; charset=\"UTF-8\""),
            ("x-kannel-from", "+40721000001"),
            ("x-kannel-coding", "0"),
        ]);
        let got = read_sms(&[], &utf8, true, "стоп.".as_bytes()).unwrap();
        assert_eq!(got.text, "стоп.");
        // Without `send-sender = true` Kannel sends no X-Kannel-From: a clear refusal.
        let anon = headers(&[("content-type", "text/plain")]);
        assert!(
            read_sms(&[], &anon, true, b"STOP")
                .unwrap_err()
                .contains("send-sender")
        );
        assert!(
            read_sms(&query_pairs("text=STOP"), &HeaderMap::new(), false, b"")
                .unwrap_err()
                .contains("%p")
        );
        // A query `from` works for post-url too.
        let got = read_sms(&query_pairs("from=%2B40721000001"), &anon, true, b"STOP").unwrap();
        assert_eq!(got.from, "+40721000001");
    }

    #[test]
    fn broken_bytes_never_make_a_keyword() {
        // An odd byte count or a lone surrogate in UCS-2, invalid UTF-8: U+FFFD, not a panic.
        assert_eq!(decode_text(&[0, b'S', 0], Some("2"), None), "S\u{FFFD}");
        assert_eq!(decode_text(&[0xD8, 0], None, Some("UTF-16BE")), "\u{FFFD}");
        assert_eq!(
            decode_text(&[0xFF, b'S'], Some("0"), Some("UTF-8")),
            "\u{FFFD}S"
        );
        assert_eq!(url_decode("%4"), b"%4");
        assert_eq!(url_decode("%zz%41+"), b"%zzA ");
        assert_eq!(url_decode("100%"), b"100%");
    }

    #[test]
    fn the_key_comes_from_basic_auth() {
        // Kannel turns `http://kannel:secret@host/…` into `Authorization: Basic …`.
        let h = headers(&[("authorization", "Basic a2FubmVsOnNlY3JldA==")]);
        assert_eq!(basic_password(&h).as_deref(), Some("secret"));
        let h = headers(&[("authorization", "Bearer secret")]);
        assert_eq!(basic_password(&h), None);
        let h = headers(&[("authorization", "Basic !!!")]);
        assert_eq!(basic_password(&h), None);
    }
}
