//! RFC 3834 automatic responses — vacation notices, out-of-office replies — recognised so that
//! they are never taken for bounces (listmonk #1334: vacation replies counted as bounces).
//! Checked after the bounce formats: DSNs themselves carry `Auto-Submitted: auto-replied`.

use mail_parser::Message;

use super::headers;

/// Subject openings of vacation replies (lower case), in the languages shops mail in.
const SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto:",
    "auto response",
    "auto-response",
    "autoresponse",
    "away from",
    "on vacation",
    "vacation",
    "abwesenheitsnotiz",
    "abwesenheit",
    "automatische antwort",
    "réponse automatique",
    "reponse automatique",
    "absent",
    "absence",
    "respuesta automática",
    "respuesta automatica",
    "fuera de la oficina",
    "risposta automatica",
    "fuori sede",
    "fuori ufficio",
    "automatisch antwoord",
    "afwezig",
    "resposta automática",
    "autosvar",
    "automaattinen vastaus",
    "automatyczna odpowiedź",
    "odpowiedź automatyczna",
    "automatické odpověď",
    "răspuns automat",
    "raspuns automat",
    "автоответ",
    "автоматический ответ",
    "自動返信",
    "自动回复",
];

/// Why `msg` is an automatic response, or `None`.
pub(super) fn auto_reply(msg: &Message<'_>) -> Option<String> {
    if let Some(v) = headers::first(msg, "Auto-Submitted")
        && v.to_ascii_lowercase().starts_with("auto-replied")
    {
        return Some(format!("Auto-Submitted: {v}"));
    }
    for name in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Vacation",
    ] {
        if let Some(v) = headers::first(msg, name)
            && !v.eq_ignore_ascii_case("no")
        {
            return Some(format!("{name}: {v}"));
        }
    }
    if let Some(v) = headers::first(msg, "Precedence")
        && v.eq_ignore_ascii_case("auto_reply")
    {
        return Some(format!("Precedence: {v}"));
    }
    let subject = msg.subject().unwrap_or("").trim().to_lowercase();
    let subject = subject.trim_start_matches(['[', ' ']);
    SUBJECTS
        .iter()
        .find(|s| subject.starts_with(*s))
        .map(|s| format!("subject `{s}`"))
}
