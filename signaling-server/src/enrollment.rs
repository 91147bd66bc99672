//! Who may join which session: the SQLite roster, an optional LMS hook, development mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_wire::{ErrorCode, Role};
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

use crate::auth::{HandshakeIdentity, Identity};
use crate::error::Refusal;
use crate::store::Store;

/// Asks the LMS: POST `{sessionId, userId}` → 200 `{enrolled, role?}`, 404 for an unknown
/// session. Each request is signed: `X-Classroom-Timestamp: <unix seconds>` and
/// `X-Classroom-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
/// https only (unless allowed), no redirects followed, answers of at most
/// [`MAX_ANSWER_BYTES`], cached for [`ANSWER_TTL`], at most [`MAX_IN_FLIGHT`] requests at once.
pub(crate) struct EnrollmentHook {
    client: reqwest::Client,
    url: String,
    /// The URL as logged: no query (it may carry a key) and no user information.
    shown: String,
    secret: Vec<u8>,
    in_flight: tokio::sync::Semaphore,
    cache: DashMap<(String, String), (Instant, HookAnswer)>,
}

/// The largest answer read from the LMS.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// How long an answer is reused for the same session and user.
pub(crate) const ANSWER_TTL: Duration = Duration::from_secs(30);
/// Requests to the LMS at once; more wait (up to the request timeout) for a place.
pub(crate) const MAX_IN_FLIGHT: usize = 32;
/// Cached answers kept at most; beyond, the cache starts over.
const MAX_CACHED: usize = 10_000;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookAnswer {
    Enrolled(Option<Role>),
    NotEnrolled,
    NoSuchSession,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HookRequest<'a> {
    session_id: &'a str,
    user_id: &'a str,
}

#[derive(Deserialize)]
struct HookResponse {
    enrolled: bool,
    #[serde(default)]
    role: Option<Role>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HookConfigError {
    #[error("the enrollment hook must be an https:// URL (or allow http explicitly): {0}")]
    NotHttps(String),
    #[error("the enrollment hook URL is not valid: {0}")]
    BadUrl(String),
    #[error("cannot build the enrollment hook's HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The signature header's value for `body` sent at `timestamp`.
pub(crate) fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + bytes.len() * 2);
    hex.push_str("sha256=");
    for byte in bytes {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Checks a hook URL (https, or http when allowed); returns it as it may be logged: without
/// its query (which may carry a key) and user information.
pub(crate) fn check_hook_url(url: &str, allow_http: bool) -> Result<String, HookConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| HookConfigError::BadUrl(e.to_string()))?;
    let shown = format!(
        "{}://{}{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or(""),
        parsed.path()
    );
    match parsed.scheme() {
        "https" => Ok(shown),
        "http" if allow_http => Ok(shown),
        _ => Err(HookConfigError::NotHttps(shown)),
    }
}

impl EnrollmentHook {
    pub fn new(url: String, secret: &str, allow_http: bool) -> Result<Self, HookConfigError> {
        let shown = check_hook_url(&url, allow_http)?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(EnrollmentHook {
            client,
            url,
            shown,
            secret: secret.as_bytes().to_vec(),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            cache: DashMap::new(),
        })
    }

    pub async fn check(&self, session_id: &str, user_id: &str) -> Result<HookAnswer, Refusal> {
        let key = (session_id.to_owned(), user_id.to_owned());
        if let Some(hit) = self.cache.get(&key)
            && hit.0.elapsed() < ANSWER_TTL
        {
            return Ok(hit.1);
        }
        let answer = self.ask(session_id, user_id).await?;
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(key, (Instant::now(), answer));
        Ok(answer)
    }

    async fn ask(&self, session_id: &str, user_id: &str) -> Result<HookAnswer, Refusal> {
        let unavailable = |why: String| {
            tracing::warn!(url = %self.shown, %why, "enrollment hook failed");
            Refusal::new(
                ErrorCode::Internal,
                "the enrollment service is unavailable; try again shortly",
            )
        };
        let _place = tokio::time::timeout(TIMEOUT, self.in_flight.acquire())
            .await
            .map_err(|_| unavailable("too many requests in flight".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        let body = serde_json::to_vec(&HookRequest {
            session_id,
            user_id,
        })
        .map_err(|e| unavailable(e.to_string()))?;
        let timestamp = crate::auth::unix_now().as_secs();
        let mut response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-classroom-timestamp", timestamp.to_string())
            .header(
                "x-classroom-signature",
                signature(&self.secret, timestamp, &body),
            )
            .body(body)
            .send()
            .await
            // Without the URL: reqwest's error text names it, query included.
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(HookAnswer::NoSuchSession);
        }
        if !status.is_success() {
            return Err(unavailable(format!("status {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(unavailable("answer too large".into()));
        }
        let mut text = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?
        {
            if text.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(unavailable("answer too large".into()));
            }
            text.extend_from_slice(&chunk);
        }
        let body: HookResponse =
            serde_json::from_slice(&text).map_err(|e| unavailable(e.to_string()))?;
        Ok(if body.enrolled {
            HookAnswer::Enrolled(body.role)
        } else {
            HookAnswer::NotEnrolled
        })
    }
}

/// A join the gate let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Authorized {
    pub(crate) role: Role,
    /// On the class's roster (SQLite, or the LMS said enrolled).
    pub(crate) on_roster: bool,
}

pub(crate) struct Gate {
    pub store: Arc<Store>,
    pub hook: Option<EnrollmentHook>,
    pub auto_create_sessions: bool,
}

impl Gate {
    /// Decides whether `identity` may join `session_id`, and with which role: refused when an
    /// instructor barred them from it for now.
    pub(crate) async fn authorize(
        &self,
        handshake: &HandshakeIdentity,
        identity: &Identity,
        session_id: &str,
    ) -> Result<Authorized, Refusal> {
        let on_roster = |role: Role, enrolled: Option<Role>| Authorized {
            role,
            on_roster: enrolled.is_some(),
        };
        let store = self.store.clone();
        let (session, user) = (session_id.to_owned(), identity.user_id.clone());
        let now_ms = crate::auth::unix_now().as_millis() as u64;
        let (class_exists, enrolled, barred) = tokio::task::spawn_blocking(move || {
            let exists = store.class_exists(&session)?;
            let enrolled = if exists {
                store.enrollment(&session, &user)?
            } else {
                None
            };
            let barred = store.barred_until(&session, &user, now_ms)?;
            Ok::<_, crate::error::StoreError>((exists, enrolled, barred))
        })
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("roster lookup failed: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "roster lookup failed");
            Refusal::new(ErrorCode::Internal, "roster lookup failed")
        })?;

        if let Some(until) = barred {
            let minutes = until.saturating_sub(now_ms).div_ceil(60_000);
            return Err(Refusal::new(
                ErrorCode::Barred,
                format!(
                    "an instructor removed you from this class; you cannot join it again for \
                     {minutes} more minute(s)"
                ),
            ));
        }
        let unknown_session = || {
            Refusal::new(
                ErrorCode::SessionNotFound,
                format!("no class {session_id:?} on this server"),
            )
        };
        let not_enrolled = || {
            Refusal::new(
                ErrorCode::NotEnrolled,
                format!("{} is not enrolled in {session_id:?}", identity.user_id),
            )
        };
        match handshake {
            HandshakeIdentity::Anonymous => {
                if class_exists || self.auto_create_sessions {
                    Ok(on_roster(identity.role, enrolled))
                } else {
                    Err(unknown_session())
                }
            }
            HandshakeIdentity::Token { .. } => {
                if let Some(role) = enrolled {
                    return Ok(on_roster(role, enrolled));
                }
                if let Some(hook) = &self.hook {
                    return match hook.check(session_id, &identity.user_id).await? {
                        HookAnswer::Enrolled(role) => Ok(Authorized {
                            role: role.unwrap_or(identity.role),
                            on_roster: true,
                        }),
                        HookAnswer::NotEnrolled => Err(not_enrolled()),
                        HookAnswer::NoSuchSession if class_exists => Err(not_enrolled()),
                        HookAnswer::NoSuchSession => Err(unknown_session()),
                    };
                }
                if class_exists {
                    Err(not_enrolled())
                } else if self.auto_create_sessions {
                    Ok(on_roster(identity.role, None))
                } else {
                    Err(unknown_session())
                }
            }
        }
    }
}
