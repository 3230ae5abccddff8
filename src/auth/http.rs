//! The `http` method: an external server decides, one JSON POST per request.

use super::rules::{self, Rule};
use super::{AuthError, AuthRequest, Credentials};
use crate::config::Permission;

pub(crate) struct Hook {
    url: String,
    exclude: Vec<Rule>,
    client: Option<reqwest::Client>,
}

/// The query parameter that may carry a token (MediaMTX's name).
pub(crate) const JWT_QUERY_PARAM: &str = "jwt";

/// The value of a query parameter, percent-decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Hook {
    pub(crate) fn new(url: &str, exclude: &[Permission], client: Option<reqwest::Client>) -> Hook {
        Hook {
            url: url.to_string(),
            exclude: rules::compile(exclude),
            client,
        }
    }

    /// The JSON body MediaMTX sends, with `protocol` also set for api, metrics and pprof.
    pub(crate) fn body(req: &AuthRequest<'_>) -> serde_json::Value {
        let creds = req.credentials;
        let (user, password) = match (creds.user_pass(), creds) {
            (Some((u, p)), _) => (u.to_string(), p.to_string()),
            // Digest never reveals the password: the hook gets the name alone.
            (None, Credentials::Digest(d)) => (d.username.clone(), String::new()),
            _ => (String::new(), String::new()),
        };
        let token = creds
            .bearer_token()
            .map(str::to_string)
            .or_else(|| query_param(req.query, JWT_QUERY_PARAM))
            .unwrap_or_default();
        serde_json::json!({
            "user": user,
            "password": password,
            "token": token,
            "ip": req.ip.to_string(),
            "action": req.action.as_str(),
            "path": req.path,
            "protocol": req.protocol.as_str(),
            "id": req.id,
            "query": req.query,
        })
    }

    pub(crate) async fn authorize(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        if rules::any_allows(&self.exclude, req.action, req.path) {
            return Ok(());
        }
        let Some(client) = &self.client else {
            return Err(AuthError::Hook("no HTTP client".to_string()));
        };
        let answer = client.post(&self.url).json(&Self::body(req)).send().await;
        let res = answer.map_err(|e| {
            // Neither our text nor reqwest's may show credentials in the hook's URL.
            let url = crate::config::redact_password(&self.url);
            AuthError::Hook(format!("{url}: {}", e.without_url()))
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        if req.credentials.is_none() {
            return Err(AuthError::Missing);
        }
        // A short excerpt of the body helps whoever reads the log; one chunk is plenty.
        let mut res = res;
        let chunk = res.chunk().await.ok().flatten().unwrap_or_default();
        let text = String::from_utf8_lossy(&chunk[..chunk.len().min(400)]);
        let excerpt: String = text.chars().take(200).collect();
        let excerpt = excerpt.trim();
        Err(AuthError::Denied(if excerpt.is_empty() {
            format!("authHTTPAddress answered {status}")
        } else {
            format!("authHTTPAddress answered {status}: {excerpt}")
        }))
    }
}
