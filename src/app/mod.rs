//! Use cases: what the CLI (and the tests) ask the product to do — tick, dispatch, preview,
//! check, import, report. This is where the pure parts (ritual, plan, render) meet the effectful ones
//! (store, channel); it holds no foreign crate of its own.

mod bounce_mail;
mod calendar;
mod check;
mod deliverability;
mod dispatch;
mod doctor;
mod drain;
mod feedback;
mod forget;
mod history;
mod import;
mod ingest;
mod lift;
mod message;
mod metrics;
mod names;
mod outbox;
mod overlap;
mod plan_cmd;
mod preview;
mod render_queue;
mod report;
mod scan;
mod surveys;
mod tick;
mod tick_drain;
mod tokens;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::calendar::{Calendar, load_calendars};
use crate::channel::{Channels, DkimSigner};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, Diagnostic, Diagnostics};
use crate::plan::Engine;
use crate::render::Templates;
use crate::ritual::{Ritual, Segments, Trigger, load_rituals, load_segments};
use crate::store::Store;

pub use calendar::{
    CALENDAR_MAX_DAYS, CalendarDay, CalendarRequest, DayTally, SendCalendar, SendCount,
    calendar_dates, reason_kind, tally as tally_calendar_day,
};
pub use check::check;
pub use deliverability::{
    Alert, AlertRate, DeliverabilityRow, alerts as deliverability_alerts, deliverability,
};
pub use dispatch::{DispatchReport, retry_delay_secs};
pub use doctor::{Probe, doctor};
pub use feedback::{FeedbackResult, policy as feedback_policy};
pub use forget::{ForgetReport, StubKeys};
pub use history::{
    ChannelConsent, ConsentEventView, CustomerHistory, HISTORY_PLAN_DAYS, HistoryRequest, Orders,
    Plan, Profile,
};
pub use import::{ImportKind, ImportProgress, ImportReport, import_file};
pub use ingest::IngestReport;
pub use lift::{
    Counts, LiftError, MeanLift, MeanStats, ProportionLift, outcome_lift, repeat_lift,
    revenue_lift, welch,
};
pub use message::{
    ComposeError, ComposeRequest, Composed, compose, compose_with, message_context, message_id,
    preferences_link, sample_customers, sample_occasion, survey_links, unsubscribe_link,
};
pub use metrics::{BUCKETS, Metrics};
pub use names::Known;
pub use outbox::{
    FAILED_LISTED, OutboxChange, OutboxView, all_failed, all_in_doubt, all_pending, outbox_cancel,
    outbox_resume, outbox_retry, outbox_view,
};
pub use plan_cmd::{PlanRequest, PlanSummary, PlannedDecision};
pub use preview::{Preview, PreviewRequest, SUPPORTED_YEARS, find_customer_facts, supported_date};
pub use report::{
    Group, Nps, Outcome, Periods, ReportInput, ReportParams, ReportRequest, ReportRow,
    compute as compute_report, report,
};
pub use surveys::{
    RitualNps, SurveysRequest, SurveysView, summarise as summarise_surveys, surveys,
};
pub use tick::{FactsBuilder, TickReport};
pub(crate) use tokens::hmac_sha1;
pub use tokens::{
    LinkKeys, LinkMode, Origin, SigningKeys, SurveyToken, TokenError, UnsubscribeToken,
    configured_secret,
};

/// Rituals, the templates they use, the segments and the calendars, validated together.
pub struct Definitions {
    pub rituals: Vec<Ritual>,
    pub templates: Templates,
    pub segments: Segments,
    pub calendars: BTreeMap<String, Calendar>,
}

impl Definitions {
    /// Loads the rituals and templates and cross-checks them: every ritual's template folder
    /// must hold what its channels need in the default locale. All problems are collected.
    pub fn load(cfg: &Config) -> Result<Definitions, Diagnostics> {
        let mut diags = Diagnostics::default();
        let rituals = match load_rituals(&cfg.rituals_dir) {
            Ok(r) => r,
            Err(d) => {
                diags.extend(d);
                Vec::new()
            }
        };
        let segments = match load_segments(&cfg.engine.segments_file) {
            Ok(s) => s,
            Err(d) => {
                diags.extend(d);
                Segments::default()
            }
        };
        let uses_holidays = rituals
            .iter()
            .any(|r| matches!(r.trigger, Trigger::Holiday { .. }));
        let calendars: BTreeMap<String, Calendar> = if cfg.calendars_dir.is_dir() || uses_holidays {
            match load_calendars(&cfg.calendars_dir) {
                Ok(cals) => cals,
                Err(d) => {
                    diags.extend(d);
                    BTreeMap::new()
                }
            }
        } else {
            BTreeMap::new()
        };
        cross_check(cfg, &rituals, &segments, &calendars, &mut diags);
        let vocabulary = message::vocabulary(cfg);
        let templates = match Templates::load(&cfg.templates_dir, &cfg.defaults.locale, &vocabulary)
        {
            Ok(t) => Some(t),
            Err(d) => {
                diags.extend(d);
                None
            }
        };
        if let Some(t) = &templates {
            for r in &rituals {
                for (channel, parts) in t.missing_for(&r.template, &r.channels) {
                    let files: Vec<&str> = parts.iter().map(|p| p.file_name()).collect();
                    diags.push(
                        Diagnostic::error(
                            &r.source,
                            r.template_line,
                            1,
                            format!(
                                "ritual `{}` sends {channel} but templates/{}/{}/ has no {}",
                                r.name,
                                r.template,
                                cfg.defaults.locale,
                                files.join(", ")
                            ),
                        )
                        .with_hint(format!(
                            "create {} under {}",
                            files.join(" and "),
                            cfg.templates_dir
                                .join(&r.template)
                                .join(cfg.defaults.locale.as_str())
                                .display()
                        )),
                    );
                }
            }
        }
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(Definitions {
            rituals,
            templates: templates.expect("no errors means templates loaded"),
            segments,
            calendars,
        })
    }

    /// The decision engine over these definitions.
    pub fn engine<'a>(&'a self, cfg: &'a Config) -> Engine<'a> {
        Engine {
            rituals: &self.rituals,
            segments: &self.segments,
            calendars: &self.calendars,
            config: &cfg.engine,
        }
    }
}

/// Names a ritual uses that must exist elsewhere: segments, holidays, the default calendar.
fn cross_check(
    cfg: &Config,
    rituals: &[Ritual],
    segments: &Segments,
    calendars: &BTreeMap<String, Calendar>,
    diags: &mut Diagnostics,
) {
    let segment_names: Vec<String> = segments.0.keys().cloned().collect();
    for r in rituals {
        if r.survey.is_some() && cfg.http.is_none() {
            diags.push(
                Diagnostic::error(
                    &r.source,
                    r.survey_line,
                    1,
                    format!(
                        "ritual `{}` is a survey, but survey links need `http.public_url`",
                        r.name
                    ),
                )
                .with_hint(format!(
                    "add an `http:` section (listen, public_url) to {}: score links point at <public_url>/s/<token>/<score>, served by `ritualist run`",
                    cfg.path.display()
                )),
            );
        }
        for (name, line) in r.audience.segments.iter().zip(&r.segment_lines) {
            if !segments.0.contains_key(name) {
                let mut d =
                    Diagnostic::error(&r.source, *line, 1, format!("unknown segment `{name}`"));
                d = match crate::config::did_you_mean(name, &segment_names) {
                    Some(best) => d.with_hint(format!(
                        "did you mean `{best}`? segments are defined in {}",
                        cfg.engine.segments_file.display()
                    )),
                    None if segment_names.is_empty() => d.with_hint(format!(
                        "define it in {}",
                        cfg.engine.segments_file.display()
                    )),
                    None => d.with_hint(format!("known segments: {}", segment_names.join(", "))),
                };
                diags.push(d);
            }
        }
        if let Trigger::Holiday { ids, .. } = &r.trigger {
            let known: BTreeSet<String> = calendars
                .values()
                .flat_map(|c| c.holidays.iter().map(|h| h.id.clone()))
                .collect();
            let known: Vec<String> = known.into_iter().collect();
            for id in ids {
                if !known.contains(id) {
                    let mut d = Diagnostic::error(
                        &r.source,
                        r.trigger_line,
                        1,
                        format!("no calendar has a holiday `{id}`"),
                    );
                    d = match crate::config::did_you_mean(id, &known) {
                        Some(best) => d.with_hint(format!("did you mean `{best}`? `ritualist calendar <id>` lists each calendar's holidays")),
                        None => d.with_hint(format!("holidays are defined in {}; `ritualist calendar <id>` lists them", cfg.calendars_dir.display())),
                    };
                    diags.push(d);
                }
            }
        }
    }
    if !calendars.is_empty() && !calendars.contains_key(&cfg.engine.default_calendar) {
        diags.push(
            Diagnostic::error(
                &cfg.path,
                0,
                0,
                format!(
                    "engine.default_calendar `{}` is not a calendar",
                    cfg.engine.default_calendar
                ),
            )
            .with_hint(format!(
                "one of: {}",
                calendars.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        );
    }
}

/// Everything a running ritualist needs, built once.
pub struct App {
    pub cfg: Config,
    /// The current rituals and templates; swapped whole by [`App::reload`].
    defs: RwLock<Arc<Definitions>>,
    pub store: Store,
    pub channels: Channels,
    /// Signs every email that will be sent (`delivery.dkim`).
    pub dkim: Option<Arc<DkimSigner>>,
    /// Key deriving Message-IDs and link tokens.
    pub key: Vec<u8>,
    /// `key` for signing links, plus the previous key (`http.previous_secret_env`) for
    /// verifying links sent before a rotation.
    pub link_keys: LinkKeys,
    /// Set when the daemon is asked to stop: dispatch claims nothing more and gives in-flight
    /// work `delivery.shutdown_timeout_secs` to finish.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The keys of forgotten customers' hashed stubs (`ritualist forget`).
    pub stub_keys: StubKeys,
    /// What this process measures for `/metrics` (send latency, start time).
    pub metrics: Metrics,
    /// Where the use cases and the HTTP handlers read the time: the system clock, or the
    /// test's [`ManualClock`](crate::clock::ManualClock) ([`App::open_with_clock`]).
    pub clock: SharedClock,
    /// The deliverability alerts raised at the last check (each crossing is logged once).
    deliverability_log: deliverability::AlertLog,
    /// What composing the outbox's messages needs, shared with the threads that compose.
    kit: Arc<render_queue::ComposeKit>,
}

/// The store's `rate_limits` as the channels' [`RateBook`](crate::channel::RateBook): the
/// daemons on one PostgreSQL database count and pace each provider together.
#[derive(Debug)]
struct SharedLimits(Store);

impl crate::channel::RateBook for SharedLimits {
    fn take<'a>(&'a self, t: crate::channel::Take<'a>) -> crate::channel::Taken<'a> {
        Box::pin(async move {
            let slot = self
                .0
                .take_rate_slot(t.key, t.day, t.seed, t.per_day, t.interval);
            match slot.await {
                Ok(crate::store::RateSlot::Wait(wait)) => Ok(Some(wait)),
                Ok(crate::store::RateSlot::Spent) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Channels with a provider that has a `rate.per_day`.
fn daily_limited_channels(cfg: &Config) -> Vec<crate::domain::Channel> {
    use crate::config::{EmailTransport, SmsTransport};
    let mut v = Vec::new();
    if let EmailTransport::Smtp(s) = &cfg.delivery.email
        && s.rate.per_day.is_some()
    {
        v.push(crate::domain::Channel::Email);
    }
    if let SmsTransport::Providers(list) = &cfg.delivery.sms
        && list.iter().any(|p| p.rate().per_day.is_some())
    {
        v.push(crate::domain::Channel::Sms);
    }
    v
}

/// The DKIM signer of `delivery.dkim`; a key that does not parse is a configuration error
/// naming the file (or variable) it came from.
pub fn dkim_signer(cfg: &Config) -> Result<Option<DkimSigner>, Diagnostics> {
    let Some(settings) = &cfg.delivery.dkim else {
        return Ok(None);
    };
    DkimSigner::new(settings)
        .map(Some)
        .map_err(|e| Diagnostics(vec![Diagnostic::error(&cfg.path, 0, 0, e)]))
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Channel(#[from] crate::channel::SendFailure),
    #[error("{0}")]
    Other(String),
}

impl App {
    /// Validates the definitions, opens (creating and migrating) the store, imports the sample
    /// data into an empty database when the config names it, and builds the transports.
    pub async fn open(cfg: Config) -> Result<App, AppError> {
        App::open_with_clock(cfg, SystemClock::shared()).await
    }

    /// [`App::open`] with the time read from `clock` (tests give a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub async fn open_with_clock(cfg: Config, clock: SharedClock) -> Result<App, AppError> {
        let defs = Definitions::load(&cfg)?;
        let dkim = dkim_signer(&cfg)?.map(Arc::new);
        let store = Store::open_with_clock(&cfg.database_url, &*clock).await?;
        if let Some(sample) = &cfg.sample_data
            && store.customer_count().await? == 0
        {
            let report = import_file(
                &store,
                &cfg,
                ImportKind::Customers,
                sample,
                None,
                None,
                clock.now().as_second(),
                &mut |_| {},
            )
            .await?;
            tracing::info!(
                inserted = report.stats.inserted,
                rejected = report.errors.len(),
                "empty database: imported the sample customers from {}",
                sample.display()
            );
        }
        let channels = Channels::from_config(&cfg, clock.clone())?;
        // Daily limits count what earlier runs sent today (UTC).
        let midnight = clock.now().as_second().div_euclid(86_400) * 86_400;
        for channel in daily_limited_channels(&cfg) {
            let sent = store.sent_since(channel, midnight).await?;
            channels.seed_today(channel.as_str(), sent.max(0) as u64);
        }
        // Several daemons may share a PostgreSQL database: a provider's limits hold in total.
        if store.is_postgres() {
            channels.share_limits(Arc::new(SharedLimits(store.clone())));
        }
        let keys = SigningKeys::load(&cfg, &store).await?;
        let (link_keys, stub_keys) = (keys.link_keys(), keys.stub_keys());
        sms_receipts(&cfg, &channels, &link_keys);
        let key = keys.current;
        let kit = Arc::new(render_queue::ComposeKit::new(
            &cfg,
            &key,
            dkim.clone(),
            &link_keys,
        ));
        Ok(App {
            cfg,
            defs: RwLock::new(Arc::new(defs)),
            store,
            channels,
            dkim,
            key,
            link_keys,
            stopping: tokio::sync::watch::Sender::new(false),
            stub_keys,
            metrics: Metrics::new(clock.now().as_second()),
            clock,
            deliverability_log: Default::default(),
            kit,
        })
    }

    /// The `/metrics` exposition: the ledger's counts and this process's measurements.
    pub async fn metrics_text(&self) -> Result<String, AppError> {
        let ledger = self.store.ledger_counts().await?;
        Ok(self.metrics.render(&ledger))
    }

    /// The rituals and templates in force now.
    pub fn defs(&self) -> Arc<Definitions> {
        self.defs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads rituals and templates. The new set replaces the old one only when it is
    /// entirely valid; otherwise the old set stays in force and the problems are returned.
    pub fn reload(&self) -> Result<usize, Diagnostics> {
        let defs = Definitions::load(&self.cfg)?;
        let n = defs.rituals.len();
        *self.defs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(defs);
        Ok(n)
    }
}

/// A cheap fingerprint of every file under the rituals and templates folders (path, size,
/// modification time): when it changes, the daemon reloads.
pub fn definitions_fingerprint(cfg: &Config) -> u64 {
    use std::hash::{Hash, Hasher};
    fn walk(dir: &Path, h: &mut std::collections::hash_map::DefaultHasher) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            p.hash(h);
            if let Ok(m) = e.metadata() {
                m.len().hash(h);
                if let Ok(t) = m.modified()
                    && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
                {
                    d.as_nanos().hash(h);
                }
                if m.is_dir() {
                    walk(&p, h);
                }
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    walk(&cfg.rituals_dir, &mut h);
    walk(&cfg.templates_dir, &mut h);
    walk(&cfg.calendars_dir, &mut h);
    if let Ok(m) = std::fs::metadata(&cfg.engine.segments_file) {
        m.len().hash(&mut h);
        if let Ok(t) = m.modified() {
            t.hash(&mut h);
        }
    }
    h.finish()
}

/// With a public server (`http:`), SMS gateways are asked to send their delivery receipts to
/// it, each URL naming its delivery by a signed token ([`App::delivery_of_token`]).
fn sms_receipts(cfg: &Config, channels: &Channels, link_keys: &LinkKeys) {
    if let Some(http) = &cfg.http {
        let keys = link_keys.clone();
        channels.set_sms_receipts(crate::channel::ReceiptUrls::new(
            &http.public_url,
            move |id| keys.delivery_token(id),
        ));
    }
}
