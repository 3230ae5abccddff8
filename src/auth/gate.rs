//! One place that turns an authorization result into what the protocols answer: the caller
//! gets `Ok` or the challenges for a 401, after the pause that slows password guessers.

use tracing::info;

use super::{Auth, AuthError, AuthRequest, Credentials};

/// A refused request: answer 401 with these `WWW-Authenticate` values and this message, or
/// 503 when `busy` (the credentials could not be checked now; retry later).
#[derive(Debug)]
pub struct Refusal {
    pub challenges: Vec<String>,
    pub message: &'static str,
    pub busy: bool,
}

/// Authorizes `req`; on failure waits out the limiter's pause (for this IP only) and returns
/// what to answer. The reason goes to the log, not to the client.
pub async fn check(auth: &Auth, req: &AuthRequest<'_>) -> Result<(), Refusal> {
    let err = match auth.authorize(req).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if matches!(err, AuthError::Busy) {
        return Err(Refusal {
            challenges: Vec::new(),
            message: "too many password checks at once; retry later",
            busy: true,
        });
    }
    let message = match &err {
        // A first request without credentials is normal (clients wait for the challenge).
        AuthError::Missing => "authentication required",
        AuthError::Denied(_) | AuthError::Hook(_) => {
            info!(ip = %req.ip, path = req.path, action = %req.action, reason = %err, "authentication failed");
            pause(auth, req).await;
            "authentication failed"
        }
        AuthError::Busy => "too many password checks at once; retry later",
    };
    Err(Refusal {
        challenges: auth.challenges_for(req.protocol, req.rtsp_conn),
        message,
        busy: false,
    })
}

async fn pause(auth: &Auth, req: &AuthRequest<'_>) {
    let by_user = match req.credentials {
        Credentials::Basic { user, .. } => auth.note_user_failure(user),
        Credentials::Digest(d) => auth.note_user_failure(&d.username),
        Credentials::Bearer(_) | Credentials::None => std::time::Duration::ZERO,
    };
    let wait = auth.note_failure(req.ip).max(by_user);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}
