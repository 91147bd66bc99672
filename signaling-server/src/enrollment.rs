//! Who may join which session: the SQLite roster, an optional LMS hook, development mode.

use std::sync::Arc;
use std::time::Duration;

use classroom_wire::{ErrorCode, Role};
use serde::{Deserialize, Serialize};

use crate::auth::{HandshakeIdentity, Identity};
use crate::error::Refusal;
use crate::store::Store;

/// Asks the LMS: POST `{sessionId, userId}` → 200 `{enrolled, role?}`, 404 for an unknown session.
pub struct EnrollmentHook {
    client: reqwest::Client,
    url: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HookAnswer {
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

impl EnrollmentHook {
    pub fn new(url: String) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(EnrollmentHook { client, url })
    }

    pub async fn check(&self, session_id: &str, user_id: &str) -> Result<HookAnswer, Refusal> {
        let unavailable = |why: String| {
            tracing::warn!(url = %self.url, %why, "enrollment hook failed");
            Refusal::new(
                ErrorCode::Internal,
                "the enrollment service is unavailable; try again shortly",
            )
        };
        let response = self
            .client
            .post(&self.url)
            .json(&HookRequest {
                session_id,
                user_id,
            })
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(HookAnswer::NoSuchSession),
            s if s.is_success() => {
                let body: HookResponse = response
                    .json()
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                Ok(if body.enrolled {
                    HookAnswer::Enrolled(body.role)
                } else {
                    HookAnswer::NotEnrolled
                })
            }
            s => Err(unavailable(format!("status {s}"))),
        }
    }
}

pub struct Gate {
    pub store: Arc<Store>,
    pub hook: Option<EnrollmentHook>,
    pub auto_create_sessions: bool,
}

impl Gate {
    /// Decides whether `identity` may join `session_id`, and with which role.
    pub async fn authorize(
        &self,
        handshake: &HandshakeIdentity,
        identity: &Identity,
        session_id: &str,
    ) -> Result<Role, Refusal> {
        let store = self.store.clone();
        let (session, user) = (session_id.to_owned(), identity.user_id.clone());
        let (class_exists, enrolled) = tokio::task::spawn_blocking(move || {
            let exists = store.class_exists(&session)?;
            let enrolled = if exists {
                store.enrollment(&session, &user)?
            } else {
                None
            };
            Ok::<_, crate::error::StoreError>((exists, enrolled))
        })
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("roster lookup failed: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "roster lookup failed");
            Refusal::new(ErrorCode::Internal, "roster lookup failed")
        })?;

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
                    Ok(identity.role)
                } else {
                    Err(unknown_session())
                }
            }
            HandshakeIdentity::Token { .. } => {
                if let Some(role) = enrolled {
                    return Ok(role);
                }
                if let Some(hook) = &self.hook {
                    return match hook.check(session_id, &identity.user_id).await? {
                        HookAnswer::Enrolled(role) => Ok(role.unwrap_or(identity.role)),
                        HookAnswer::NotEnrolled => Err(not_enrolled()),
                        HookAnswer::NoSuchSession if class_exists => Err(not_enrolled()),
                        HookAnswer::NoSuchSession => Err(unknown_session()),
                    };
                }
                if class_exists {
                    Err(not_enrolled())
                } else if self.auto_create_sessions {
                    Ok(identity.role)
                } else {
                    Err(unknown_session())
                }
            }
        }
    }
}
