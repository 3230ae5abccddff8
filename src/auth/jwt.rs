//! The `jwt` method: tokens signed by a key of a JSON Web Key Set, carrying permissions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::http::{query_param, JWT_QUERY_PARAM};
use super::rules::{self, Rule};
use super::{Action, AuthError, AuthRequest, Credentials};
use crate::config::Permission;

/// A token naming a key we do not have triggers a new fetch, but not more often than this.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Keys are fetched again after this long even if every token names a known key, so that
/// keys removed from the set (revoked) stop being trusted.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// Larger key sets are refused (a real one is a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Larger tokens are refused unverified.
const MAX_TOKEN_LEN: usize = 16 * 1024;

struct Key {
    kid: Option<String>,
    /// What this key may verify: what its `alg` says, else what its type and curve allow.
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    keys: Arc<Vec<Key>>,
    /// Last successful fetch.
    fetched: Option<Instant>,
    /// Last attempt, successful or not.
    attempted: Option<Instant>,
    /// Fetches made (for tests and logs).
    fetches: u64,
}

pub(crate) struct Verifier {
    url: String,
    claim_key: String,
    exclude: Vec<Rule>,
    client: Option<reqwest::Client>,
    /// Held only for moments, never across the fetch: a slow JWKS server must not hold
    /// up requests that the cached keys can answer.
    cache: std::sync::Mutex<Cache>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl Verifier {
    pub(crate) fn new(
        url: &str,
        claim_key: &str,
        exclude: &[Permission],
        client: Option<reqwest::Client>,
    ) -> Verifier {
        Verifier {
            url: url.to_string(),
            claim_key: claim_key.to_string(),
            exclude: rules::compile(exclude),
            client,
            cache: std::sync::Mutex::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    #[cfg(test)]
    pub(crate) async fn fetches(&self) -> u64 {
        self.cache().fetches
    }

    /// Moves the last fetch (and attempt) back in time, as if `by` had passed.
    #[cfg(test)]
    pub(crate) async fn backdate(&self, by: Duration) {
        let mut cache = self.cache();
        let back = |t: Option<Instant>| t.and_then(|t| t.checked_sub(by));
        cache.attempted = back(cache.attempted);
        cache.fetched = back(cache.fetched);
    }

    pub(crate) async fn authorize(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        if rules::any_allows(&self.exclude, req.action, req.path) {
            return Ok(());
        }
        let Some(token) = token_of(req) else {
            return Err(AuthError::Missing);
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Denied("token too long".to_string()));
        }
        let header = jsonwebtoken::decode_header(&token)
            .map_err(|e| AuthError::Denied(format!("malformed token: {e}")))?;
        let keys = self.keys(header.kid.as_deref()).await?;
        let claims = verify(&token, &header, &keys)?;
        let allowed = permissions(claims.get(&self.claim_key))
            .ok_or_else(|| {
                AuthError::Denied(format!(
                    "token has no valid {:?} claim (a list of {{action, path}})",
                    self.claim_key
                ))
            })?
            .iter()
            .any(|r| r.allows(req.action, req.path));
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Denied(format!(
                "token does not allow {} on {:?}",
                req.action, req.path
            )))
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Are the keys missing, an hour old, or without `kid`, and may we try again?
    fn wants_fetch(&self, kid: Option<&str>, now: Instant) -> bool {
        let cache = self.cache();
        let stale = cache
            .fetched
            .is_none_or(|t| now.saturating_duration_since(t) >= MAX_AGE);
        let unknown_kid =
            kid.is_some_and(|k| !cache.keys.iter().any(|key| key.kid.as_deref() == Some(k)));
        let may_fetch = cache
            .attempted
            .is_none_or(|t| now.saturating_duration_since(t) >= REFETCH_INTERVAL);
        (stale || unknown_kid) && may_fetch
    }

    fn cached(&self) -> Result<Arc<Vec<Key>>, AuthError> {
        let cache = self.cache();
        if cache.fetched.is_none() {
            return Err(AuthError::Hook(format!(
                "no JWKS yet from {} (next try within {}s)",
                crate::config::redact_password(&self.url),
                REFETCH_INTERVAL.as_secs()
            )));
        }
        Ok(Arc::clone(&cache.keys))
    }

    /// The cached keys, fetched first when there are none yet, when they are an hour old, or
    /// when the token names a key they lack (at most every [`REFETCH_INTERVAL`]). While one
    /// request fetches, the others use the keys there are (or wait for the first ones).
    async fn keys(&self, kid: Option<&str>) -> Result<Arc<Vec<Key>>, AuthError> {
        if !self.wants_fetch(kid, Instant::now()) {
            return self.cached();
        }
        let _fetching = match self.fetching.try_lock() {
            Ok(g) => g,
            Err(_) if self.cache().fetched.is_some() => return self.cached(),
            Err(_) => {
                let _first = self.fetching.lock().await;
                return self.cached();
            }
        };
        let now = Instant::now();
        if !self.wants_fetch(kid, now) {
            return self.cached();
        }
        {
            let mut cache = self.cache();
            cache.attempted = Some(now);
            cache.fetches += 1;
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache();
        match fetched {
            Ok(keys) => {
                cache.keys = Arc::new(keys);
                cache.fetched = Some(now);
            }
            Err(e) if cache.fetched.is_none() => return Err(AuthError::Hook(e)),
            // Keep verifying with the keys we have; the log says why they are old.
            Err(e) => tracing::warn!(error = %e, "cannot refresh the JWKS"),
        }
        drop(cache);
        self.cached()
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let url = crate::config::redact_password(&self.url);
        let fail = |e: &dyn std::fmt::Display| format!("JWKS {url}: {e}");
        let mut res = client
            .get(&self.url)
            .send()
            .await
            // reqwest's errors name the URL too, credentials and all.
            .map_err(|e| fail(&e.without_url()))?;
        if !res.status().is_success() {
            return Err(fail(&format!("answered {}", res.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| fail(&e.without_url()))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(fail(&"larger than 1 MiB"));
            }
        }
        parse_jwks(&body).map_err(|e| fail(&e))
    }
}

/// The token: `Authorization: Bearer`, else the `jwt` query parameter, else the Basic
/// password (for clients that can only send a user name and password, e.g. over RTSP).
fn token_of(req: &AuthRequest<'_>) -> Option<String> {
    if let Some(t) = req.credentials.bearer_token() {
        return Some(t.to_string());
    }
    if let Some(t) = query_param(req.query, JWT_QUERY_PARAM).filter(|t| !t.is_empty()) {
        return Some(t);
    }
    match req.credentials {
        Credentials::Basic { pass, .. } if !pass.is_empty() => Some(pass.clone()),
        _ => None,
    }
}

/// Parses a JWKS, keeping the keys that can verify signatures. Keys of unknown or
/// unsupported types are skipped rather than failing the whole set, and symmetric (`oct`)
/// keys are refused: a secret published in a JWKS would let anyone sign tokens.
fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" list")?;
    let keys: Vec<Key> = list
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
            )
        })
        .filter_map(|jwk| {
            let algorithms = algorithms_of(&jwk);
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            (!algorithms.is_empty()).then(|| Key {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key,
            })
        })
        .collect();
    if keys.is_empty() {
        return Err("no usable signing key (RSA, EC P-256/P-384 or Ed25519)".to_string());
    }
    Ok(keys)
}

fn algorithms_of(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![EdDSA],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKey(_) => Vec::new(),
    };
    let Some(declared) = jwk.common.key_algorithm else {
        return by_type;
    };
    let declared = match declared {
        KeyAlgorithm::RS256 => RS256,
        KeyAlgorithm::RS384 => RS384,
        KeyAlgorithm::RS512 => RS512,
        KeyAlgorithm::PS256 => PS256,
        KeyAlgorithm::PS384 => PS384,
        KeyAlgorithm::PS512 => PS512,
        KeyAlgorithm::ES256 => ES256,
        KeyAlgorithm::ES384 => ES384,
        KeyAlgorithm::EdDSA => EdDSA,
        _ => return Vec::new(),
    };
    by_type.into_iter().filter(|a| *a == declared).collect()
}

/// Verifies the signature (with the key the header names, or every key fit for its
/// algorithm) and `exp`, and returns the claims.
fn verify(
    token: &str,
    header: &jsonwebtoken::Header,
    keys: &[Key],
) -> Result<serde_json::Map<String, Value>, AuthError> {
    let alg = header.alg;
    let candidates: Vec<&Key> = keys
        .iter()
        .filter(|k| header.kid.is_none() || k.kid == header.kid)
        .filter(|k| k.algorithms.contains(&alg))
        .collect();
    if candidates.is_empty() {
        return Err(AuthError::Denied(format!(
            "no key in the JWKS for kid {:?} and algorithm {alg:?}",
            header.kid
        )));
    }
    let mut validation = Validation::new(alg);
    validation.leeway = 0;
    // MediaMTX checks neither audience nor issuer; an `aud` in the token is no reason to fail.
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    let mut last_error = None;
    for key in candidates {
        match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => last_error = Some(e),
        }
    }
    Err(AuthError::Denied(format!(
        "invalid token: {}",
        last_error.map_or_else(|| "no key".to_string(), |e| e.to_string())
    )))
}

/// The permissions claim: a list of `{action, path}`, or a string holding that list as JSON
/// (some identity servers can only emit string claims). Entries with an unknown action are
/// skipped; a claim of another shape is None.
fn permissions(claim: Option<&Value>) -> Option<Vec<Rule>> {
    let parsed;
    let list = match claim? {
        Value::Array(list) => list,
        Value::String(text) => {
            parsed = serde_json::from_str::<Vec<Value>>(text).ok()?;
            &parsed
        }
        _ => return None,
    };
    Some(
        list.iter()
            .filter_map(|entry| {
                let action = Action::parse(entry.get("action")?.as_str()?).ok()?;
                let path = entry.get("path").and_then(Value::as_str);
                Some(Rule::new(action, path))
            })
            .collect(),
    )
}
