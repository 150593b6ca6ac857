//! The customer's consent pages, in their language (en, ro, ru; anything else gets en):
//! - `GET /u/<token>`: what this link would unsubscribe from, with two choices — only this
//!   category (e.g. Mother's Day) or everything on this channel. GET never changes anything:
//!   mail scanners and link previews fetch links nobody clicked.
//! - `POST /u/<token>`: `scope=category|channel` acts and shows a done page (`source: link`);
//!   a body of `List-Unsubscribe=One-Click` (RFC 8058, sent by mail clients) unsubscribes the
//!   token's category with a bare 200 (`source: one_click`).
//! - `GET /p/<token>`: every category of the loaded rituals and each channel, switched on or
//!   off; `POST` saves what changed (`source: preferences`).
//!
//! A token that does not verify, or names a customer who is gone, gets the same 404 page.
//! Saying again what is already recorded (a replayed one-click) changes nothing.
//!
//! A **test** link (from a preview or a test send, see `app::tokens`) opens the same pages in
//! the language written in its token, with a "test — nothing was recorded" notice, and reads
//! and writes nothing: not the customer, not their consent (the preference page shows
//! everything on, then what the form asked for), not the consent log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::respond::{esc, html};
use crate::app::{App, LinkMode, Origin};
use crate::domain::Channel;
use crate::ritual::Trigger;
use crate::store::CustomerRow;

/// The words of the pages in one language.
struct Texts {
    lang: &'static str,
    invalid_title: &'static str,
    invalid_body: &'static str,
    error: &'static str,
    unsub_title: &'static str,
    unsub_question: &'static str,
    only: &'static str,
    everything_email: &'static str,
    everything_sms: &'static str,
    done_title: &'static str,
    done_category: &'static str,
    done_channel: &'static str,
    manage: &'static str,
    prefs_title: &'static str,
    prefs_intro: &'static str,
    all_messages: &'static str,
    channels: &'static str,
    topics: &'static str,
    holidays: &'static str,
    save: &'static str,
    saved: &'static str,
    test_notice: &'static str,
}

const EN: Texts = Texts {
    lang: "en",
    invalid_title: "This link does not work",
    invalid_body: "The link is incomplete or was changed. Please use the link from the message exactly as it is.",
    error: "Something went wrong on our side. Please try again in a few minutes.",
    unsub_title: "Unsubscribe",
    unsub_question: "What would you like to stop receiving?",
    only: "Only these messages",
    everything_email: "Everything by email",
    everything_sms: "Everything by SMS",
    done_title: "You are unsubscribed",
    done_category: "You will no longer receive these messages:",
    done_channel: "You will no longer receive any of our messages on this channel:",
    manage: "Manage all your preferences",
    prefs_title: "Your message preferences",
    prefs_intro: "Choose what you would like to receive from",
    all_messages: "Messages from us at all",
    channels: "Channels",
    topics: "Topics",
    holidays: "Holidays",
    save: "Save",
    saved: "Your preferences are saved.",
    test_notice: "Test — nothing was recorded. This link comes from a preview or a test message: it shows the real page and changes nothing.",
};

const RO: Texts = Texts {
    lang: "ro",
    invalid_title: "Acest link nu funcționează",
    invalid_body: "Linkul este incomplet sau a fost modificat. Folosiți linkul din mesaj exact așa cum este.",
    error: "A apărut o eroare la noi. Încercați din nou peste câteva minute.",
    unsub_title: "Dezabonare",
    unsub_question: "Ce nu mai doriți să primiți?",
    only: "Doar aceste mesaje",
    everything_email: "Nimic prin e-mail",
    everything_sms: "Nimic prin SMS",
    done_title: "V-ați dezabonat",
    done_category: "Nu veți mai primi aceste mesaje:",
    done_channel: "Nu veți mai primi niciun mesaj de la noi pe acest canal:",
    manage: "Gestionați toate preferințele",
    prefs_title: "Preferințele dumneavoastră",
    prefs_intro: "Alegeți ce doriți să primiți de la",
    all_messages: "Mesaje de la noi, în general",
    channels: "Canale",
    topics: "Subiecte",
    holidays: "Sărbători",
    save: "Salvează",
    saved: "Preferințele au fost salvate.",
    test_notice: "Test — nu s-a înregistrat nimic. Acest link provine dintr-o previzualizare sau dintr-un mesaj de test: arată pagina reală și nu schimbă nimic.",
};

const RU: Texts = Texts {
    lang: "ru",
    invalid_title: "Ссылка не работает",
    invalid_body: "Ссылка неполная или была изменена. Используйте ссылку из сообщения без изменений.",
    error: "У нас что-то пошло не так. Попробуйте ещё раз через несколько минут.",
    unsub_title: "Отписка",
    unsub_question: "Что вы больше не хотите получать?",
    only: "Только такие сообщения",
    everything_email: "Всё по электронной почте",
    everything_sms: "Всё по SMS",
    done_title: "Вы отписались",
    done_category: "Вы больше не будете получать эти сообщения:",
    done_channel: "Вы больше не будете получать от нас сообщения по этому каналу:",
    manage: "Управлять всеми настройками",
    prefs_title: "Настройки сообщений",
    prefs_intro: "Выберите, что вы хотите получать от",
    all_messages: "Сообщения от нас вообще",
    channels: "Каналы",
    topics: "Темы",
    holidays: "Праздники",
    save: "Сохранить",
    saved: "Настройки сохранены.",
    test_notice: "Тест — ничего не записано. Эта ссылка из предпросмотра или тестового сообщения: она показывает настоящую страницу и ничего не меняет.",
};

/// The texts for a customer's locale (`ro-MD` → ro); English when there are none.
fn texts(locale: &str) -> &'static Texts {
    by_language(locale, [&EN, &RO, &RU])
}

/// Of a page's texts in English, Romanian and Russian, the ones for `locale` (`ro-MD` → ro,
/// `ru_RU` → ru); English for any other language. Shared by every public page.
pub(super) fn by_language<T>(locale: &str, [en, ro, ru]: [&'static T; 3]) -> &'static T {
    let lang = locale
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match lang.as_str() {
        "ro" => ro,
        "ru" => ru,
        _ => en,
    }
}

fn channel_name(t: &Texts, ch: Channel) -> &'static str {
    match (ch, t.lang) {
        (Channel::Email, "ro") => "e-mail",
        (Channel::Email, "ru") => "электронная почта",
        (Channel::Email, _) => "email",
        (Channel::Sms, _) => "SMS",
    }
}

/// A whole page in the language `lang` (also the survey pages').
pub(super) fn page_in(lang: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         button{{display:block;width:100%;margin:.5rem 0;padding:.7rem;font-size:1rem}}\
         textarea{{width:100%;box-sizing:border-box;font:inherit}}\
         fieldset{{margin:1rem 0}}label{{display:block;margin:.3rem 0}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = esc(title),
    )
}

fn page(t: &Texts, title: &str, body: &str) -> String {
    page_in(t.lang, title, body)
}

/// The way back to the shop, at the foot of the pages: its name, linked to its site.
fn shop_link(app: &App) -> String {
    let shop = &app.cfg.shop;
    match &shop.url {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            format!("<p><a href=\"{}\">{}</a></p>", esc(url), esc(&shop.name))
        }
        _ => format!("<p>{}</p>", esc(&shop.name)),
    }
}

/// The notice at the top of every page a test link opens (also the survey pages').
pub(super) fn test_notice_html(notice: &str) -> String {
    format!(
        "<p class=\"test-notice\" role=\"status\" style=\"border:2px dashed #b45309;padding:.6rem\">\
         <strong>{}</strong></p>",
        esc(notice)
    )
}

pub(super) fn invalid_link() -> Response {
    html(
        StatusCode::NOT_FOUND,
        page(
            &EN,
            EN.invalid_title,
            &format!("<p>{}</p>", esc(EN.invalid_body)),
        ),
    )
}

fn server_error(t: &Texts, e: impl std::fmt::Display) -> Response {
    tracing::error!("consent page: {e}");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        page(t, t.invalid_title, &format!("<p>{}</p>", esc(t.error))),
    )
}

/// Where a page's reader is, as the planner sees it: their language and their own holiday
/// calendar (so a Romanian customer reads "Ziua Mamei", never the en-GB "Mothering Sunday").
pub(super) struct Reader<'a> {
    pub locale: &'a str,
    pub calendar: String,
}

impl<'a> Reader<'a> {
    /// A customer: their `country` attribute, else their locale (see `calendar::country_of`).
    fn of(app: &App, locale: &'a str, attributes: &str) -> Reader<'a> {
        let country = serde_json::from_str::<BTreeMap<String, String>>(attributes)
            .ok()
            .and_then(|m| m.get("country").cloned());
        Reader::placed(app, locale, country.as_deref())
    }

    fn placed(app: &App, locale: &'a str, country: Option<&str>) -> Reader<'a> {
        let default = &app.cfg.engine.default_calendar;
        let country = crate::calendar::country_of(country, locale, default);
        Reader {
            locale,
            calendar: crate::calendar::calendar_for(country.as_deref(), locale, default),
        }
    }
}

/// Categories with their label for a reader, in the order the rituals define them.
type Labelled = Vec<(String, String)>;

/// The opt-out topics of the loaded rituals, in the reader's words: each ritual's `label` in
/// their language (never its internal description), and each holiday by its name in their
/// own calendar, one by one. `(topics, holidays)`: category → label, in ritual order.
fn categories(app: &App, r: &Reader) -> (Labelled, Labelled) {
    let defs = app.defs();
    let holiday_name = |id: &str| {
        let own = defs.calendars.get(&r.calendar).into_iter();
        own.chain(defs.calendars.values())
            .flat_map(|c| c.holidays.iter())
            .find(|h| h.id == id)
            .map(|h| h.name(r.locale).to_string())
    };
    let (mut topics, mut holidays): (Labelled, Labelled) = Default::default();
    for ritual in &defs.rituals {
        match (&ritual.category, &ritual.trigger) {
            (None, Trigger::Holiday { ids, .. }) => {
                for id in ids {
                    let cat = format!("holidays.{id}");
                    if holidays.iter().all(|(c, _)| *c != cat) {
                        let label = holiday_name(id).unwrap_or_else(|| pretty(id));
                        holidays.push((cat, label));
                    }
                }
            }
            (cat, _) => {
                let cat = cat.clone().unwrap_or_else(|| ritual.name.clone());
                if topics.iter().all(|(c, _)| *c != cat) {
                    let label = ritual
                        .label(r.locale)
                        .or_else(|| ritual.label("en"))
                        .map_or_else(|| pretty(&cat), str::to_string);
                    topics.push((cat, label));
                }
            }
        }
    }
    (topics, holidays)
}

/// `mothers_day` → `mothers day`: the last resort for a topic nobody labelled.
fn pretty(id: &str) -> String {
    id.rsplit('.').next().unwrap_or(id).replace('_', " ")
}

/// The label of one category (also one no ritual sends any more).
fn category_label(app: &App, category: &str, r: &Reader) -> String {
    let (topics, holidays) = categories(app, r);
    topics
        .into_iter()
        .chain(holidays)
        .find(|(c, _)| c == category)
        .map_or_else(|| pretty(category), |(_, l)| l)
}

/// The holiday ritual's label in the reader's language, as the heading of the holidays.
fn holidays_heading(app: &App, r: &Reader, t: &Texts) -> String {
    app.defs()
        .rituals
        .iter()
        .find(|x| x.category.is_none() && matches!(x.trigger, Trigger::Holiday { .. }))
        .and_then(|x| x.label(r.locale))
        .map_or_else(|| t.holidays.to_string(), str::to_string)
}

/// The verified customer of an unsubscribe or preference link.
async fn customer(app: &App, id: i64) -> Result<Option<CustomerRow>, Response> {
    app.store
        .customer_by_id(id)
        .await
        .map_err(|e| server_error(&EN, e))
}

/// The page language of a verified link and the customer's attributes (for their calendar):
/// the customer's for a real link (404 when they are gone), the token's own language for a
/// test link (which reads nothing about the customer).
async fn link_locale(
    app: &App,
    customer_id: i64,
    origin: &Origin,
) -> Result<(String, String), Response> {
    match origin {
        Origin::Test { locale } => Ok((locale.clone(), String::new())),
        Origin::Live => match customer(app, customer_id).await? {
            Some(c) => Ok((c.locale, c.attributes)),
            None => Err(invalid_link()),
        },
    }
}

pub(super) async fn unsubscribe_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Response {
    let Ok((tok, origin)) = app.link_keys.read_unsubscribe(&token) else {
        return invalid_link();
    };
    let (locale, attributes) = match link_locale(&app, tok.customer_id, &origin).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let t = texts(&locale);
    let reader = Reader::of(&app, &locale, &attributes);
    let label = category_label(&app, &tok.category, &reader);
    let everything = match tok.channel {
        Channel::Email => t.everything_email,
        Channel::Sms => t.everything_sms,
    };
    let mut body = match origin {
        Origin::Test { .. } => test_notice_html(t.test_notice),
        Origin::Live => String::new(),
    };
    // An empty action posts back to this very URL: no address is built from the request.
    body += &format!(
        "<p>{q}</p><form method=\"post\" action=\"\">\
         <button name=\"scope\" value=\"category\">{only}: {label}</button>\
         <button name=\"scope\" value=\"channel\">{everything}</button></form>",
        q = esc(t.unsub_question),
        only = esc(t.only),
        label = esc(&label),
        everything = esc(everything),
    );
    body.push_str(&shop_link(&app));
    html(StatusCode::OK, page(t, t.unsub_title, &body))
}

/// Whether a POST body is RFC 8058's `List-Unsubscribe=One-Click`, form-encoded or (as in the
/// RFC's own example) `multipart/form-data`.
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let Some(boundary) = content_type.split(';').find_map(|p| {
            let p = p.trim();
            p.get(..9)
                .filter(|k| k.eq_ignore_ascii_case("boundary="))
                .map(|_| p[9..].trim_matches('"'))
                .filter(|b| !b.is_empty())
        }) else {
            return false;
        };
        let Ok(text) = std::str::from_utf8(body) else {
            return false;
        };
        return text.split(&format!("--{boundary}")).any(|part| {
            let Some((head, value)) = part
                .split_once("\r\n\r\n")
                .or_else(|| part.split_once("\n\n"))
            else {
                return false;
            };
            let head = head.to_ascii_lowercase();
            head.contains("content-disposition: form-data")
                && head.contains("name=\"list-unsubscribe\"")
                && value.trim() == "One-Click"
        });
    }
    form_urlencoded::parse(body).any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click")
}

pub(super) async fn unsubscribe_post(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok((tok, origin)) = app.link_keys.read_unsubscribe(&token) else {
        return invalid_link();
    };
    if let Origin::Test { locale } = &origin {
        return test_unsubscribe_post(&app, &tok, locale, &headers, &body);
    }
    let c = match customer(&app, tok.customer_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return invalid_link(),
        Err(r) => return r,
    };
    let t = texts(&c.locale);
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
    let now = app.clock.now().as_second();
    let category_scope = format!("category:{}", tok.category);
    if is_one_click(&headers, &body) {
        return match app
            .store
            .set_consent(c.id, &category_scope, true, "one_click", now)
            .await
        {
            Ok(changed) => {
                tracing::info!(customer = c.id, scope = %category_scope, changed, "one-click unsubscribe");
                (StatusCode::OK, "unsubscribed\n").into_response()
            }
            Err(e) => server_error(t, e),
        };
    }
    let (scope, what) = if has("scope", "category") {
        (
            category_scope,
            format!(
                "{} <strong>{}</strong>",
                esc(t.done_category),
                esc(&category_label(
                    &app,
                    &tok.category,
                    &Reader::of(&app, &c.locale, &c.attributes)
                ))
            ),
        )
    } else if has("scope", "channel") {
        (
            format!("channel:{}", tok.channel),
            format!(
                "{} <strong>{}</strong>",
                esc(t.done_channel),
                esc(channel_name(t, tok.channel))
            ),
        )
    } else {
        return (
            StatusCode::BAD_REQUEST,
            "choose scope=category or scope=channel\n",
        )
            .into_response();
    };
    match app.store.set_consent(c.id, &scope, true, "link", now).await {
        Ok(changed) => {
            tracing::info!(customer = c.id, scope = %scope, changed, "unsubscribed from a link");
            // `../p/<token>` resolves next to `/u/<token>`, behind any proxy prefix.
            let prefs = app.link_keys.preferences_token(c.id);
            let body = format!(
                "<p>{what}</p><p><a href=\"../p/{prefs}\">{}</a></p>{}",
                esc(t.manage),
                shop_link(&app)
            );
            html(StatusCode::OK, page(t, t.done_title, &body))
        }
        Err(e) => server_error(t, e),
    }
}

/// What a test unsubscribe link answers to a POST: the same pages as a real one, with the
/// test notice, and nothing recorded.
fn test_unsubscribe_post(
    app: &App,
    tok: &crate::app::UnsubscribeToken,
    locale: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let t = texts(locale);
    if is_one_click(headers, body) {
        tracing::info!(
            customer = tok.customer_id,
            "one-click on a test link: nothing recorded"
        );
        return (
            StatusCode::OK,
            "test link (preview or test send): nothing was recorded\n",
        )
            .into_response();
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
    let what = if has("scope", "category") {
        format!(
            "{} <strong>{}</strong>",
            esc(t.done_category),
            esc(&category_label(
                app,
                &tok.category,
                &Reader::placed(app, locale, None)
            ))
        )
    } else if has("scope", "channel") {
        format!(
            "{} <strong>{}</strong>",
            esc(t.done_channel),
            esc(channel_name(t, tok.channel))
        )
    } else {
        return (
            StatusCode::BAD_REQUEST,
            "choose scope=category or scope=channel\n",
        )
            .into_response();
    };
    tracing::info!(
        customer = tok.customer_id,
        "unsubscribe on a test link: nothing recorded"
    );
    let prefs = app
        .link_keys
        .preferences_token_as(LinkMode::Test, locale, tok.customer_id);
    let body = format!(
        "{}<p>{what}</p><p><a href=\"../p/{prefs}\">{}</a></p>{}",
        test_notice_html(t.test_notice),
        esc(t.manage),
        shop_link(app)
    );
    html(StatusCode::OK, page(t, t.done_title, &body))
}

/// Whether `scope` or one of its parent categories is opted out.
fn blocked(consents: &BTreeMap<String, bool>, scope: &str) -> bool {
    let mut s = scope;
    loop {
        if consents.get(s).copied().unwrap_or(false) {
            return true;
        }
        match s.rfind('.') {
            Some(i) if s.starts_with("category:") => s = &s[..i],
            _ => return false,
        }
    }
}

fn preferences_html(
    app: &App,
    reader: &Reader,
    consents: &BTreeMap<String, bool>,
    notice: Option<&str>,
    test: bool,
) -> String {
    let t = texts(reader.locale);
    let check = |scope: &str| {
        if blocked(consents, scope) {
            ""
        } else {
            " checked"
        }
    };
    let mut body = String::new();
    if test {
        body.push_str(&test_notice_html(t.test_notice));
    }
    if let Some(n) = notice {
        body.push_str(&format!("<p><strong>{}</strong></p>", esc(n)));
    }
    body.push_str(&format!(
        "<p>{} {}.</p><form method=\"post\" action=\"\">\
         <input type=\"hidden\" name=\"form\" value=\"preferences\">\
         <label><input type=\"checkbox\" name=\"all\" value=\"on\"{}> {}</label>\
         <fieldset><legend>{}</legend>",
        esc(t.prefs_intro),
        esc(&app.cfg.shop.name),
        check("all"),
        esc(t.all_messages),
        esc(t.channels)
    ));
    for ch in Channel::ALL {
        body.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"channel\" value=\"{ch}\"{}> {}</label>",
            check(&format!("channel:{ch}")),
            esc(channel_name(t, ch))
        ));
    }
    let (topics, holidays) = categories(app, reader);
    // Channels, then topics, then the holidays one by one (a single one can be turned off).
    let mut group = |legend: &str, items: &[(String, String)]| {
        if items.is_empty() {
            return;
        }
        body.push_str(&format!(
            "</fieldset><fieldset><legend>{}</legend>",
            esc(legend)
        ));
        for (cat, label) in items {
            body.push_str(&format!(
                "<label><input type=\"checkbox\" name=\"category\" value=\"{}\"{}> {}</label>",
                esc(cat),
                check(&format!("category:{cat}")),
                esc(label)
            ));
        }
    };
    group(t.topics, &topics);
    group(&holidays_heading(app, reader, t), &holidays);
    body.push_str(&format!(
        "</fieldset><button>{}</button></form>",
        esc(t.save)
    ));
    body.push_str(&shop_link(app));
    page(t, t.prefs_title, &body)
}

/// Whose preferences a link is for: a real customer (with their consent), or a test link
/// (its page's language; nothing read: everything shows as on).
enum Prefs {
    Live(Box<CustomerRow>),
    Test { customer_id: i64, locale: String },
}

impl Prefs {
    fn locale(&self) -> &str {
        match self {
            Prefs::Live(c) => &c.locale,
            Prefs::Test { locale, .. } => locale,
        }
    }

    fn reader(&self, app: &App) -> Reader<'_> {
        match self {
            Prefs::Live(c) => Reader::of(app, &c.locale, &c.attributes),
            Prefs::Test { locale, .. } => Reader::placed(app, locale, None),
        }
    }
}

async fn preferences_customer(
    app: &App,
    token: &str,
) -> Result<(Prefs, BTreeMap<String, bool>), Response> {
    let Ok((id, origin)) = app.link_keys.read_preferences(token) else {
        return Err(invalid_link());
    };
    if let Origin::Test { locale } = origin {
        let who = Prefs::Test {
            customer_id: id,
            locale,
        };
        return Ok((who, BTreeMap::new()));
    }
    let Some(c) = customer(app, id).await? else {
        return Err(invalid_link());
    };
    let consents = app
        .store
        .consent_map(c.id)
        .await
        .map_err(|e| server_error(texts(&c.locale), e))?;
    Ok((Prefs::Live(Box::new(c)), consents))
}

pub(super) async fn preferences_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Response {
    match preferences_customer(&app, &token).await {
        Ok((who, consents)) => {
            let test = matches!(who, Prefs::Test { .. });
            html(
                StatusCode::OK,
                preferences_html(&app, &who.reader(&app), &consents, None, test),
            )
        }
        Err(r) => r,
    }
}

pub(super) async fn preferences_post(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let (who, mut consents) = match preferences_customer(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let t = texts(who.locale());
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    // An empty or foreign body must not read as "everything off".
    if !form.iter().any(|(k, v)| k == "form" && v == "preferences") {
        return (StatusCode::BAD_REQUEST, "not a preference form\n").into_response();
    }
    let on: BTreeSet<String> = form
        .iter()
        .filter_map(|(k, v)| match k.as_str() {
            "all" if v == "on" => Some("all".to_string()),
            "channel" => Some(format!("channel:{v}")),
            "category" => Some(format!("category:{v}")),
            _ => None,
        })
        .collect();
    // Only the scopes this page shows can be switched: nothing else comes from the form.
    let mut scopes = vec!["all".to_string()];
    scopes.extend(Channel::ALL.map(|ch| format!("channel:{ch}")));
    let (topics, holidays) = categories(&app, &who.reader(&app));
    scopes.extend(
        topics
            .into_iter()
            .chain(holidays)
            .map(|(cat, _)| format!("category:{cat}")),
    );
    let c = match who {
        Prefs::Live(c) => c,
        Prefs::Test {
            customer_id,
            locale,
        } => {
            // The page as the form asked for it; nothing stored.
            for scope in scopes {
                let out = !on.contains(&scope);
                consents.insert(scope, out);
            }
            tracing::info!(
                customer = customer_id,
                "preferences on a test link: nothing recorded"
            );
            return html(
                StatusCode::OK,
                preferences_html(
                    &app,
                    &Reader::placed(&app, &locale, None),
                    &consents,
                    None,
                    true,
                ),
            );
        }
    };
    let now = app.clock.now().as_second();
    let mut changes = 0;
    for scope in scopes {
        let want_out = !on.contains(&scope);
        let is_out = consents.get(&scope).copied().unwrap_or(false);
        if want_out == is_out {
            continue;
        }
        match app
            .store
            .set_consent(c.id, &scope, want_out, "preferences", now)
            .await
        {
            Ok(_) => {
                consents.insert(scope, want_out);
                changes += 1;
            }
            Err(e) => return server_error(t, e),
        }
    }
    tracing::info!(customer = c.id, changes, "preferences saved");
    html(
        StatusCode::OK,
        preferences_html(
            &app,
            &Reader::of(&app, &c.locale, &c.attributes),
            &consents,
            Some(t.saved),
            false,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_fall_back_to_english() {
        assert_eq!(texts("ro-MD").lang, "ro");
        assert_eq!(texts("ru").lang, "ru");
        assert_eq!(texts("de").lang, "en");
        assert_eq!(texts("").lang, "en");
    }

    #[test]
    fn one_click_bodies_form_encoded_and_multipart() {
        let form = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            h
        };
        let urlenc = form("application/x-www-form-urlencoded");
        assert!(is_one_click(&urlenc, b"List-Unsubscribe=One-Click"));
        assert!(!is_one_click(&urlenc, b"List-Unsubscribe=Two-Clicks"));
        assert!(!is_one_click(&urlenc, b"scope=category"));
        assert!(!is_one_click(&urlenc, b""));
        // RFC 8058, section 8.1.
        let multi = form("multipart/form-data; boundary=---FormBoundaryjWmhtjORrn");
        let body = "-----FormBoundaryjWmhtjORrn\r\n\
                    Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\
                    \r\n\
                    One-Click\r\n\
                    -----FormBoundaryjWmhtjORrn--\r\n";
        assert!(is_one_click(&multi, body.as_bytes()));
        assert!(!is_one_click(
            &multi,
            body.replace("One-Click", "No").as_bytes()
        ));
        assert!(!is_one_click(&form("multipart/form-data"), body.as_bytes()));
    }

    #[test]
    fn a_parent_category_blocks_its_children() {
        let c: BTreeMap<String, bool> = [("category:holidays".to_string(), true)].into();
        assert!(blocked(&c, "category:holidays.mothers_day"));
        assert!(!blocked(&c, "category:birthday"));
        assert!(!blocked(&c, "channel:sms"));
    }
}
