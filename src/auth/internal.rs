//! The `internal` method: the users of `authInternalUsers`.

use std::net::IpAddr;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine as _;
use ipnet::IpNet;
use sha2::{Digest as _, Sha256};

use super::digest::{self, constant_time_eq, Nonces};
use super::rules::{self, Rule};
use super::{Action, AuthError, AuthRequest, Credentials, Protocol};
use crate::config::{AuthUser, ANY_USER};

/// A user name or password as configured.
enum Secret {
    Plain(String),
    Sha256([u8; 32]),
    /// The PHC string (checked when the configuration was parsed).
    Argon2(String),
    /// A hashed form that does not decode (a `Config` built in code): matches nothing.
    Invalid,
}

impl Secret {
    fn new(text: &str) -> Secret {
        if let Some(b64) = text.strip_prefix("sha256:") {
            let digest = base64::engine::general_purpose::STANDARD.decode(b64);
            match digest.ok().and_then(|d| <[u8; 32]>::try_from(d).ok()) {
                Some(d) => Secret::Sha256(d),
                None => Secret::Invalid,
            }
        } else if let Some(phc) = text.strip_prefix("argon2:") {
            match PasswordHash::new(phc) {
                Ok(_) => Secret::Argon2(phc.to_string()),
                Err(_) => Secret::Invalid,
            }
        } else {
            Secret::Plain(text.to_string())
        }
    }

    fn matches(&self, given: &str) -> bool {
        match self {
            Secret::Plain(p) => constant_time_eq(p.as_bytes(), given.as_bytes()),
            Secret::Sha256(d) => constant_time_eq(d, &Sha256::digest(given.as_bytes())),
            Secret::Argon2(phc) => PasswordHash::new(phc).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(given.as_bytes(), &hash)
                    .is_ok()
            }),
            Secret::Invalid => false,
        }
    }

    fn plain(&self) -> Option<&str> {
        match self {
            Secret::Plain(p) => Some(p),
            _ => None,
        }
    }

    fn is_slow(&self) -> bool {
        matches!(self, Secret::Argon2(_))
    }
}

struct User {
    /// None: `any`.
    name: Option<Secret>,
    pass: Secret,
    ips: Vec<IpNet>,
    rules: Vec<Rule>,
}

pub(crate) struct Users {
    users: Vec<User>,
}

impl Users {
    pub(crate) fn new(config: &[AuthUser]) -> Users {
        let users = config
            .iter()
            .map(|u| User {
                name: (u.user != ANY_USER).then(|| Secret::new(&u.user)),
                pass: Secret::new(&u.pass),
                ips: u.ips.clone(),
                rules: rules::compile(&u.permissions),
            })
            .collect();
        Users { users }
    }

    /// Some user's check runs Argon2.
    pub(crate) fn has_slow_hashes(&self) -> bool {
        self.users
            .iter()
            .any(|u| u.pass.is_slow() || u.name.as_ref().is_some_and(Secret::is_slow))
    }

    /// Every named user has a plain name and password, so Digest can work for all of them.
    pub(crate) fn digest_capable(&self) -> bool {
        self.users.iter().all(|u| match &u.name {
            None => true,
            Some(name) => name.plain().is_some() && u.pass.plain().is_some(),
        })
    }

    pub(crate) fn authorize(
        &self,
        req: &AuthRequest<'_>,
        nonces: &Nonces,
        now: u64,
    ) -> Result<(), AuthError> {
        let creds = req.credentials;
        let mut reason: Option<String> = None;
        for user in &self.users {
            if !user.ips.is_empty() && !user.ips.iter().any(|n| n.contains(&req.ip)) {
                continue;
            }
            if !rules::any_allows(&user.rules, req.action, req.path) {
                continue;
            }
            let Some(name) = &user.name else {
                return Ok(());
            };
            match check_user(
                name,
                &user.pass,
                creds,
                (req.rtsp_method, req.rtsp_uri, req.rtsp_conn),
                nonces,
                now,
            ) {
                Ok(()) => return Ok(()),
                Err(Some(why)) => reason = reason.or(Some(why)),
                Err(None) => {}
            }
        }
        if creds.is_none() {
            return Err(AuthError::Missing);
        }
        Err(AuthError::Denied(reason.unwrap_or_else(|| {
            format!(
                "no user with these credentials may {} {}from {}",
                req.action,
                if req.action.has_path() {
                    format!("{:?} ", req.path)
                } else {
                    String::new()
                },
                req.ip
            )
        })))
    }
}

/// Ok: these credentials are this user's. Err(Some): they name this user but are wrong.
/// Err(None): they are not this user's.
fn check_user(
    name: &Secret,
    pass: &Secret,
    creds: &Credentials,
    (rtsp_method, rtsp_uri, rtsp_conn): (Option<&str>, &str, &str),
    nonces: &Nonces,
    now: u64,
) -> Result<(), Option<String>> {
    if let Credentials::Digest(d) = creds {
        if !name.matches(&d.username) {
            return Err(None);
        }
        let who = &d.username;
        let Some(plain) = pass.plain() else {
            return Err(Some(format!(
                "user {who:?} has a hashed password, which RTSP Digest cannot check"
            )));
        };
        let Some(method) = rtsp_method else {
            return Err(Some("Digest credentials outside RTSP".to_string()));
        };
        return digest::verify(d, plain, (method, rtsp_uri, rtsp_conn), nonces, now)
            .map_err(|why| Some(format!("user {who:?}: {why}")));
    }
    let Some((user, given)) = creds.user_pass() else {
        return Err(None);
    };
    if !name.matches(user) {
        return Err(None);
    }
    if pass.matches(given) {
        Ok(())
    } else {
        Err(Some(format!("wrong password for user {user:?}")))
    }
}

/// An [`AuthRequest`] that owns its data, to move a check onto a blocking thread.
pub(crate) struct OwnedRequest {
    credentials: Credentials,
    ip: IpAddr,
    action: Action,
    path: String,
    protocol: Protocol,
    id: Option<String>,
    query: String,
    rtsp_method: Option<String>,
    rtsp_uri: String,
    rtsp_conn: String,
}

impl From<&AuthRequest<'_>> for OwnedRequest {
    fn from(r: &AuthRequest<'_>) -> Self {
        OwnedRequest {
            credentials: r.credentials.clone(),
            ip: r.ip,
            action: r.action,
            path: r.path.to_string(),
            protocol: r.protocol,
            id: r.id.map(str::to_string),
            query: r.query.to_string(),
            rtsp_method: r.rtsp_method.map(str::to_string),
            rtsp_uri: r.rtsp_uri.to_string(),
            rtsp_conn: r.rtsp_conn.to_string(),
        }
    }
}

impl OwnedRequest {
    pub(crate) fn borrow(&self) -> AuthRequest<'_> {
        AuthRequest {
            credentials: &self.credentials,
            ip: self.ip,
            action: self.action,
            path: &self.path,
            protocol: self.protocol,
            id: self.id.as_deref(),
            query: &self.query,
            rtsp_method: self.rtsp_method.as_deref(),
            rtsp_uri: &self.rtsp_uri,
            rtsp_conn: &self.rtsp_conn,
        }
    }
}
