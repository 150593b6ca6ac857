//! Amazon SES notifications (the `Message` of an SNS notification): `Bounce` (Permanent: a
//! hard bounce, Transient or Undetermined: a soft one, one event per bounced recipient),
//! `Complaint` and `Delivery`. Both shapes are read: SNS notifications of an identity
//! (`notificationType`) and event publishing of a configuration set (`eventType`).
//!
//! The message is named by `mail.source` (the envelope sender: ritualist's VERP return path)
//! and by the original `Message-ID` (`mail.commonHeaders.messageId`, else `mail.headers`).
//! The dedupe key is the SNS MessageId and the recipient (SNS repeats the MessageId when it
//! retries).

use serde_json::Value;

use super::{Event, HookError, Refs, one_line, str_field};
use crate::domain::FeedbackKind;

/// The events of one SES notification carried by the SNS message `sns_message_id`.
pub fn events(sns_message_id: &str, message: &str) -> Result<Vec<Event>, HookError> {
    let v: Value = serde_json::from_str(message)
        .map_err(|e| HookError::BadPayload(format!("the SES notification is not JSON: {e}")))?;
    let kind = str_field(&v, "notificationType")
        .or_else(|| str_field(&v, "eventType"))
        .ok_or_else(|| HookError::BadPayload("no notificationType or eventType".into()))?;
    let refs = refs(v.get("mail").unwrap_or(&Value::Null));
    let per = |recipient: &str, kind: FeedbackKind, detail: String| Event {
        kind,
        refs: refs.clone(),
        recipient: Some(recipient.to_string()),
        detail: one_line(&detail),
        dedupe_key: format!("ses:{sns_message_id}:{}", recipient.to_ascii_lowercase()),
        raw: None,
    };
    let section = |name: &str| {
        v.get(name)
            .filter(|s| s.is_object())
            .ok_or_else(|| HookError::BadPayload(format!("a {kind} without `{name}`")))
    };
    let out = match kind {
        "Bounce" => {
            let b = section("bounce")?;
            let ty = str_field(b, "bounceType").unwrap_or("Undetermined");
            let sub = str_field(b, "bounceSubType").unwrap_or("");
            let fk = if ty == "Permanent" {
                FeedbackKind::HardBounce
            } else {
                FeedbackKind::SoftBounce
            };
            list(b, "bouncedRecipients")?
                .iter()
                .filter_map(|r| {
                    let addr = str_field(r, "emailAddress")?;
                    let diag = str_field(r, "diagnosticCode")
                        .or_else(|| str_field(r, "status"))
                        .unwrap_or("");
                    Some(per(addr, fk, format!("SES {ty}/{sub}: {diag}")))
                })
                .collect()
        }
        "Complaint" => {
            let c = section("complaint")?;
            let fb = str_field(c, "complaintFeedbackType").unwrap_or("abuse");
            list(c, "complainedRecipients")?
                .iter()
                .filter_map(|r| {
                    let addr = str_field(r, "emailAddress")?;
                    Some(per(
                        addr,
                        FeedbackKind::Complaint,
                        format!("SES complaint: {fb}"),
                    ))
                })
                .collect()
        }
        "Delivery" => {
            let d = section("delivery")?;
            let reply = str_field(d, "smtpResponse").unwrap_or("");
            list(d, "recipients")?
                .iter()
                .filter_map(|r| {
                    let addr = r.as_str()?;
                    Some(per(
                        addr,
                        FeedbackKind::Delivered,
                        format!("SES delivery: {reply}"),
                    ))
                })
                .collect()
        }
        // Send, Reject, Open, Click, DeliveryDelay, …: not about the address.
        _ => Vec::new(),
    };
    Ok(out)
}

fn list<'a>(section: &'a Value, key: &str) -> Result<&'a Vec<Value>, HookError> {
    section
        .get(key)
        .and_then(|x| x.as_array())
        .ok_or_else(|| HookError::BadPayload(format!("no `{key}` list")))
}

/// `mail.source` and the original Message-ID.
fn refs(mail: &Value) -> Refs {
    let from_common = mail
        .get("commonHeaders")
        .and_then(|h| str_field(h, "messageId"));
    let from_headers = mail
        .get("headers")
        .and_then(|h| h.as_array())
        .and_then(|hs| {
            hs.iter().find_map(|h| {
                let name = str_field(h, "name")?;
                name.eq_ignore_ascii_case("message-id")
                    .then(|| str_field(h, "value"))
                    .flatten()
            })
        });
    Refs {
        token: None,
        return_path: str_field(mail, "source").map(String::from),
        message_id: from_common.or(from_headers).map(String::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permanent_bounce_is_hard_per_recipient() {
        let n = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
            "bouncedRecipients":[{"emailAddress":"a@x.example","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"},
            {"emailAddress":"B@x.example"}]},
            "mail":{"source":"bounces+d1-00@shop.example","headers":[{"name":"Message-ID","value":"<m@shop.example>"}]}}"#;
        let ev = events("sns-1", n).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].kind, FeedbackKind::HardBounce);
        assert_eq!(ev[0].dedupe_key, "ses:sns-1:a@x.example");
        assert_eq!(ev[1].dedupe_key, "ses:sns-1:b@x.example");
        assert_eq!(
            ev[0].refs.return_path.as_deref(),
            Some("bounces+d1-00@shop.example")
        );
        assert_eq!(ev[0].refs.message_id.as_deref(), Some("<m@shop.example>"));
        assert!(ev[0].detail.contains("550 5.1.1"), "{}", ev[0].detail);
    }

    #[test]
    fn transient_is_soft_and_other_types_are_skipped() {
        let n = r#"{"eventType":"Bounce","bounce":{"bounceType":"Transient","bouncedRecipients":[{"emailAddress":"a@x.example"}]},"mail":{}}"#;
        assert_eq!(events("s", n).unwrap()[0].kind, FeedbackKind::SoftBounce);
        assert!(
            events("s", r#"{"eventType":"Open","mail":{}}"#)
                .unwrap()
                .is_empty()
        );
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"notificationType":"Bounce"}"#,
            r#"{"notificationType":"Bounce","bounce":{}}"#,
        ] {
            assert!(
                matches!(events("s", bad), Err(HookError::BadPayload(_))),
                "{bad}"
            );
        }
    }
}
