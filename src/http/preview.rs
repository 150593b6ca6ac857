//! The preview page: `GET /` lists every ritual × locale its template folder has, with the
//! subject, the email (in a sandboxed `srcdoc` iframe, so its styles and links cannot touch the
//! page) and the SMS with its encoding and segment count, for one sample customer and date.
//!
//! Nothing is cached: each request loads the rituals and templates from disk
//! ([`Definitions::load`]), so a reload shows the files as they are now. When they do not load,
//! the page lists the diagnostics (file:line: message, hint) instead, still with HTTP 200: it is
//! the marketer's answer, not a server failure. `GET /version` is a digest of every file under
//! the rituals and templates folders; the page polls it every second and reloads itself when it
//! changes. The configuration itself is read once, at start.

use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use jiff::civil::Date;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::pages::NAV_STYLE;
use super::pages::access::{KEY_VAR, PASSWORD_VAR, PreviewAccess, USER_VAR};
use super::respond::esc;
use crate::app::{
    App, ComposeError, ComposeRequest, Composed, Definitions, LinkMode, compose_with,
    sample_customers,
};
use crate::config::{Config, Diagnostics, Severity};
use crate::domain::{Channel, Locale};
use crate::plan::CustomerFacts;
use crate::ritual::Ritual;

/// The date the page shows when none is chosen: the samples' birthday.
const DEFAULT_DATE: Date = jiff::civil::date(2027, 3, 1);

/// Key for Message-IDs and link tokens when the config has no secret. The page's links are
/// test links either way (they open the daemon's pages with a "test" notice and record
/// nothing); with this key they do not verify at all.
const PREVIEW_KEY: &[u8] = b"ritualist-preview";

/// Serves the preview page and the marketer's pages on `listener` until `shutdown`
/// completes. `app` is the app over the configured database, or why there is none (the
/// pages say it; the preview itself needs none). A listener on anything but a loopback
/// address is refused unless `access` sets a key or a password: the pages show customers.
pub async fn serve_preview(
    cfg: Config,
    app: Result<Arc<App>, String>,
    access: PreviewAccess,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() && !access.is_set() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{local} is not a loopback address: set {KEY_VAR}, or {USER_VAR} and {PASSWORD_VAR}, to serve the pages beyond this machine"
            ),
        ));
    }
    let routes = router(Arc::new(cfg))
        .merge(super::pages::router(app))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            super::pages::access::guard,
        ));
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(cfg: Arc<Config>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/version", get(version))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(cfg)
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    /// External id of one of the sample customers.
    customer: Option<String>,
    /// YYYY-MM-DD.
    date: Option<String>,
    /// Only this ritual.
    ritual: Option<String>,
    /// Only this locale.
    locale: Option<String>,
    /// A real customer from the database: external id, email or phone.
    find: Option<String>,
}

const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

async fn page(State(cfg): State<Arc<Config>>, Query(q): Query<PageQuery>) -> impl IntoResponse {
    // A real customer is looked up first (the database is async); a missing one is explained.
    let found = match q.find.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(key) => Some(
            match Config::load(&cfg.path) {
                Ok(fresh) => crate::app::find_customer_facts(&fresh, key).await,
                Err(_) => crate::app::find_customer_facts(&cfg, key).await,
            }
            .map_err(|e| e.to_string())
            .and_then(|c| {
                c.ok_or_else(|| format!("no customer with external id, email or phone `{key}`"))
            }),
        ),
    };
    // Loading and rendering read files: keep them off the async workers.
    let html = tokio::task::spawn_blocking(move || render_page_for(&cfg, &q, found))
        .await
        .unwrap_or_else(|e| {
            shell(
                "error",
                "",
                &format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
            )
        });
    (NO_STORE, Html(html))
}

async fn version(State(cfg): State<Arc<Config>>) -> impl IntoResponse {
    let v = tokio::task::spawn_blocking(move || files_version(&cfg))
        .await
        .unwrap_or_default();
    (NO_STORE, v)
}

/// A digest of the names and contents of every file under the rituals and templates folders.
/// Contents rather than mtimes: an edit within the file system's timestamp granularity still
/// counts. The folders are small text files, so hashing them once a second is cheap.
fn files_version(cfg: &Config) -> String {
    let mut files = Vec::new();
    // The configuration too: it is read again for every page.
    let content = std::fs::read(&cfg.path).unwrap_or_else(|e| e.to_string().into_bytes());
    files.push((cfg.path.display().to_string(), content));
    for dir in [&cfg.rituals_dir, &cfg.templates_dir] {
        collect_files(dir, 0, &mut files);
    }
    files.sort();
    let mut h = Sha256::new();
    for (path, content) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update((content.len() as u64).to_le_bytes());
        h.update(&content);
    }
    let mut v = hex::encode(h.finalize());
    v.truncate(16);
    v
}

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<(String, Vec<u8>)>) {
    // Bounded depth: a symlink loop must not hang the page.
    if depth > 8 {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            // A folder appearing or vanishing changes the version too.
            out.push((dir.display().to_string(), e.to_string().into_bytes()));
            return;
        }
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, depth + 1, out);
        } else {
            let content = std::fs::read(&p).unwrap_or_else(|e| e.to_string().into_bytes());
            out.push((p.display().to_string(), content));
        }
    }
}

#[cfg(test)]
fn render_page(started: &Config, q: &PageQuery) -> String {
    render_page_for(started, q, None)
}

/// The page for a sample customer, or for `found`: a real customer looked up in the database
/// (or why there is none).
fn render_page_for(
    started: &Config,
    q: &PageQuery,
    found: Option<Result<CustomerFacts, String>>,
) -> String {
    // The version first: a file edited while this page renders then still triggers a reload.
    let version = files_version(started);
    // ritualist.yaml as it is now (the one read at start keeps its path and secret).
    let fresh;
    let cfg = match Config::load(&started.path) {
        Ok(c) => {
            fresh = c;
            &fresh
        }
        Err(diags) => {
            let mut body = diagnostics(&diags, "The configuration does not load");
            body.push_str(&reload_script(&version));
            return shell("configuration", "", &body);
        }
    };
    let samples = sample_customers(cfg);
    let mut notices = Vec::new();
    let real = match found {
        Some(Ok(c)) => Some(c),
        Some(Err(why)) => {
            notices.push(why);
            None
        }
        None => None,
    };
    let customer = match q.customer.as_deref().filter(|s| !s.is_empty()) {
        _ if real.is_some() => real.as_ref().expect("checked"),
        None => &samples[0],
        Some(id) => samples
            .iter()
            .find(|c| c.external_id == id)
            .unwrap_or_else(|| {
                notices.push(format!(
                    "there is no sample customer `{id}`; showing `{}`",
                    samples[0].external_id
                ));
                &samples[0]
            }),
    };
    let date = match q.date.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_DATE,
        Some(s) => match s.parse::<Date>() {
            Err(_) => {
                notices.push(format!(
                    "`{s}` is not a date (YYYY-MM-DD); showing {DEFAULT_DATE}"
                ));
                DEFAULT_DATE
            }
            // Far dates would leave the calendar's range while rendering.
            Ok(d) => crate::app::supported_date(d).unwrap_or_else(|why| {
                notices.push(format!("{why}; showing {DEFAULT_DATE}"));
                DEFAULT_DATE
            }),
        },
    };

    let mut body = String::new();
    for n in &notices {
        let _ = write!(body, "<p class=\"notice\">{}</p>", esc(n));
    }
    match Definitions::load(cfg) {
        Ok(defs) => body.push_str(&messages(cfg, &defs, customer, date, q)),
        Err(diags) => {
            // One broken file must not hide the others: its errors first, then every ritual
            // that loads without it.
            body.push_str(&diagnostics(&diags, "Some files do not load"));
            if let Some(defs) = load_around(cfg, &diags) {
                body.push_str(&messages(cfg, &defs, customer, date, q));
            }
        }
    }
    body.push_str(&reload_script(&version));
    shell(
        &format!("{} · {date}", customer.external_id),
        &form(&samples, customer, date, q.find.as_deref()),
        &body,
    )
}

fn form(
    samples: &[CustomerFacts],
    chosen: &CustomerFacts,
    date: Date,
    find: Option<&str>,
) -> String {
    let mut options = String::new();
    for c in samples {
        let name = match (&c.first_name, &c.last_name) {
            (None, None) => "no name".to_string(),
            (f, l) => [f.as_deref(), l.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        };
        let birthday = c
            .birthday
            .map(|b| b.to_string())
            .unwrap_or_else(|| "no birthday".into());
        let _ = write!(
            options,
            "<option value=\"{id}\"{sel}>{id} ({name}, {birthday})</option>",
            id = esc(&c.external_id),
            sel = if c.external_id == chosen.external_id {
                " selected"
            } else {
                ""
            },
            name = esc(&name),
            birthday = esc(&birthday),
        );
    }
    format!(
        "<form method=\"get\" action=\"/\">\
         <label>Sample customer <select name=\"customer\">{options}</select></label> \
         <label>or a real customer <input name=\"find\" value=\"{find}\" placeholder=\"id, email or phone\"></label> \
         <label>Date <input type=\"date\" name=\"date\" value=\"{date}\" required></label> \
         <button type=\"submit\">Show</button>\
         <span class=\"live\">reloads when a ritual or template file changes</span>\
         </form>",
        find = esc(find.unwrap_or(""))
    )
}

/// The definitions without the files `diags` names as broken: rituals and templates are
/// copied to a scratch folder minus those files (and, round by round, minus the rituals left
/// without a template). `None` when what is broken is elsewhere (segments, calendars).
fn load_around(cfg: &Config, diags: &Diagnostics) -> Option<Definitions> {
    struct Scratch(std::path::PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "ritualist-preview-{}",
        crate::store::random_token()
    )));
    let mut broken: Vec<std::path::PathBuf> = Vec::new();
    let mut diags = diags.clone();
    for round in 0..4 {
        let before = broken.len();
        for d in diags.errors() {
            let mut file = d.file.clone();
            // A broken template leaves out its whole folder (`templates/<ritual>/`): its
            // rituals are then refused for want of a template, rather than shown in part.
            if let Ok(rel) = file.strip_prefix(&cfg.templates_dir)
                && rel.components().count() == 3
                && let Some(folder) = rel.components().next()
            {
                file = cfg.templates_dir.join(folder);
            }
            let own = file.starts_with(&cfg.rituals_dir) || file.starts_with(&cfg.templates_dir);
            if own && !broken.contains(&file) {
                broken.push(file);
            }
        }
        if broken.len() == before {
            return None;
        }
        let root = scratch.0.join(round.to_string());
        let (rituals, templates) = (root.join("rituals"), root.join("templates"));
        copy_except(&cfg.rituals_dir, &rituals, &broken, 0).ok()?;
        copy_except(&cfg.templates_dir, &templates, &broken, 0).ok()?;
        let mut trimmed = cfg.clone();
        trimmed.rituals_dir = rituals.clone();
        trimmed.templates_dir = templates.clone();
        match Definitions::load(&trimmed) {
            Ok(mut defs) => {
                for r in &mut defs.rituals {
                    if let Ok(rel) = r.source.strip_prefix(&rituals) {
                        r.source = cfg.rituals_dir.join(rel);
                    }
                }
                return Some(defs);
            }
            Err(d) => {
                // Errors in the copies name the copies: map them back to the real files.
                diags = Diagnostics::default();
                for mut e in d.0 {
                    for (copy, real) in [
                        (&rituals, &cfg.rituals_dir),
                        (&templates, &cfg.templates_dir),
                    ] {
                        if let Ok(rel) = e.file.strip_prefix(copy) {
                            e.file = real.join(rel);
                        }
                    }
                    diags.push(e);
                }
            }
        }
    }
    None
}

fn copy_except(
    from: &Path,
    to: &Path,
    skip: &[std::path::PathBuf],
    depth: usize,
) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    if depth > 8 || !from.is_dir() {
        return Ok(());
    }
    for e in std::fs::read_dir(from)?.flatten() {
        let p = e.path();
        if skip.contains(&p) {
            continue;
        }
        if p.is_dir() {
            copy_except(&p, &to.join(e.file_name()), skip, depth + 1)?;
        } else {
            std::fs::copy(&p, to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Jump links to each ritual, and filters by ritual and locale (links that keep the customer
/// and date of the page).
fn navigation(defs: &Definitions, customer: &CustomerFacts, date: Date, q: &PageQuery) -> String {
    let base = |ritual: Option<&str>, locale: Option<&str>| {
        let mut url = format!("/?customer={}&date={date}", esc(&customer.external_id));
        if let Some(r) = ritual {
            url.push_str(&format!("&ritual={}", esc(r)));
        }
        if let Some(l) = locale {
            url.push_str(&format!("&locale={}", esc(l)));
        }
        url
    };
    let mut locales: Vec<String> = defs
        .rituals
        .iter()
        .flat_map(|r| defs.templates.locales(&r.template))
        .collect();
    locales.sort();
    locales.dedup();
    let mut out = String::from("<nav class=\"jump\"><span>Rituals:</span> ");
    for r in &defs.rituals {
        let _ = write!(
            out,
            "<a href=\"#ritual-{n}\">{n}</a> <a class=\"only\" href=\"{only}\" title=\"only {n}\">(only)</a> ",
            n = esc(&r.name),
            only = base(Some(&r.name), q.locale.as_deref()),
        );
    }
    out.push_str("<br><span>Locales:</span> ");
    for l in &locales {
        let _ = write!(
            out,
            "<a href=\"{}\">{}</a> ",
            base(q.ritual.as_deref(), Some(l)),
            esc(l)
        );
    }
    if q.ritual.is_some() || q.locale.is_some() {
        let _ = write!(out, "<a href=\"{}\">all</a>", base(None, None));
    }
    out.push_str("</nav>");
    out
}

fn messages(
    cfg: &Config,
    defs: &Definitions,
    customer: &CustomerFacts,
    date: Date,
    q: &PageQuery,
) -> String {
    let mut out = navigation(defs, customer, date, q);
    if defs.rituals.is_empty() {
        let _ = write!(
            out,
            "<p class=\"notice\">No rituals in {}.</p>",
            esc(&cfg.rituals_dir.display().to_string())
        );
    }
    let key = crate::app::configured_secret(cfg).unwrap_or(PREVIEW_KEY);
    let page = Page {
        cfg,
        defs,
        customer,
        date,
        key,
    };
    for ritual in defs.rituals.iter().filter(|r| wanted(&q.ritual, &r.name)) {
        page.ritual_section(&mut out, ritual, q);
    }
    out
}

/// No filter, an empty one, or `x` itself.
fn wanted(v: &Option<String>, x: &str) -> bool {
    v.as_deref().is_none_or(|w| w.is_empty() || w == x)
}

/// What every ritual's section of the page is rendered with.
struct Page<'a> {
    cfg: &'a Config,
    defs: &'a Definitions,
    customer: &'a CustomerFacts,
    date: Date,
    /// Signs the test links.
    key: &'a [u8],
}

impl Page<'_> {
    /// The ritual's occasion on the page's date, or a sample one (said so in `out`) when it
    /// would not fire then.
    fn occasion(&self, out: &mut String, ritual: &Ritual) -> crate::plan::Occasion {
        let (customer, date) = (self.customer, self.date);
        let engine = self.defs.engine(self.cfg);
        let idx = engine.ritual_index(&ritual.name).unwrap_or(0);
        let start =
            crate::plan::day_start(date, &customer.zone) - jiff::SignedDuration::from_secs(1);
        let end = crate::plan::day_start(date.tomorrow().unwrap_or(date), &customer.zone);
        if let Some(o) = engine
            .occurrences_of(idx, customer, start, end)
            .into_iter()
            .next()
        {
            return o.occasion;
        }
        let _ = write!(
            out,
            "<p class=\"notice\">`{}` would not fire for {} on {date}; shown as if it did.</p>",
            esc(&ritual.name),
            esc(&customer.external_id)
        );
        let mut o = crate::app::sample_occasion(Some(ritual), true);
        o.date = date;
        o.year = date.year();
        if o.years.is_some() {
            o.years = customer.birthday.and_then(|b| b.years_at(date.year()));
        }
        o
    }

    /// One ritual: every locale (as filtered), email and SMS side by side.
    fn ritual_section(&self, out: &mut String, ritual: &Ritual, q: &PageQuery) {
        let (cfg, defs, customer, date) = (self.cfg, self.defs, self.customer, self.date);
        let _ = write!(
            out,
            "<section class=\"ritual\" id=\"ritual-{name}\"><h2>{name}</h2>",
            name = esc(&ritual.name)
        );
        if let Some(d) = &ritual.description {
            let _ = write!(out, "<p class=\"description\">{}</p>", esc(d));
        }
        let occasion = self.occasion(out, ritual);
        let now = date
            .to_datetime(ritual.send_time)
            .to_zoned(customer.zone.clone())
            .map(|z| z.timestamp().as_second())
            .unwrap_or(0);
        let locales = defs.templates.locales(&ritual.template);
        if locales.is_empty() {
            let _ = write!(
                out,
                "<p class=\"notice\">templates/{}/ has no locale folders.</p>",
                esc(&ritual.template)
            );
        }
        for locale in locales.into_iter().filter(|l| wanted(&q.locale, l)) {
            let _ = write!(
                out,
                "<div class=\"locale\" lang=\"{l}\"><h3>{l}</h3><div class=\"pair\">",
                l = esc(&locale)
            );
            let Ok(parsed) = Locale::parse(&locale) else {
                let _ = write!(
                    out,
                    "<p class=\"error\">`{}` is not a locale name.</p></div></div>",
                    esc(&locale)
                );
                continue;
            };
            let c = CustomerFacts {
                locale: parsed,
                ..customer.clone()
            };
            // Test links: the page's unsubscribe, preference and survey links open the real
            // pages (when `secret` is the daemon's) and record nothing.
            let render = |channel| {
                compose_with(&ComposeRequest {
                    cfg,
                    templates: &defs.templates,
                    key: self.key,
                    ritual,
                    customer: &c,
                    occasion: &occasion,
                    occurrence: &occasion.year.to_string(),
                    channel,
                    now,
                    prefix: None,
                    dkim: None,
                    links: LinkMode::Test,
                    delivery_token: None,
                })
            };
            out.push_str(&email_card(ritual, &locale, Channel::Email, &render));
            out.push_str(&sms_card(ritual, &locale, Channel::Sms, &render));
            out.push_str("</div></div>");
        }
        out.push_str("</section>");
    }
}

type Render<'a> = dyn Fn(Channel) -> Result<Composed, ComposeError> + 'a;

/// "from en" when the locale had no template of its own for this part.
fn fallback_note(wanted: &str, m: &Composed) -> String {
    if m.locale == wanted {
        String::new()
    } else {
        format!(
            " <span class=\"fallback\">(no {} template: falls back to {})</span>",
            esc(wanted),
            esc(&m.locale)
        )
    }
}

fn email_card(ritual: &Ritual, locale: &str, channel: Channel, render: &Render) -> String {
    let mut out = String::from("<div class=\"card email\"><h4>Email</h4>");
    if !ritual.channels.contains(&channel) {
        out.push_str("<p class=\"muted\">this ritual sends no email</p></div>");
        return out;
    }
    match render(channel) {
        Ok(m) => {
            let _ = write!(
                out,
                "<p class=\"subject\"><span class=\"label\">Subject</span> {}{}</p>\
                 <iframe sandbox srcdoc=\"{}\" title=\"{} email, {}\"></iframe>\
                 <details><summary>plain text</summary><pre>{}</pre></details>",
                esc(m.subject.as_deref().unwrap_or("")),
                fallback_note(locale, &m),
                esc(m.html.as_deref().unwrap_or("")),
                esc(&ritual.name),
                esc(locale),
                esc(m.text.as_deref().unwrap_or("")),
            );
        }
        Err(e) => {
            let _ = write!(out, "<p class=\"error\">{}</p>", esc(&e.to_string()));
        }
    }
    out.push_str("</div>");
    out
}

fn sms_card(ritual: &Ritual, locale: &str, channel: Channel, render: &Render) -> String {
    let mut out = String::from("<div class=\"card sms\"><h4>SMS</h4>");
    if !ritual.channels.contains(&channel) {
        out.push_str("<p class=\"muted\">this ritual sends no SMS</p></div>");
        return out;
    }
    match render(channel) {
        Ok(m) => {
            let _ = write!(out, "<pre class=\"bubble\">{}</pre>", esc(&m.payload));
            if let Some(len) = m.sms {
                let _ = write!(
                    out,
                    "<p class=\"meta{warn}\">{enc} · {n} segment{s} · {units} units{note}</p>",
                    warn = if len.segments > 1 { " warn" } else { "" },
                    enc = len.encoding.as_str(),
                    n = len.segments,
                    s = if len.segments == 1 { "" } else { "s" },
                    units = len.units,
                    note = fallback_note(locale, &m),
                );
            }
        }
        Err(e) => {
            let _ = write!(out, "<p class=\"error\">{}</p>", esc(&e.to_string()));
        }
    }
    out.push_str("</div>");
    out
}

fn diagnostics(diags: &Diagnostics, what: &str) -> String {
    let errors = diags.errors().count();
    let mut out = format!(
        "<section class=\"problems\"><h2>{what}: {errors} error{s}</h2>\
         <p>Fix the files below; this page reloads by itself when you save.</p><ul>",
        what = esc(what),
        s = if errors == 1 { "" } else { "s" }
    );
    for d in &diags.0 {
        let (class, sev) = match d.severity {
            Severity::Error => ("error", "error"),
            Severity::Warning => ("warning", "warning"),
            Severity::Note => ("note", "note"),
        };
        let place = if d.line > 0 {
            format!("{}:{}:{}", d.file.display(), d.line, d.column)
        } else {
            d.file.display().to_string()
        };
        let _ = write!(
            out,
            "<li class=\"{class}\"><code>{}</code>: {sev}: {}",
            esc(&place),
            esc(&d.message)
        );
        if let Some(h) = &d.hint {
            let _ = write!(out, "<div class=\"hint\">hint: {}</div>", esc(h));
        }
        out.push_str("</li>");
    }
    out.push_str("</ul></section>");
    out
}

/// Polls `/version` every second; reloads (keeping the query) when the files changed.
fn reload_script(version: &str) -> String {
    format!(
        "<script>(function(){{var v=\"{}\";setInterval(function(){{\
         fetch(\"/version\",{{cache:\"no-store\"}}).then(function(r){{return r.ok?r.text():v}})\
         .then(function(t){{if(t!==v){{location.reload()}}}}).catch(function(){{}})}},1000)}})();</script>",
        esc(version)
    )
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f4f6;color:#222}\
header{background:#2d2a32;color:#fff;padding:10px 20px}header h1{font-size:18px;margin:0 0 8px}\
form{display:flex;gap:12px;align-items:center;flex-wrap:wrap}form .live{color:#bbb;font-size:12px}\
main{padding:8px 20px 40px}.ritual{margin-top:16px}.ritual>h2{margin:8px 0 0}\
.description{color:#555;margin:2px 0 8px}.locale{background:#fff;border:1px solid #ddd;border-radius:6px;margin:12px 0;padding:8px 12px}\
.locale h3{margin:0 0 6px;text-transform:uppercase;font-size:14px;color:#666}\
.pair{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);gap:16px}\
.card h4{margin:0 0 6px;font-size:13px;color:#888;text-transform:uppercase}\
.subject{margin:0 0 6px;font-weight:600}.label{font-weight:normal;color:#888;margin-right:6px}\
iframe{width:100%;height:460px;border:1px solid #ccc;border-radius:4px;background:#fff}\
.bubble{white-space:pre-wrap;background:#e7f0ff;border-radius:12px;padding:10px 12px;margin:0;font:inherit}\
.meta{color:#666;font-size:13px}.meta.warn{color:#a15c00}.fallback{color:#a15c00;font-weight:normal;font-size:13px}\
.muted{color:#999}.notice{background:#fff8e0;border:1px solid #f0d98a;padding:6px 10px;border-radius:4px}\
.error{color:#a00}.warning{color:#a15c00}.hint{color:#555;margin-left:1em}\
.problems{background:#fff;border:1px solid #e0a0a0;border-radius:6px;padding:8px 16px;margin-top:16px}\
.problems li{margin:8px 0}details pre{white-space:pre-wrap}";

fn shell(title: &str, header: &str, main: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <title>ritualist preview · {}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}{NAV_STYLE}</style></head>\
         <body><header><h1>ritualist preview</h1>{nav}{header}</header><main>{main}</main></body></html>",
        esc(title),
        nav = super::pages::nav("/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ritualist.yaml");
        Config::load(&path).unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn page_shows_every_locale_with_email_and_sms() {
        let html = render_page(&repo_config(), &PageQuery::default());
        for l in ["en", "ro", "ru"] {
            assert!(html.contains(&format!("<h3>{l}</h3>")), "{l} missing");
        }
        assert!(html.contains("С днём рождения, Ana!"), "{html}");
        assert!(html.contains("<iframe sandbox srcdoc=\"&lt;!doctype html&gt;"));
        // The email's own quotes are escaped inside the attribute: no raw `"` ends it early.
        assert!(html.contains("style=&quot;"));
        assert!(html.contains("ucs-2 · "), "the Russian SMS is UCS-2");
        assert!(html.contains("value=\"2027-03-01\""));
        assert!(html.contains(&files_version(&repo_config())));
    }

    #[test]
    fn page_falls_back_and_explains_bad_input() {
        let q = PageQuery {
            customer: Some("nobody".into()),
            date: Some("2027-13-40".into()),
            ..Default::default()
        };
        let html = render_page(&repo_config(), &q);
        assert!(html.contains("there is no sample customer `nobody`"));
        assert!(html.contains("`2027-13-40` is not a date"));
        let q = PageQuery {
            customer: Some("sample-minimal".into()),
            date: Some("2027-06-01".into()),
            ..Default::default()
        };
        let html = render_page(&repo_config(), &q);
        assert!(html.contains("would not fire for sample-minimal on 2027-06-01"));
        assert!(
            html.contains("Дорогой друг"),
            "the minimal sample has no name"
        );
    }

    /// A copy of the repository's config, rituals and templates to break files in.
    /// A folder removed on drop: also when the test panics.
    struct TestDir(std::path::PathBuf);

    impl std::ops::Deref for TestDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch_project() -> (TestDir, Config) {
        let root = std::env::temp_dir().join(format!(
            "ritualist-preview-test-{}",
            crate::store::random_token()
        ));
        let root = TestDir(root);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_except(&repo.join("config"), &root.join("config"), &[], 0).unwrap();
        copy_except(&repo.join("templates"), &root.join("templates"), &[], 0).unwrap();
        let cfg = Config::load(&root.join("config/ritualist.yaml")).unwrap();
        (root, cfg)
    }

    /// #24: one broken file hid every preview; the page did not see ritualist.yaml change.
    #[test]
    fn a_broken_file_shows_its_error_beside_the_other_rituals() {
        let (root, cfg) = scratch_project();
        let html = root.join("templates/birthday/en/email.html.hbs");
        let text = std::fs::read_to_string(&html).unwrap();
        std::fs::write(&html, text.replacen("{{default", "{{defualt", 1)).unwrap();
        let digest = root.join("config/rituals/digest.yaml");
        std::fs::write(&digest, "trigger: {{{\n").unwrap();
        let page = render_page(&cfg, &PageQuery::default());
        assert!(page.contains("Some files do not load"), "{page}");
        assert!(
            page.contains("email.html.hbs:") && page.contains("digest.yaml:"),
            "{page}"
        );
        // The others are still shown: the anniversary and holiday rituals, in every locale.
        assert!(
            page.contains("id=\"ritual-anniversary\"") && page.contains("id=\"ritual-holidays\""),
            "{page}"
        );
        assert!(
            !page.contains("id=\"ritual-birthday\""),
            "its template is broken"
        );
        assert!(!page.contains("id=\"ritual-digest\""), "its file is broken");
        // ritualist.yaml is read again for each page: a broken one is reported.
        let yaml = root.join("config/ritualist.yaml");
        let before = files_version(&cfg);
        let text = std::fs::read_to_string(&yaml).unwrap();
        std::fs::write(&yaml, text.replacen("time_zone:", "time_zon:", 1)).unwrap();
        assert_ne!(
            files_version(&cfg),
            before,
            "the page reloads on a config edit"
        );
        let page = render_page(&cfg, &PageQuery::default());
        assert!(
            page.contains("The configuration does not load") && page.contains("time_zon"),
            "{page}"
        );
    }

    #[test]
    fn filters_by_ritual_and_locale_with_jump_links() {
        let q = PageQuery {
            ritual: Some("birthday".into()),
            locale: Some("ro".into()),
            ..Default::default()
        };
        let page = render_page(&repo_config(), &q);
        assert!(page.contains("id=\"ritual-birthday\""));
        assert!(!page.contains("id=\"ritual-holidays\""), "filtered out");
        assert!(page.contains("<h3>ro</h3>") && !page.contains("<h3>en</h3>"));
        // Jump links to every ritual, and a way back to all.
        assert!(page.contains("href=\"#ritual-holidays\""));
        assert!(
            page.contains("&amp;ritual=winback") || page.contains("&ritual=winback"),
            "{page}"
        );
        assert!(page.contains(">all</a>"));
    }

    /// Regression (issue #23): a far date in the query panicked in the date library while
    /// the page was rendered; now it is explained and the default date shown.
    #[test]
    fn page_refuses_dates_out_of_range() {
        for date in ["9999-12-31", "-009999-01-01", "9001-01-01"] {
            let q = PageQuery {
                customer: None,
                date: Some(date.into()),
                ..Default::default()
            };
            let html = render_page(&repo_config(), &q);
            assert!(html.contains("is out of range"), "{date}: {html}");
            assert!(html.contains("value=\"2027-03-01\""), "{date}");
        }
    }

    #[tokio::test]
    async fn serves_health_and_stops_on_shutdown() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_preview(
            repo_config(),
            Err("no database in this test".into()),
            PreviewAccess::default(),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with("ok"), "{resp}");
        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server stops after shutdown")
            .unwrap()
            .unwrap();
    }
}
