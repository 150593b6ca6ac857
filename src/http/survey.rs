//! The survey pages behind a survey email's score links, in the customer's language (en, ro,
//! ru; anything else gets en):
//! - `GET /s/<token>/<score>`: records the score (0–10) for the token's survey (ritual,
//!   customer, occurrence) — a second click updates it — and thanks the customer, with an
//!   optional comment box. `HEAD` records nothing (link checkers probe with it).
//! - `POST /s/<token>/<score>`: the comment (form field `comment`, at most
//!   [`MAX_COMMENT_CHARS`] characters); records the score too, so a comment counts even if
//!   the GET never reached us. No CSRF token: the signed link token is the authorisation.
//!
//! A token that does not verify, a score outside 0–10, or a customer who is gone gets the
//! same 404 page and nothing is recorded.
//!
//! A **test** link (from a preview or a test send, see `app::tokens`) shows the same pages in
//! the language written in its token, with a "test — nothing was recorded" notice, and records
//! neither the score nor the comment (nor reads the customer).
//!
//! Unlike the unsubscribe page, GET acts here: one click is the whole point of an NPS email.
//! Mail scanners that fetch every link of a message would record a score (the last one they
//! fetch); docs/marketer.md, "Surveys (NPS)", says what that means for the numbers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::consent::{invalid_link, page_in, test_notice_html};
use super::respond::{esc, html};
use crate::app::{App, Origin, SurveyToken};

/// The longest comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

struct Texts {
    lang: &'static str,
    thanks_title: &'static str,
    your_score: &'static str,
    change: &'static str,
    comment_prompt: &'static str,
    send: &'static str,
    comment_thanks: &'static str,
    too_long: &'static str,
    error: &'static str,
    test_notice: &'static str,
}

const EN: Texts = Texts {
    lang: "en",
    thanks_title: "Thank you!",
    your_score: "Your answer:",
    change: "Changed your mind? Click another score in the email: we keep the last one.",
    comment_prompt: "Anything you would like to tell us? (optional)",
    send: "Send",
    comment_thanks: "Thank you for your comment. We read every one.",
    too_long: "The comment is too long. Please shorten it to 2000 characters.",
    error: "Something went wrong on our side. Please try again in a few minutes.",
    test_notice: "Test — nothing was recorded. This link comes from a preview or a test message: it shows the real page and changes nothing.",
};

const RO: Texts = Texts {
    lang: "ro",
    thanks_title: "Vă mulțumim!",
    your_score: "Răspunsul dumneavoastră:",
    change: "V-ați răzgândit? Apăsați altă notă din e-mail: o păstrăm pe ultima.",
    comment_prompt: "Doriți să ne spuneți ceva? (opțional)",
    send: "Trimite",
    comment_thanks: "Vă mulțumim pentru comentariu. Le citim pe toate.",
    too_long: "Comentariul este prea lung. Scurtați-l la 2000 de caractere.",
    error: "A apărut o eroare la noi. Încercați din nou peste câteva minute.",
    test_notice: "Test — nu s-a înregistrat nimic. Acest link provine dintr-o previzualizare sau dintr-un mesaj de test: arată pagina reală și nu schimbă nimic.",
};

const RU: Texts = Texts {
    lang: "ru",
    thanks_title: "Спасибо!",
    your_score: "Ваш ответ:",
    change: "Передумали? Нажмите другую оценку в письме: мы сохраним последнюю.",
    comment_prompt: "Хотите что-нибудь добавить? (необязательно)",
    send: "Отправить",
    comment_thanks: "Спасибо за комментарий. Мы читаем каждый.",
    too_long: "Комментарий слишком длинный. Сократите его до 2000 символов.",
    error: "У нас что-то пошло не так. Попробуйте ещё раз через несколько минут.",
    test_notice: "Тест — ничего не записано. Эта ссылка из предпросмотра или тестового сообщения: она показывает настоящую страницу и ничего не меняет.",
};

/// The texts for a customer's locale (`ro-MD` → ro); English when there are none.
fn texts(locale: &str) -> &'static Texts {
    super::consent::by_language(locale, [&EN, &RO, &RU])
}

/// A score path segment: `0` to `10`, digits only (no sign, no leading zeros but `0`).
fn parse_score(s: &str) -> Option<i32> {
    let ok = matches!(s.len(), 1 | 2)
        && s.bytes().all(|b| b.is_ascii_digit())
        && !(s.len() == 2 && s.starts_with('0'));
    ok.then(|| s.parse().ok())
        .flatten()
        .filter(|n| (0..=10).contains(n))
}

/// The verified survey, score, the page's locale (the customer's; a test link's own) and
/// whether it is a test link; the 404 page otherwise.
async fn verified(
    app: &App,
    token: &str,
    score: &str,
) -> Result<(SurveyToken, i32, String, bool), Response> {
    let (Ok((tok, origin)), Some(score)) = (app.link_keys.read_survey(token), parse_score(score))
    else {
        return Err(invalid_link());
    };
    if let Origin::Test { locale } = origin {
        return Ok((tok, score, locale, true));
    }
    match app.store.customer_by_id(tok.customer_id).await {
        Ok(Some(c)) => Ok((tok, score, c.locale, false)),
        Ok(None) => Err(invalid_link()),
        Err(e) => Err(server_error(&EN, e)),
    }
}

fn server_error(t: &Texts, e: impl std::fmt::Display) -> Response {
    tracing::error!("survey page: {e}");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        page_in(t.lang, t.thanks_title, &format!("<p>{}</p>", esc(t.error))),
    )
}

fn thanks_page(t: &Texts, score: i32, notice: Option<&str>, form: bool, test: bool) -> String {
    let mut body = if test {
        test_notice_html(t.test_notice)
    } else {
        String::new()
    };
    body += &format!(
        "<p>{} <strong>{score}</strong></p><p>{}</p>",
        esc(t.your_score),
        esc(t.change)
    );
    if let Some(n) = notice {
        body.push_str(&format!("<p><strong>{}</strong></p>", esc(n)));
    }
    if form {
        // An empty action posts back to this very URL: no address is built from the request.
        body.push_str(&format!(
            "<form method=\"post\" action=\"\"><label for=\"comment\">{}</label>\
             <textarea id=\"comment\" name=\"comment\" rows=\"5\" maxlength=\"{MAX_COMMENT_CHARS}\"></textarea>\
             <button>{}</button></form>",
            esc(t.comment_prompt),
            esc(t.send)
        ));
    }
    page_in(t.lang, t.thanks_title, &body)
}

pub(super) async fn score_page(
    State(app): State<Arc<App>>,
    method: Method,
    Path((token, score)): Path<(String, String)>,
) -> Response {
    let (tok, score, locale, test) = match verified(&app, &token, &score).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let t = texts(&locale);
    if test {
        tracing::info!(customer = tok.customer_id, ritual = %tok.ritual, "survey score on a test link: nothing recorded");
    } else if method != Method::HEAD {
        let now = app.clock.now().as_second();
        if let Err(e) = app
            .store
            .record_survey_response(
                &tok.ritual,
                tok.customer_id,
                &tok.occurrence,
                score,
                None,
                now,
            )
            .await
        {
            return server_error(t, e);
        }
        tracing::info!(customer = tok.customer_id, ritual = %tok.ritual, score, "survey score recorded");
    }
    html(StatusCode::OK, thanks_page(t, score, None, true, test))
}

pub(super) async fn comment_post(
    State(app): State<Arc<App>>,
    Path((token, score)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (tok, score, locale, test) = match verified(&app, &token, &score).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let t = texts(&locale);
    let comment = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "comment")
        .map(|(_, v)| v.trim().to_string())
        .filter(|c| !c.is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return html(
            StatusCode::PAYLOAD_TOO_LARGE,
            thanks_page(t, score, Some(t.too_long), true, test),
        );
    }
    if test {
        tracing::info!(customer = tok.customer_id, ritual = %tok.ritual, "survey comment on a test link: nothing recorded");
        let notice = comment.as_ref().map(|_| t.comment_thanks);
        return html(
            StatusCode::OK,
            thanks_page(t, score, notice, comment.is_none(), true),
        );
    }
    let now = app.clock.now().as_second();
    if let Err(e) = app
        .store
        .record_survey_response(
            &tok.ritual,
            tok.customer_id,
            &tok.occurrence,
            score,
            comment.as_deref(),
            now,
        )
        .await
    {
        return server_error(t, e);
    }
    tracing::info!(
        customer = tok.customer_id,
        ritual = %tok.ritual,
        score,
        commented = comment.is_some(),
        "survey comment recorded"
    );
    let notice = comment.as_ref().map(|_| t.comment_thanks);
    html(
        StatusCode::OK,
        thanks_page(t, score, notice, comment.is_none(), false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_zero_to_ten_written_plainly() {
        for (s, want) in [("0", Some(0)), ("9", Some(9)), ("10", Some(10))] {
            assert_eq!(parse_score(s), want, "{s}");
        }
        for bad in ["11", "-1", "+5", "05", "", "100", "1.5", "x", "٩"] {
            assert_eq!(parse_score(bad), None, "{bad}");
        }
    }

    #[test]
    fn languages_fall_back_to_english() {
        assert_eq!(texts("ro-MD").lang, "ro");
        assert_eq!(texts("ru").lang, "ru");
        assert_eq!(texts("de").lang, "en");
    }
}
