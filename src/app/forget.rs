//! `ritualist forget <customer>`: erase a customer's personal data, keep the anonymous ledger,
//! and remember the person only as hashed stubs so a re-import never messages them again.
//!
//! A stub is HMAC-SHA-256(instance key, `ritualist-forget/v1/<kind>:<value>`) in hex, for
//! each identifier the customer had: `email` (the whole address lower-cased), `phone` (E.164)
//! and `external_id`. Without the key a stub says nothing; with it, only whether a given
//! address was forgotten. Every customer import (CSV or API) computes the same hashes for its
//! records (with the current key and the previous one, `http.previous_secret_env`) and opts
//! a match out of everything.

use crate::config::Config;
use crate::domain::{Email, Phone};
use crate::import::CustomerRecord;
use crate::store::{Erasure, Store};

use super::{App, AppError};

/// The keys stubs are made with (first) and matched against (all).
#[derive(Clone)]
pub struct StubKeys(Vec<Vec<u8>>);

impl std::fmt::Debug for StubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StubKeys({} key(s))", self.0.len())
    }
}

impl StubKeys {
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> StubKeys {
        let mut keys = vec![current.to_vec()];
        keys.extend(previous.map(<[u8]>::to_vec));
        StubKeys(keys)
    }

    /// The keys of a config and store (what [`App::open`] derives), for imports run without
    /// an `App`.
    pub async fn load(cfg: &Config, store: &Store) -> Result<StubKeys, AppError> {
        Ok(super::SigningKeys::load(cfg, store).await?.stub_keys())
    }

    fn hash(key: &[u8], kind: &str, value: &str) -> String {
        super::tokens::hmac_sha256_hex(key, &format!("ritualist-forget/v1/{kind}:{value}"))
    }

    /// (kind, normalised value) of each identifier given.
    fn identifiers<'a>(
        external_id: &'a str,
        email: Option<&'a str>,
        phone: Option<&'a str>,
    ) -> Vec<(&'static str, String)> {
        let mut ids = vec![("external_id", external_id.to_string())];
        if let Some(e) = email {
            ids.push(("email", e.to_lowercase()));
        }
        if let Some(p) = phone {
            ids.push(("phone", p.to_string()));
        }
        ids
    }

    /// The stubs to store for a customer being forgotten (current key only).
    pub fn stubs(
        &self,
        external_id: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Vec<String> {
        Self::identifiers(external_id, email, phone)
            .into_iter()
            .map(|(k, v)| Self::hash(&self.0[0], k, &v))
            .collect()
    }

    /// The hashes an incoming record is matched with (every key).
    pub fn matches_for(&self, c: &CustomerRecord) -> Vec<String> {
        let ids = Self::identifiers(
            &c.external_id,
            c.email.as_ref().map(Email::as_str),
            c.phone.as_ref().map(Phone::as_str),
        );
        self.0
            .iter()
            .flat_map(|key| ids.iter().map(|(k, v)| Self::hash(key, k, v)))
            .collect()
    }
}

/// What `forget` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForgetReport {
    /// The identifier as given on the command line.
    pub customer: String,
    #[serde(flatten)]
    pub erasure: Erasure,
}

impl App {
    /// Erases the customer found by external id, email or phone. `None` when nobody matches.
    pub async fn forget(&self, who: &str, now: i64) -> Result<Option<ForgetReport>, AppError> {
        let Some(row) = self.find_customer_loose(who).await? else {
            return Ok(None);
        };
        let stubs =
            self.stub_keys
                .stubs(&row.external_id, row.email.as_deref(), row.phone.as_deref());
        let erasure = self.store.forget_customer(row.id, &stubs, now).await?;
        Ok(erasure.map(|erasure| ForgetReport {
            customer: who.to_string(),
            erasure,
        }))
    }

    /// A customer by external id, email or phone as stored, or as normalised by the import
    /// (an email with its domain lower-cased, a national phone number in E.164).
    async fn find_customer_loose(
        &self,
        who: &str,
    ) -> Result<Option<crate::store::CustomerRow>, AppError> {
        if let Some(row) = self.store.find_customer(who.trim()).await? {
            return Ok(Some(row));
        }
        if let Ok(e) = Email::parse(who)
            && let Some(row) = self.store.find_customer(e.as_str()).await?
        {
            return Ok(Some(row));
        }
        if let Ok(p) = Phone::parse(who, self.cfg.defaults.country_code.as_deref())
            && let Some(row) = self.store.find_customer(p.as_str()).await?
        {
            return Ok(Some(row));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_are_keyed_and_normalised() {
        let a = StubKeys::new(b"key-a", None);
        let b = StubKeys::new(b"key-b", Some(b"key-a"));
        let s = a.stubs("c1", Some("Ana@example.com"), Some("+40721000001"));
        assert_eq!(s.len(), 3);
        assert_eq!(s[1], a.stubs("c1", Some("ana@example.com"), None)[1]);
        assert_ne!(
            s,
            b.stubs("c1", Some("Ana@example.com"), Some("+40721000001"))
        );
        let rec = CustomerRecord {
            external_id: "other".into(),
            first_name: None,
            last_name: None,
            email: Some(Email::parse("ANA@EXAMPLE.COM").unwrap()),
            phone: None,
            locale: crate::domain::Locale::parse("en").unwrap(),
            time_zone: "UTC".into(),
            birthday: None,
            signup_date: None,
            preferred_channel: None,
            custom_dates: Default::default(),
            attributes: Default::default(),
            refused: Default::default(),
        };
        // The previous key still matches what it made; a stub never equals a plain value.
        assert!(b.matches_for(&rec).contains(&s[1]));
        assert!(!a.matches_for(&rec).iter().any(|h| h.contains("ana")));
    }
}
