//! Schema migrations for ritualist, written with sea-query builders so the same file
//! serves SQLite (the embedded default) and PostgreSQL. Never edit a released migration:
//! add a new one.

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
        ]
    }
}
