//! What the process environment overrides in the configuration, read once at the edge (the CLI
//! and the daemon, through [`super::Config::load`]) and passed in, so that validating a file
//! reads no global state.

/// The environment's overrides of `ritualist.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `RITUALIST_DATABASE_URL` (empty counts as unset): wins over `database`.
    pub database_url: Option<String>,
}

impl Environment {
    /// Reads the overrides from the process environment.
    pub fn from_process() -> Environment {
        Environment {
            database_url: std::env::var("RITUALIST_DATABASE_URL")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}
