//! Signed link tokens: what a customer's unsubscribe, preference and survey links carry, so
//! nobody can unsubscribe, read and change preferences, or answer a survey for someone else.
//!
//! Format: `v2.<kid>.<payload>.<sig>`, where
//! - `kid` names the key (8 hex characters of a hash of it), so after a rotation links signed
//!   with the previous key still verify (two keys are accepted: current and previous);
//! - `payload` is `u.<customer id>.<email|sms>.<category>` (unsubscribe from a category, or a
//!   channel, as that message offered), `p.<customer id>` (the preference page) or
//!   `s.<customer id>.<ritual>.<occurrence, base64url>` (a survey: the score is the next path
//!   segment of the link, outside the token, so one token serves all eleven score links);
//! - a **test** link (previews and test sends) has `t.<locale>.` before that payload: the
//!   pages open as for a real link, in that language, say "test — nothing was recorded", and
//!   change nothing. The marker is inside the signed text, so a test token cannot become a real
//!   one (or the reverse) without breaking the signature, and the `parse_*` methods, which
//!   stand for real links, refuse test tokens;
//! - `sig` is the first 128 bits of HMAC-SHA-256(key, `ritualist-link/v2/<kid>.<payload>`),
//!   base64url without padding, verified in constant time.
//!
//! Tokens never expire: a link in a years-old email must still work. Every character is
//! URL-safe (`[A-Za-z0-9._-]`), so a token is one path segment as it is.
//!
//! This module also owns the instance's signing keys ([`SigningKeys`]: `secret`, else the
//! store's instance key, plus `http.previous_secret_env`) and the HMAC setup
//! ([`hmac_sha256`], [`hmac_sha1`]) that links, forgotten customers' stubs, Message-IDs and
//! Twilio's webhook signature use: one derivation, so they can never drift apart.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::Channel;
use crate::store::{Store, StoreError};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of HMAC in a delivery token (80 bits, 20 hex digits).
const DELIVERY_SIG_BYTES: usize = 10;

/// HMAC-SHA-256 under `key`, fed `parts` in order: the MAC of every signature ritualist
/// makes (links, stubs, Message-IDs).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// The whole HMAC-SHA-256 of `data` under `key`, in lower-case hex.
pub(crate) fn hmac_sha256_hex(key: &[u8], data: &str) -> String {
    hex::encode(hmac_sha256(key, &[data.as_bytes()]).finalize().into_bytes())
}

/// HMAC-SHA-1 under `key`, fed `parts` in order (Twilio's webhook signature).
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Hmac<sha1::Sha1> {
    let mut mac =
        <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// The instance's signing keys: `secret` from the config, else the store's instance key
/// (made on first use), and the key before a rotation (`http.previous_secret_env`), which
/// only verifies. Links ([`LinkKeys`]), stubs ([`StubKeys`](super::StubKeys)) and
/// Message-IDs all derive from these.
#[derive(Clone)]
pub struct SigningKeys {
    pub current: Vec<u8>,
    pub previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys(previous: {})", self.previous.is_some())
    }
}

impl SigningKeys {
    /// The keys of a config and its store.
    pub async fn load(cfg: &Config, store: &Store) -> Result<SigningKeys, StoreError> {
        let current = match configured_secret(cfg) {
            Some(s) => s.to_vec(),
            None => store.instance_key().await?.into_bytes(),
        };
        let previous = cfg
            .http
            .as_ref()
            .and_then(|h| h.previous_secret.as_ref())
            .map(|s| s.expose().as_bytes().to_vec());
        Ok(SigningKeys { current, previous })
    }

    /// The keys links are signed and verified with.
    pub fn link_keys(&self) -> LinkKeys {
        LinkKeys::new(&self.current, self.previous.as_deref())
    }

    /// The keys forgotten customers' stubs are made and matched with.
    pub fn stub_keys(&self) -> super::StubKeys {
        super::StubKeys::new(&self.current, self.previous.as_deref())
    }
}

/// The config's own `secret`, when it has one (the preview page signs its test links with it,
/// so they open the daemon's real pages).
pub fn configured_secret(cfg: &Config) -> Option<&[u8]> {
    cfg.secret.as_ref().map(|s| s.expose().as_bytes())
}

/// Bytes of the HMAC kept in a token (128 bits).
const SIG_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("bad token signature")]
    BadSignature,
    #[error("token for another purpose")]
    WrongPurpose,
    #[error("a test link (from a preview or a test send)")]
    TestLink,
}

/// Which links a message carries: `Live` for what the daemon sends (they act on the
/// customer's consent and survey answers), `Test` for previews and test sends (they open the
/// same pages and record nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    Live,
    Test,
}

/// Where a verified token comes from: a real message, or a preview or test send (with the
/// language its pages speak, as the customer's would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Live,
    Test { locale: String },
}

/// The locale written into a test token: only `[A-Za-z0-9-]` (locale names are), else `en`.
fn token_locale(locale: &str) -> &str {
    let ok = !locale.is_empty()
        && locale.len() <= 35
        && locale
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { locale } else { "en" }
}

/// The keys links are signed with (the first) and verified against (any).
#[derive(Clone)]
pub struct LinkKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "LinkKeys({kids:?})")
    }
}

/// The key id of a key: public, stable, and says nothing useful about the key.
fn kid(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"ritualist-kid/");
    h.update(key);
    let mut s = hex::encode(h.finalize());
    s.truncate(8);
    s
}

impl LinkKeys {
    /// `current` signs; `previous` (the key before a rotation) only verifies.
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Self {
        let mut keys = vec![(kid(current), current.to_vec())];
        if let Some(p) = previous
            && p != current
        {
            keys.push((kid(p), p.to_vec()));
        }
        LinkKeys { keys }
    }

    fn mac(key: &[u8], kid: &str, payload: &str) -> HmacSha256 {
        hmac_sha256(
            key,
            &[
                b"ritualist-link/v2/",
                kid.as_bytes(),
                b".",
                payload.as_bytes(),
            ],
        )
    }

    /// A delivery's token, for its email's return path (VERP: `bounces+<token>@domain`) and
    /// its SMS receipt callback: `d<id>-<20 hex digits>`, all lower case (a mail system may
    /// change the case of a local part; [`LinkKeys::parse_delivery_token`] ignores it). The
    /// digits are HMAC-SHA-256 of the id under the current key, so a report cannot be made up
    /// for a delivery by guessing its id.
    pub fn delivery_token(&self, id: i64) -> String {
        let (_, key) = &self.keys[0];
        format!("d{id}-{}", Self::delivery_sig(key, id))
    }

    fn delivery_sig(key: &[u8], id: i64) -> String {
        let tag = hmac_sha256(key, &[b"ritualist-delivery/v1/", id.to_string().as_bytes()])
            .finalize()
            .into_bytes();
        hex::encode(&tag[..DELIVERY_SIG_BYTES])
    }

    /// The delivery a token names, when its signature holds under the current or the
    /// previous key.
    pub fn parse_delivery_token(&self, token: &str) -> Option<i64> {
        let token = token.trim().to_ascii_lowercase();
        let (id, sig) = token.strip_prefix('d')?.split_once('-')?;
        if id.len() > 19
            || sig.len() != 2 * DELIVERY_SIG_BYTES
            || !id.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        let ok = self.keys.iter().any(|(_, key)| {
            let want = Self::delivery_sig(key, id);
            // Constant time: compare every byte.
            want.bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        });
        ok.then_some(id)
    }

    /// `payload` signed as a live link, or as a test link whose pages speak `locale`.
    fn sign_as(&self, mode: LinkMode, locale: &str, payload: &str) -> String {
        match mode {
            LinkMode::Live => self.sign(payload),
            LinkMode::Test => self.sign(&format!("t.{}.{payload}", token_locale(locale))),
        }
    }

    fn sign(&self, payload: &str) -> String {
        let (kid, key) = &self.keys[0];
        let tag = Self::mac(key, kid, payload).finalize().into_bytes();
        let sig = URL_SAFE_NO_PAD.encode(&tag[..SIG_BYTES]);
        format!("v2.{kid}.{payload}.{sig}")
    }

    /// The verified payload of `token`.
    fn verify<'t>(&self, token: &'t str) -> Result<&'t str, TokenError> {
        if token.len() > 512 {
            return Err(TokenError::Malformed);
        }
        let rest = token.strip_prefix("v2.").ok_or(TokenError::Malformed)?;
        let (kid, rest) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let (payload, sig) = rest.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        if sig.len() != SIG_BYTES {
            return Err(TokenError::Malformed);
        }
        let (kid, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .ok_or(TokenError::UnknownKey)?;
        Self::mac(key, kid, payload)
            .verify_truncated_left(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(payload)
    }

    /// The verified payload of `token` without its test marker, and where it comes from.
    fn verify_origin<'t>(&self, token: &'t str) -> Result<(Origin, &'t str), TokenError> {
        let payload = self.verify(token)?;
        let Some(rest) = payload.strip_prefix("t.") else {
            return Ok((Origin::Live, payload));
        };
        let (locale, inner) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        if token_locale(locale) != locale {
            return Err(TokenError::Malformed);
        }
        let origin = Origin::Test {
            locale: locale.to_string(),
        };
        Ok((origin, inner))
    }

    /// The verified payload of a real link: a test link is refused.
    fn verify_live<'t>(&self, token: &'t str) -> Result<&'t str, TokenError> {
        match self.verify_origin(token)? {
            (Origin::Live, payload) => Ok(payload),
            (Origin::Test { .. }, _) => Err(TokenError::TestLink),
        }
    }

    /// The token of an unsubscribe link.
    pub fn unsubscribe_token(&self, t: &UnsubscribeToken) -> String {
        self.unsubscribe_token_as(LinkMode::Live, "", t)
    }

    /// [`Self::unsubscribe_token`], live or test (`locale`: the test page's language).
    pub fn unsubscribe_token_as(
        &self,
        mode: LinkMode,
        locale: &str,
        t: &UnsubscribeToken,
    ) -> String {
        let payload = format!("u.{}.{}.{}", t.customer_id, t.channel, t.category);
        self.sign_as(mode, locale, &payload)
    }

    /// The token of a customer's preference page.
    pub fn preferences_token(&self, customer_id: i64) -> String {
        self.preferences_token_as(LinkMode::Live, "", customer_id)
    }

    /// [`Self::preferences_token`], live or test (`locale`: the test page's language).
    pub fn preferences_token_as(&self, mode: LinkMode, locale: &str, customer_id: i64) -> String {
        self.sign_as(mode, locale, &format!("p.{customer_id}"))
    }

    /// The unsubscribe link of a real message (a test link is refused).
    pub fn parse_unsubscribe(&self, token: &str) -> Result<UnsubscribeToken, TokenError> {
        unsubscribe_payload(self.verify_live(token)?)
    }

    /// An unsubscribe link, live or test.
    pub fn read_unsubscribe(&self, token: &str) -> Result<(UnsubscribeToken, Origin), TokenError> {
        let (origin, payload) = self.verify_origin(token)?;
        Ok((unsubscribe_payload(payload)?, origin))
    }

    /// The token of a survey's score links: one survey = ritual, customer, occurrence.
    pub fn survey_token(&self, t: &SurveyToken) -> String {
        self.survey_token_as(LinkMode::Live, "", t)
    }

    /// [`Self::survey_token`], live or test (`locale`: the test page's language).
    pub fn survey_token_as(&self, mode: LinkMode, locale: &str, t: &SurveyToken) -> String {
        let payload = format!(
            "s.{}.{}.{}",
            t.customer_id,
            t.ritual,
            URL_SAFE_NO_PAD.encode(t.occurrence.as_bytes())
        );
        self.sign_as(mode, locale, &payload)
    }

    /// The survey of a real message's score link (a test link is refused).
    pub fn parse_survey(&self, token: &str) -> Result<SurveyToken, TokenError> {
        survey_payload(self.verify_live(token)?)
    }

    /// A survey score link's survey, live or test.
    pub fn read_survey(&self, token: &str) -> Result<(SurveyToken, Origin), TokenError> {
        let (origin, payload) = self.verify_origin(token)?;
        Ok((survey_payload(payload)?, origin))
    }

    /// The customer id of a real message's preference-page token (a test link is refused).
    pub fn parse_preferences(&self, token: &str) -> Result<i64, TokenError> {
        preferences_payload(self.verify_live(token)?)
    }

    /// The customer id of a preference-page token, live or test.
    pub fn read_preferences(&self, token: &str) -> Result<(i64, Origin), TokenError> {
        let (origin, payload) = self.verify_origin(token)?;
        Ok((preferences_payload(payload)?, origin))
    }
}

fn unsubscribe_payload(payload: &str) -> Result<UnsubscribeToken, TokenError> {
    let rest = payload.strip_prefix("u.").ok_or(TokenError::WrongPurpose)?;
    let mut parts = rest.splitn(3, '.');
    let customer_id = parse_id(parts.next())?;
    let channel = parts
        .next()
        .and_then(Channel::from_code)
        .ok_or(TokenError::Malformed)?;
    let category = parts.next().ok_or(TokenError::Malformed)?;
    if category.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(UnsubscribeToken {
        customer_id,
        channel,
        category: category.to_string(),
    })
}

fn survey_payload(payload: &str) -> Result<SurveyToken, TokenError> {
    let rest = payload.strip_prefix("s.").ok_or(TokenError::WrongPurpose)?;
    let mut parts = rest.splitn(3, '.');
    let customer_id = parse_id(parts.next())?;
    let ritual = parts.next().filter(|r| !r.is_empty());
    let occurrence = parts
        .next()
        .and_then(|o| URL_SAFE_NO_PAD.decode(o).ok())
        .and_then(|o| String::from_utf8(o).ok())
        .filter(|o| !o.is_empty());
    match (ritual, occurrence) {
        (Some(ritual), Some(occurrence)) => Ok(SurveyToken {
            customer_id,
            ritual: ritual.to_string(),
            occurrence,
        }),
        _ => Err(TokenError::Malformed),
    }
}

fn preferences_payload(payload: &str) -> Result<i64, TokenError> {
    let rest = payload.strip_prefix("p.").ok_or(TokenError::WrongPurpose)?;
    parse_id(Some(rest))
}

fn parse_id(s: Option<&str>) -> Result<i64, TokenError> {
    let s = s.ok_or(TokenError::Malformed)?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed);
    }
    s.parse().map_err(|_| TokenError::Malformed)
}

/// What an unsubscribe link is about: a customer, the channel the message came by and the
/// message's opt-out category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeToken {
    pub customer_id: i64,
    pub channel: Channel,
    pub category: String,
}

/// What a survey link is about: the ritual, the customer and the occurrence surveyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyToken {
    pub customer_id: i64,
    pub ritual: String,
    pub occurrence: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Return paths already sent must keep naming their delivery: the value was computed
    /// independently (Python's `hmac`, `hashlib.sha256`).
    #[test]
    fn delivery_tokens_are_pinned_and_checked() {
        let keys = LinkKeys::new(b"pinned-secret", Some(b"older-secret"));
        assert_eq!(keys.delivery_token(42), "d42-8ecef6631f5fccce761c");
        assert_eq!(
            keys.parse_delivery_token("d42-8ecef6631f5fccce761c"),
            Some(42)
        );
        assert_eq!(
            keys.parse_delivery_token("D42-8ECEF6631F5FCCCE761C"),
            Some(42)
        );
        // Signed with the key before a rotation: still valid.
        let old = LinkKeys::new(b"older-secret", None).delivery_token(7);
        assert_eq!(keys.parse_delivery_token(&old), Some(7));
        // Another id with the same signature, a cut signature, junk: refused.
        let forged = keys.delivery_token(42).replacen("d42", "d43", 1);
        assert_eq!(keys.parse_delivery_token(&forged), None);
        for bad in [
            "",
            "d",
            "d42",
            "d42-",
            "dx-00",
            "d-1-0000000000",
            "d99999999999999999999-00000000000000000000",
        ] {
            assert_eq!(keys.parse_delivery_token(bad), None, "{bad}");
        }
    }

    /// Links already sent must keep working: these values were computed (independently, and
    /// by the code before the keys moved to one place) and must never change.
    #[test]
    fn signatures_and_derived_keys_are_pinned() {
        let keys = LinkKeys::new(b"pinned-secret", Some(b"older-secret"));
        let t = UnsubscribeToken {
            customer_id: 42,
            channel: Channel::Email,
            category: "news".into(),
        };
        assert_eq!(
            keys.unsubscribe_token(&t),
            "v2.b8b5d3db.u.42.email.news.iwE0I7tXI0L3tDPncsI_gA"
        );
        assert_eq!(
            keys.preferences_token(42),
            "v2.b8b5d3db.p.42.iUt-BWf6R6lQCiPYShd9Og"
        );
        assert_eq!(
            keys.preferences_token_as(LinkMode::Test, "ro", 42),
            "v2.b8b5d3db.t.ro.p.42.Df7p2scX0pmpkuhkFlnZ1A"
        );
        // A link signed with the previous key still verifies.
        assert_eq!(
            keys.parse_preferences("v2.6c360979.p.7.q2fxjXBHz9XHaxCh-8xGvQ"),
            Ok(7)
        );
        let stubs = super::super::StubKeys::new(b"pinned-secret", None);
        assert_eq!(
            stubs.stubs("c1", Some("Ana@Example.com"), None)[1],
            "dded8c8cd80e875951e1ee429ebc83eeeb08ac5f42a6b57734d2dc436eea95f0"
        );
        let occ = crate::domain::OccurrenceKey::yearly("birthday", 42, 2027);
        assert_eq!(
            super::super::message_id(
                b"pinned-secret",
                &occ,
                Channel::Email,
                "shop.example",
                1_798_750_800
            ),
            // The time, then the first 24 digits of the HMAC pinned before the time came first.
            "6b36c2509ab43e0f16e16f9c9fd957c0@shop.example"
        );
    }

    fn tok(cat: &str) -> UnsubscribeToken {
        UnsubscribeToken {
            customer_id: 42,
            channel: Channel::Email,
            category: cat.into(),
        }
    }

    #[test]
    fn round_trips_and_is_url_safe() {
        let k = LinkKeys::new(b"secret-one", None);
        for cat in ["birthday", "holidays.mothers_day"] {
            let t = k.unsubscribe_token(&tok(cat));
            assert!(t.starts_with("v2."), "{t}");
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{t}"
            );
            assert_eq!(k.parse_unsubscribe(&t), Ok(tok(cat)));
        }
        let p = k.preferences_token(7);
        assert_eq!(k.parse_preferences(&p), Ok(7));
        // The same inputs give the same token (no time, no randomness): old links keep working.
        assert_eq!(k.preferences_token(7), p);
    }

    #[test]
    fn tampering_is_detected() {
        let k = LinkKeys::new(b"secret-one", None);
        let t = k.unsubscribe_token(&tok("birthday"));
        // Another customer, channel or category with the same signature.
        for (from, to) in [
            (".42.", ".43."),
            (".email.", ".sms."),
            ("birthday", "digest"),
        ] {
            let forged = t.replacen(from, to, 1);
            assert_ne!(forged, t);
            assert_eq!(
                k.parse_unsubscribe(&forged),
                Err(TokenError::BadSignature),
                "{forged}"
            );
        }
        // A flipped signature character.
        let mut bytes = t.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(k.parse_unsubscribe(&flipped), Err(TokenError::BadSignature));
        // Signed with another key.
        let other = LinkKeys::new(b"secret-two", None).unsubscribe_token(&tok("birthday"));
        assert_eq!(k.parse_unsubscribe(&other), Err(TokenError::UnknownKey));
        // Garbage and the old v1 format.
        for bad in [
            "",
            "v2",
            "v2..",
            "v1.42.email.birthday.00ff",
            "v2.x.u.42.email.birthday.!!",
        ] {
            assert!(k.parse_unsubscribe(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn purposes_do_not_mix() {
        let k = LinkKeys::new(b"secret-one", None);
        let u = k.unsubscribe_token(&tok("birthday"));
        let p = k.preferences_token(42);
        assert_eq!(k.parse_preferences(&u), Err(TokenError::WrongPurpose));
        assert_eq!(k.parse_unsubscribe(&p), Err(TokenError::WrongPurpose));
        let s = k.survey_token(&survey());
        assert_eq!(k.parse_unsubscribe(&s), Err(TokenError::WrongPurpose));
        assert_eq!(k.parse_preferences(&s), Err(TokenError::WrongPurpose));
        assert_eq!(k.parse_survey(&u), Err(TokenError::WrongPurpose));
        assert_eq!(k.parse_survey(&p), Err(TokenError::WrongPurpose));
    }

    fn survey() -> SurveyToken {
        SurveyToken {
            customer_id: 42,
            ritual: "survey".into(),
            // Occurrence keys may hold any character (order ids come from the shop).
            occurrence: "order:A/1001 ü.x".into(),
        }
    }

    #[test]
    fn survey_tokens_round_trip_and_resist_tampering() {
        let k = LinkKeys::new(b"secret-one", None);
        let t = k.survey_token(&survey());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{t}"
        );
        assert_eq!(k.parse_survey(&t), Ok(survey()));
        for (from, to) in [(".42.", ".43."), (".survey.", ".birthday.")] {
            let forged = t.replacen(from, to, 1);
            assert_ne!(forged, t);
            assert_eq!(k.parse_survey(&forged), Err(TokenError::BadSignature));
        }
        let other = LinkKeys::new(b"secret-two", None).survey_token(&survey());
        assert_eq!(k.parse_survey(&other), Err(TokenError::UnknownKey));
    }

    /// Previews and test sends carry test links: no real-link parser takes them, the test
    /// marker is signed (strip it, add it or change its language and the signature fails),
    /// and real links read as live.
    #[test]
    fn test_links_cannot_pass_for_real_ones_nor_the_reverse() {
        let k = LinkKeys::new(b"secret-one", None);
        let test_origin = Origin::Test {
            locale: "ro-MD".into(),
        };
        let real = k.unsubscribe_token(&tok("birthday"));
        let test = k.unsubscribe_token_as(LinkMode::Test, "ro-MD", &tok("birthday"));
        assert_ne!(real, test);
        assert!(
            test.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{test}"
        );
        assert_eq!(k.parse_unsubscribe(&test), Err(TokenError::TestLink));
        assert_eq!(
            k.read_unsubscribe(&test),
            Ok((tok("birthday"), test_origin.clone()))
        );
        assert_eq!(
            k.read_unsubscribe(&real),
            Ok((tok("birthday"), Origin::Live))
        );
        // Live through the `_as` signer is the real token, byte for byte.
        assert_eq!(
            k.unsubscribe_token_as(LinkMode::Live, "ro-MD", &tok("birthday")),
            real
        );

        // Turning one into the other breaks the signature.
        let stripped = test.replacen(".t.ro-MD.", ".", 1);
        assert_ne!(stripped, test);
        assert_eq!(
            k.parse_unsubscribe(&stripped),
            Err(TokenError::BadSignature)
        );
        assert_eq!(k.read_unsubscribe(&stripped), Err(TokenError::BadSignature));
        let marked = real.replacen(".u.", ".t.en.u.", 1);
        assert_ne!(marked, real);
        assert_eq!(k.read_unsubscribe(&marked), Err(TokenError::BadSignature));
        let relabelled = test.replacen(".t.ro-MD.", ".t.en.", 1);
        assert_eq!(
            k.read_unsubscribe(&relabelled),
            Err(TokenError::BadSignature)
        );
        let other_customer = test.replacen(".42.", ".43.", 1);
        assert_eq!(
            k.read_unsubscribe(&other_customer),
            Err(TokenError::BadSignature)
        );
        let mut bytes = test.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(k.read_unsubscribe(&flipped), Err(TokenError::BadSignature));
        let foreign = LinkKeys::new(b"secret-two", None).unsubscribe_token_as(
            LinkMode::Test,
            "ro-MD",
            &tok("birthday"),
        );
        assert_eq!(k.read_unsubscribe(&foreign), Err(TokenError::UnknownKey));

        // The same for the preference page and survey links.
        let p_test = k.preferences_token_as(LinkMode::Test, "ro-MD", 42);
        assert_eq!(k.parse_preferences(&p_test), Err(TokenError::TestLink));
        assert_eq!(k.read_preferences(&p_test), Ok((42, test_origin.clone())));
        let p_real = k.preferences_token(42);
        assert_eq!(k.read_preferences(&p_real), Ok((42, Origin::Live)));
        assert_eq!(
            k.read_preferences(&p_test.replacen(".t.ro-MD.", ".", 1)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            k.read_preferences(&p_real.replacen(".p.", ".t.ro-MD.p.", 1)),
            Err(TokenError::BadSignature)
        );
        let s_test = k.survey_token_as(LinkMode::Test, "ro-MD", &survey());
        assert_eq!(k.parse_survey(&s_test), Err(TokenError::TestLink));
        assert_eq!(k.read_survey(&s_test), Ok((survey(), test_origin)));
        let s_real = k.survey_token(&survey());
        assert_eq!(k.read_survey(&s_real), Ok((survey(), Origin::Live)));
        assert_eq!(
            k.read_survey(&s_test.replacen(".t.ro-MD.", ".", 1)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            k.read_survey(&s_real.replacen(".s.", ".t.ro-MD.s.", 1)),
            Err(TokenError::BadSignature)
        );
        // Purposes still do not mix among test links.
        assert_eq!(k.read_preferences(&test), Err(TokenError::WrongPurpose));
        assert_eq!(k.read_survey(&p_test), Err(TokenError::WrongPurpose));
        // A locale that is not a locale name is not written into a token.
        let odd = k.preferences_token_as(LinkMode::Test, "x.y", 42);
        assert_eq!(
            k.read_preferences(&odd),
            Ok((
                42,
                Origin::Test {
                    locale: "en".into()
                }
            ))
        );
    }

    #[test]
    fn the_previous_key_still_verifies_after_a_rotation() {
        let old = LinkKeys::new(b"old", None);
        let t = old.unsubscribe_token(&tok("birthday"));
        let rotated = LinkKeys::new(b"new", Some(b"old"));
        assert_eq!(rotated.parse_unsubscribe(&t), Ok(tok("birthday")));
        // New links are signed with the new key, which the old set does not know.
        let fresh = rotated.unsubscribe_token(&tok("birthday"));
        assert_ne!(fresh, t);
        assert_eq!(old.parse_unsubscribe(&fresh), Err(TokenError::UnknownKey));
        // After the next rotation the oldest key is gone.
        let again = LinkKeys::new(b"newer", Some(b"new"));
        assert_eq!(again.parse_unsubscribe(&t), Err(TokenError::UnknownKey));
    }
}
