//! Use cases: what the CLI (and the tests) ask the product to do — tick, dispatch, preview,
//! check, import. This is where the pure parts (ritual, plan, render) meet the effectful ones
//! (store, channel); it holds no foreign crate of its own.

mod check;
mod dispatch;
mod import;
mod message;
mod preview;
mod tick;

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::channel::Channels;
use crate::config::{Config, Diagnostic, Diagnostics};
use crate::render::Templates;
use crate::ritual::{Ritual, load_rituals};
use crate::store::Store;

pub use check::check;
pub use dispatch::{DispatchReport, retry_delay_secs};
pub use import::{ImportKind, ImportReport, import_file};
pub use message::{
    Composed, compose, message_context, message_id, sample_customers, unsubscribe_link,
};
pub use preview::{Preview, PreviewRequest};
pub use tick::{TickReport, facts_from_row};

/// Rituals and the templates they use, validated together.
pub struct Definitions {
    pub rituals: Vec<Ritual>,
    pub templates: Templates,
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
        })
    }
}

/// Everything a running ritualist needs, built once.
pub struct App {
    pub cfg: Config,
    /// The current rituals and templates; swapped whole by [`App::reload`].
    defs: RwLock<Arc<Definitions>>,
    pub store: Store,
    pub channels: Channels,
    /// Key deriving Message-IDs and link tokens.
    pub key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Channel(#[from] crate::channel::SendError),
    #[error("{0}")]
    Other(String),
}

impl App {
    /// Validates the definitions, opens (creating and migrating) the store, imports the sample
    /// data into an empty database when the config names it, and builds the transports.
    pub async fn open(cfg: Config) -> Result<App, AppError> {
        let defs = Definitions::load(&cfg)?;
        let store = Store::open(&cfg.database_url).await?;
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
                false,
            )
            .await?;
            tracing::info!(
                inserted = report.stats.inserted,
                rejected = report.errors.len(),
                "empty database: imported the sample customers from {}",
                sample.display()
            );
        }
        let channels = Channels::from_config(&cfg)?;
        let key = match &cfg.secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => store.instance_key().await?.into_bytes(),
        };
        Ok(App {
            cfg,
            defs: RwLock::new(Arc::new(defs)),
            store,
            channels,
            key,
        })
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
    h.finish()
}
