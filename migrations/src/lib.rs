//! Schema migrations for ritualist, written with sea-query builders so the same file
//! serves SQLite (the embedded default) and PostgreSQL. Never edit a released migration:
//! add a new one.
//!
//! Every migration is all or nothing, on SQLite as on PostgreSQL: it answers
//! `use_transaction() -> Some(true)`, so its statements and its row in `seaql_migrations`
//! commit together (sea-orm-migration wraps only PostgreSQL by default; on SQLite each
//! statement would commit on its own, and a process killed between two of them would leave a
//! schema no later start could migrate). The store's runner (`src/store/migrate.rs`) applies them
//! the same way. A migration must not set connection-local pragmas (`PRAGMA foreign_keys`
//! is a no-op inside a transaction on SQLite): the store sets them on each connection when
//! it opens it. The test below fails when a migration is added without the opt-in.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_engine;
mod m20261123_000004_consent;
mod m20261123_000005_probe_indexes;
mod m20261123_000006_surveys;
mod m20261123_000007_forget;
mod m20261123_000008_channel_pauses;
mod m20261201_000009_delivery_messages;
mod m20261203_000010_rate_limits;
mod m20261206_000011_customer_email_index;
mod m20261206_000012_feedback;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_engine::Migration),
            Box::new(m20261123_000004_consent::Migration),
            Box::new(m20261123_000005_probe_indexes::Migration),
            Box::new(m20261123_000006_surveys::Migration),
            Box::new(m20261123_000007_forget::Migration),
            Box::new(m20261123_000008_channel_pauses::Migration),
            Box::new(m20261201_000009_delivery_messages::Migration),
            Box::new(m20261203_000010_rate_limits::Migration),
            Box::new(m20261206_000011_customer_email_index::Migration),
            Box::new(m20261206_000012_feedback::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new migration that forgets `use_transaction() -> Some(true)` would run statement by
    /// statement on SQLite: killed halfway, the database could no longer be migrated.
    #[test]
    fn every_migration_runs_in_one_transaction() {
        let loose: Vec<String> = Migrator::migrations()
            .iter()
            .filter(|m| m.use_transaction() != Some(true))
            .map(|m| m.name().to_string())
            .collect();
        assert!(
            loose.is_empty(),
            "these migrations do not run in a transaction on SQLite (add `fn use_transaction(&self) -> Option<bool> {{ Some(true) }}`): {loose:?}"
        );
        assert!(!Migrator::migrations().is_empty());
    }
}
