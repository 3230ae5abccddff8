//! WebRTC: WHEP readers (and later WHIP publishers) over one shared UDP port.

pub mod dtls_sniff;
pub mod engine;
pub mod http;
pub mod sdp;
pub mod session;
pub mod whep;

use std::sync::Arc;

use crate::config::Config;
use crate::path::{PathError, PathManager};
use engine::Engine;
use session::Sessions;

pub struct WebrtcServer {
    pub config: Arc<Config>,
    pub engine: Engine,
    pub sessions: Arc<Sessions>,
    pub paths: Arc<PathManager>,
}

/// An HTTP-facing error: each maps to a status and a plain-text reason.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed here; allowed: {0}")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::NotFound(_) => 404,
            HttpError::MethodNotAllowed(_) => 405,
            HttpError::NotAcceptable(_) => 406,
            HttpError::Conflict(_) => 409,
            HttpError::PreconditionFailed(_) => 412,
            HttpError::UnsupportedMediaType(_) => 415,
            HttpError::Internal(_) => 500,
        }
    }
}

impl From<PathError> for HttpError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::BadName(_) => HttpError::BadRequest(e.to_string()),
            PathError::NotConfigured(_) | PathError::NoStream(_) => {
                HttpError::NotFound(e.to_string())
            }
            PathError::Busy(_) | PathError::NotPublishable(..) => {
                HttpError::Conflict(e.to_string())
            }
        }
    }
}

impl WebrtcServer {
    pub async fn new(config: Arc<Config>, paths: Arc<PathManager>) -> anyhow::Result<Arc<Self>> {
        let engine = Engine::bind(&config).await?;
        Ok(Arc::new(WebrtcServer {
            config,
            engine,
            sessions: Arc::new(Sessions::default()),
            paths,
        }))
    }
}
