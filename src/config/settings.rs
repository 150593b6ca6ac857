use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::delivery::{DeliveryConfig, DeliverySpec, EmailTransport, delivery_config};
use super::diagnostic::{Diagnostic, Diagnostics, parse_yaml};
use super::env::Environment;
use super::paths::normalize;
use super::secret::Secret;
use super::sms::{SmsProvider, SmsTransport};
use crate::domain::{Locale, parse_zone};

// ---------------------------------------------------------------------------------------------
// Spec: mirrors the YAML file.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSpec {
    /// `path/to/file.db`, `sqlite:path`, or `postgres://user@host/db`.
    database: Option<String>,
    /// SQLite only: `full` (the default: every commit is on disk before it returns, so it
    /// survives a power cut) or `normal` (WAL commits reach the OS at once and the disk at the
    /// next checkpoint: a killed process loses nothing, a power cut may lose the last commits).
    sqlite_synchronous: Option<Spanned<String>>,
    defaults: Option<DefaultsSpec>,
    shop: ShopSpec,
    /// A CSV of customers imported on first use of an empty database (the demo data). Refused
    /// unless every transport is `outbox` or `discard`: demo customers never reach a real one.
    sample_data: Option<Spanned<String>>,
    rituals: Option<String>,
    /// Folder of holiday calendars (`<id>.yaml`).
    calendars: Option<String>,
    templates: Option<String>,
    links: Option<LinksSpec>,
    delivery: Option<DeliverySpec>,
    /// Environment variable holding the key that derives Message-IDs and link tokens.
    secret_env: Option<String>,
    /// Rules across rituals: caps, quiet hours, catch-up, segments.
    engine: Option<super::engine::EngineSpec>,
    /// The daemon's public HTTP server.
    http: Option<super::http::HttpSpec>,
    /// Bounces, complaints and receipts that arrive later.
    bounces: Option<super::bounces::BouncesSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsSpec {
    time_zone: Option<Spanned<String>>,
    locale: Option<Spanned<String>>,
    /// Digits of the country calling code used for phone numbers written without one.
    country_code: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopSpec {
    name: String,
    url: Option<String>,
    from_email: Spanned<String>,
    from_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinksSpec {
    unsubscribe: Option<String>,
    preferences: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub time_zone: String,
    pub locale: Locale,
    pub country_code: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Shop {
    pub name: String,
    pub url: Option<String>,
    pub from_email: String,
    pub from_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Links {
    pub unsubscribe: String,
    pub preferences: Option<String>,
}

/// The validated configuration. Built once, passed by reference; never a global.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub database_url: String,
    pub defaults: Defaults,
    pub shop: Shop,
    pub sample_data: Option<PathBuf>,
    pub rituals_dir: PathBuf,
    pub calendars_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub links: Links,
    pub delivery: DeliveryConfig,
    /// Key for Message-IDs (and, later, link tokens). `None`: the store's generated instance key is used.
    pub secret: Option<Secret>,
    pub engine: super::engine::EngineConfig,
    /// The daemon's public HTTP server; `None`: `run` serves nothing.
    pub http: Option<super::http::HttpConfig>,
    /// What to do with bounces, complaints and receipts (`bounces:`).
    pub bounces: super::bounces::BouncesConfig,
}

impl Config {
    /// Reads and validates the configuration file. `RITUALIST_DATABASE_URL` overrides
    /// `database`: the process environment is read here, at the edge ([`Environment`]).
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        Config::load_in(path, &Environment::from_process())
    }

    /// [`Config::load`] with the environment given.
    pub fn load_in(path: &Path, env: &Environment) -> Result<Config, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic::error(path, 0, 0, format!("cannot read the configuration: {e}")).with_hint(
                "pass the file with --config, or run from the project folder that holds config/ritualist.yaml",
            )])
        })?;
        Config::parse(path, &text, env)
    }

    /// Validates a configuration's text as if no environment variable overrode it.
    pub fn from_str(path: &Path, text: &str) -> Result<Config, Diagnostics> {
        Config::parse(path, text, &Environment::default())
    }

    /// Validates a configuration's text (`path` names it in errors and anchors its relative
    /// paths); `env` holds what the environment overrides.
    pub fn parse(path: &Path, text: &str, env: &Environment) -> Result<Config, Diagnostics> {
        let spec: ConfigSpec = parse_yaml(path, text).map_err(|d| Diagnostics(vec![d]))?;
        let rel = |p: &str| relative_to(path, p);
        let mut diags = Diagnostics::default();
        let database_url = database_url(path, &spec, env, &mut diags);
        let defaults = defaults(path, spec.defaults.as_ref(), &mut diags);
        let from_email = spec.shop.from_email.value.clone();
        if crate::domain::Email::parse(&from_email).is_err() {
            diags.push(
                Diagnostic::at(
                    path,
                    &spec.shop.from_email.referenced,
                    format!("invalid shop.from_email `{from_email}`"),
                )
                .with_hint("the address customers see as the sender, e.g. hello@yourshop.com"),
            );
        }
        let links = Links {
            unsubscribe: spec
                .links
                .as_ref()
                .and_then(|l| l.unsubscribe.clone())
                .unwrap_or_else(|| format!("mailto:{from_email}?subject=unsubscribe")),
            preferences: spec.links.as_ref().and_then(|l| l.preferences.clone()),
        };
        let delivery = delivery_config(path, spec.delivery.as_ref(), rel, &mut diags);
        if let Some(sample) = &spec.sample_data {
            demo_only(path, sample, &delivery, &mut diags);
        }
        let secret_var = spec
            .secret_env
            .clone()
            .unwrap_or_else(|| "RITUALIST_SECRET".into());
        let secret = Secret::from_env(&secret_var);
        let engine = super::engine::compile(path, spec.engine.as_ref(), rel, &mut diags);
        let http = super::http::http_config(path, spec.http.as_ref(), &spec.shop.name, &mut diags);
        let bounces = super::bounces::compile(path, spec.bounces.as_ref(), &mut diags);

        if diags.has_errors() {
            return Err(diags);
        }
        Ok(Config {
            path: path.to_path_buf(),
            database_url,
            defaults,
            shop: Shop {
                name: spec.shop.name,
                url: spec.shop.url,
                from_email,
                from_name: spec.shop.from_name,
            },
            sample_data: spec.sample_data.as_ref().map(|s| rel(&s.value)),
            rituals_dir: rel(spec.rituals.as_deref().unwrap_or("rituals")),
            calendars_dir: rel(spec.calendars.as_deref().unwrap_or("calendars")),
            templates_dir: rel(spec.templates.as_deref().unwrap_or("../templates")),
            links,
            delivery,
            secret,
            engine,
            http,
            bounces,
        })
    }
}

/// `p` as written in the configuration at `path`: absolute as is, else from the file's folder
/// (`.` when the file has none).
fn relative_to(path: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        return p;
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    normalize(&base.join(p))
}

/// The database URL: the environment's wins (its relative SQLite path is taken from the
/// working directory), else `database` (relative to the config folder), else the default.
fn database_url(
    path: &Path,
    spec: &ConfigSpec,
    env: &Environment,
    diags: &mut Diagnostics,
) -> String {
    let from_env = env.database_url.clone().filter(|s| !s.is_empty());
    let database = from_env
        .clone()
        .or(spec.database.clone())
        .unwrap_or_else(|| "../data/ritualist.db".into());
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return database;
    }
    let file = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
        .unwrap_or(&database);
    let file = file.split('?').next().unwrap_or(file);
    let p = if from_env.is_some() {
        PathBuf::from(file)
    } else {
        relative_to(path, file)
    };
    let normal = match spec.sqlite_synchronous.as_ref() {
        None => false,
        Some(v) if v.value == "full" => false,
        Some(v) if v.value == "normal" => true,
        Some(v) => {
            diags.push(
                Diagnostic::at(
                    path,
                    &v.referenced,
                    format!("unknown sqlite_synchronous `{}`", v.value),
                )
                .with_hint(
                    "use `full` (survives a power cut) or `normal` (survives a crash; faster)",
                ),
            );
            false
        }
    };
    format!(
        "sqlite://{}?mode=rwc{}",
        p.display(),
        if normal { "&synchronous=normal" } else { "" }
    )
}

/// `defaults:`: the time zone (IANA), the locale and the calling code of bare phone numbers.
fn defaults(path: &Path, d: Option<&DefaultsSpec>, diags: &mut Diagnostics) -> Defaults {
    let time_zone = match d.and_then(|d| d.time_zone.as_ref()) {
        Some(z) => {
            if let Err(e) = parse_zone(&z.value) {
                diags.push(Diagnostic::at(path, &z.referenced, e.to_string()).with_hint(
                    "use a name from the IANA tz database, e.g. Europe/Bucharest, Europe/Moscow, America/New_York",
                ));
            }
            z.value.clone()
        }
        None => "UTC".to_string(),
    };
    let locale = match d.and_then(|d| d.locale.as_ref()) {
        Some(l) => match Locale::parse(&l.value) {
            Ok(l) => l,
            Err(e) => {
                diags.push(Diagnostic::at(path, &l.referenced, e.to_string()));
                Locale::parse("en").expect("en is a locale")
            }
        },
        None => Locale::parse("en").expect("en is a locale"),
    };
    let country_code = d.and_then(|d| d.country_code.as_ref()).map(|c| {
        let v = c.value.trim().trim_start_matches('+').to_string();
        if v.is_empty() || v.len() > 3 || !v.chars().all(|ch| ch.is_ascii_digit()) {
            diags.push(
                Diagnostic::at(path, &c.referenced, format!("invalid country code `{}`", c.value))
                    .with_hint("write the calling code's digits as a quoted string, e.g. \"40\" for Romania, \"7\" for Russia"),
            );
        }
        v
    });
    Defaults {
        time_zone,
        locale,
        country_code,
    }
}

/// Demo data and a real transport never meet: `sample_data` is refused (with the key's line)
/// when email or SMS is delivered through anything but the local outbox or `discard`, so
/// the demo customers' addresses and numbers cannot receive a message by accident.
fn demo_only(path: &Path, sample: &Spanned<String>, d: &DeliveryConfig, diags: &mut Diagnostics) {
    let mut real = Vec::new();
    if matches!(d.email, EmailTransport::Smtp(_)) {
        real.push("email goes through `smtp`".to_string());
    }
    if let SmsTransport::Providers(list) = &d.sms {
        let names: Vec<&str> = list
            .iter()
            .map(|p| match p {
                SmsProvider::Twilio(_) => "twilio",
                SmsProvider::Http(_) => "http",
                SmsProvider::Kannel(_) => "kannel",
            })
            .collect();
        real.push(format!("SMS goes through `{}`", names.join("`, `")));
    }
    if real.is_empty() {
        return;
    }
    diags.push(
        Diagnostic::at(
            path,
            &sample.referenced,
            format!(
                "`sample_data` imports demo customers, but {}: demo customers must never reach a real transport",
                real.join(" and ")
            ),
        )
        .with_hint(
            "remove the `sample_data:` line (import real customers with `ritualist import customers FILE`), \
             or keep the demo on `transport: outbox` / `discard`",
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HandoverBatch;
    use crate::domain::Channel;

    const GOOD: &str = "shop:\n  name: Test\n  from_email: hello@example.com\ndefaults:\n  time_zone: Europe/Bucharest\n  locale: ro\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_str(Path::new("/etc/r/ritualist.yaml"), GOOD).unwrap();
        assert_eq!(c.defaults.time_zone, "Europe/Bucharest");
        assert_eq!(c.rituals_dir, PathBuf::from("/etc/r/rituals"));
        assert!(matches!(c.delivery.email, EmailTransport::Outbox));
        // docs/operator.md's configuration block and benches/delivery.rs state this default.
        assert_eq!(c.delivery.batch_size, 1000);
    }

    #[test]
    fn sample_data_is_refused_with_a_real_transport() {
        // The demo on the local outbox (or discard) is fine.
        for ok in [
            format!("{GOOD}sample_data: ../samples/customers.csv\n"),
            format!(
                "{GOOD}sample_data: ../samples/customers.csv\ndelivery:\n  email:\n    transport: discard\n  sms:\n    transport: discard\n"
            ),
        ] {
            let c = Config::from_str(Path::new("/etc/r/ritualist.yaml"), &ok).unwrap();
            assert_eq!(
                c.sample_data,
                Some(PathBuf::from("/etc/samples/customers.csv"))
            );
        }
        // Any real transport on either channel refuses it, at the key's line, naming the transport.
        let smtp = format!(
            "{GOOD}sample_data: ../samples/customers.csv\ndelivery:\n  email:\n    transport: smtp\n    smtp:\n      host: relay.example.com\n"
        );
        let kannel = format!(
            "{GOOD}sample_data: ../samples/customers.csv\ndelivery:\n  sms:\n    transport: kannel\n    kannel:\n      url: http://127.0.0.1:1/\n      username: u\n      password_env: PATH\n"
        );
        for (yaml, says) in [
            (smtp, "email goes through `smtp`"),
            (kannel, "SMS goes through `kannel`"),
        ] {
            let d = Config::from_str(Path::new("/etc/r/ritualist.yaml"), &yaml).unwrap_err();
            let text = d.to_string();
            assert!(
                text.contains(":7:") && text.contains("sample_data") && text.contains(says),
                "{text}"
            );
            assert!(text.contains("remove the `sample_data:` line"), "{text}");
        }
    }

    #[test]
    fn bad_zone_is_reported_with_its_line() {
        let text = GOOD.replace("Europe/Bucharest", "Europe/Bucharets");
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        let e = &d.0[0];
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("Europe/Bucharets"), "{e}");
    }

    #[test]
    fn password_in_yaml_is_refused() {
        let text = format!(
            "{GOOD}delivery:\n  email:\n    transport: smtp\n    smtp:\n      host: x\n      password: hunter2\n"
        );
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        assert!(d.to_string().contains("environment"), "{d}");
    }

    /// #29: TLS trust mistakes are config errors naming the key, before anything connects.
    #[test]
    fn tls_trust_mistakes_are_config_errors_naming_the_key() {
        let smtp = |extra: &str| {
            format!(
                "{GOOD}delivery:\n  email:\n    transport: smtp\n    smtp:\n      host: relay.example.com\n{extra}"
            )
        };
        for (extra, says) in [
            (
                "      ca_only: true\n",
                "email.smtp.ca_only: true needs `ca_file`",
            ),
            (
                "      ca_file: /nonexistent/ca.pem\n",
                "email.smtp.ca_file: cannot read `/nonexistent/ca.pem`",
            ),
            (
                "      client_cert: /etc/passwd\n",
                "email.smtp: `client_cert` and `client_key` go together",
            ),
        ] {
            let d = Config::from_str(Path::new("/etc/r/ritualist.yaml"), &smtp(extra)).unwrap_err();
            assert!(d.to_string().contains(says), "{extra}: {d}");
        }
        let ok = Config::from_str(
            Path::new("/etc/r/ritualist.yaml"),
            &smtp("      ca_file: /etc/passwd\n"),
        )
        .unwrap();
        let EmailTransport::Smtp(s) = &ok.delivery.email else {
            panic!("smtp")
        };
        assert_eq!(s.tls.ca_file.as_deref(), Some(Path::new("/etc/passwd")));
    }

    #[test]
    fn a_missing_gateway_password_is_a_config_error_not_a_failed_send() {
        let text = format!(
            "{GOOD}delivery:\n  sms:\n    transport: kannel\n    kannel:\n      url: http://127.0.0.1:1/\n      username: u\n      password_env: RITUALIST_TEST_NEVER_SET_4471\n"
        );
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        assert!(
            d.to_string()
                .contains("`RITUALIST_TEST_NEVER_SET_4471` is empty"),
            "{d}"
        );
        let text = format!(
            "{GOOD}delivery:\n  email:\n    transport: smtp\n    smtp:\n      host: x\n      username: u\n      password_file: /nonexistent/pw\n"
        );
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        assert!(
            d.to_string()
                .contains("cannot read the SMTP password from password_file `/nonexistent/pw`"),
            "{d}"
        );
    }

    #[test]
    fn dkim_needs_a_readable_key_and_a_known_algorithm() {
        let dkim = "delivery:\n  dkim:\n    domain: floare.example\n    selector: rit2027\n";
        let d = Config::from_str(
            Path::new("/etc/r/c.yaml"),
            &format!("{GOOD}{dkim}    key_file: keys/nope.pem\n"),
        )
        .unwrap_err();
        assert!(
            d.to_string()
                .contains("cannot read the DKIM private key from key_file `/etc/r/keys/nope.pem`"),
            "{d}"
        );
        let d = Config::from_str(
            Path::new("c.yaml"),
            &format!(
                "{GOOD}{dkim}    algorithm: dsa\n    key_env: RITUALIST_TEST_NEVER_SET_4472\n"
            ),
        )
        .unwrap_err();
        let s = d.to_string();
        assert!(s.contains("unknown dkim algorithm `dsa`"), "{s}");
        assert!(
            s.contains("`RITUALIST_TEST_NEVER_SET_4472` is empty"),
            "{s}"
        );
        let d = Config::from_str(
            Path::new("c.yaml"),
            &format!("{GOOD}{dkim}    private_key: abc\n"),
        )
        .unwrap_err();
        assert!(d.to_string().contains("secrets never go in YAML"), "{d}");
    }

    #[test]
    fn handover_batch_defaults_to_one_and_rejects_out_of_range_with_its_line() {
        let c = Config::from_str(Path::new("c.yaml"), GOOD).unwrap();
        assert_eq!(c.delivery.handover_batch, HandoverBatch::ONE_BY_ONE);
        let text = format!("{GOOD}delivery:\n  handover_batch: 50\n");
        let c = Config::from_str(Path::new("c.yaml"), &text).unwrap();
        assert_eq!(
            c.delivery.handover_batch,
            HandoverBatch { email: 50, sms: 50 }
        );
        let text = format!("{GOOD}delivery:\n  handover_batch:\n    email: 200\n");
        let c = Config::from_str(Path::new("c.yaml"), &text).unwrap();
        assert_eq!(
            c.delivery.handover_batch,
            HandoverBatch { email: 200, sms: 1 }
        );
        assert_eq!(
            (
                c.delivery.handover_batch.of(Channel::Email),
                c.delivery.handover_batch.of(Channel::Sms)
            ),
            (200, 1)
        );
        for bad in ["0", "-5", "5000", "{ email: 10, sms: 0 }"] {
            let text = format!("{GOOD}delivery:\n  batch_size: 50\n  handover_batch: {bad}\n");
            let line = text.lines().count();
            let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
            let shown = d.to_string();
            assert!(
                shown.contains(&format!("c.yaml:{line}"))
                    && shown.contains("handover_batch must be between 1 and 1000")
                    && shown.contains("in doubt"),
                "{shown}"
            );
        }
    }

    #[test]
    fn the_environment_database_wins_and_is_passed_in() {
        let c = Config::from_str(Path::new("/etc/r/ritualist.yaml"), GOOD).unwrap();
        assert_eq!(c.database_url, "sqlite:///etc/data/ritualist.db?mode=rwc");
        let env = Environment {
            database_url: Some("sqlite:here.db".into()),
        };
        let c = Config::parse(Path::new("/etc/r/ritualist.yaml"), GOOD, &env).unwrap();
        assert_eq!(c.database_url, "sqlite://here.db?mode=rwc");
    }

    #[test]
    fn secret_prints_as_stars() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }
}
