//! Identity: signed tokens from the handshake, development identities, TURN credentials.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use classroom_wire::{ErrorCode, IceServer, JoinSession, Role, TokenClaims};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::error::Refusal;

/// Who a connection is, once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub user_name: String,
    pub role: Role,
}

/// How the handshake identified the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeIdentity {
    /// A verified token.
    Token(Identity),
    /// No token, development mode: the identity comes from `join-session`.
    Anonymous,
}

pub struct TokenVerifier {
    key: Option<DecodingKey>,
    validation: Validation,
    dev_mode: bool,
}

impl TokenVerifier {
    pub fn new(secret: Option<&str>, dev_mode: bool) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenVerifier {
            key: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            validation,
            dev_mode,
        }
    }

    /// Checks the handshake's `auth.token` (absent or `null` when the client sent none).
    pub fn verify(&self, token: Option<&str>) -> Result<HandshakeIdentity, Refusal> {
        let Some(token) = token else {
            return if self.dev_mode {
                Ok(HandshakeIdentity::Anonymous)
            } else {
                Err(Refusal::new(
                    ErrorCode::Unauthorized,
                    "a sign-in token is required (auth: { token })",
                ))
            };
        };
        let Some(key) = &self.key else {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                "this server accepts no tokens (no secret configured)",
            ));
        };
        let data =
            jsonwebtoken::decode::<TokenClaims>(token, key, &self.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired".to_owned(),
                    ErrorKind::InvalidSignature => "token signature is invalid".to_owned(),
                    ErrorKind::InvalidAlgorithm => "token algorithm must be HS256".to_owned(),
                    other => format!("token rejected: {other:?}"),
                };
                Refusal::new(ErrorCode::Unauthorized, why)
            })?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() || claims.name.trim().is_empty() {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                "token has an empty sub or name",
            ));
        }
        Ok(HandshakeIdentity::Token(Identity {
            user_id: claims.sub,
            user_name: claims.name,
            role: claims.role,
        }))
    }
}

/// Takes the identity for a join: the token's if there is one, else the payload's (dev mode).
pub fn identity_for_join(
    handshake: &HandshakeIdentity,
    join: &JoinSession,
) -> Result<Identity, Refusal> {
    match handshake {
        HandshakeIdentity::Token(id) => Ok(id.clone()),
        HandshakeIdentity::Anonymous => {
            let user_id = join.user_id.as_deref().map(str::trim).unwrap_or_default();
            let user_name = join.user_name.as_deref().map(str::trim).unwrap_or_default();
            if user_id.is_empty() || user_name.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::InvalidPayload,
                    "join-session needs userId and userName",
                ));
            }
            Ok(Identity {
                user_id: user_id.to_owned(),
                user_name: user_name.to_owned(),
                role: if join.is_instructor {
                    Role::Instructor
                } else {
                    Role::Student
                },
            })
        }
    }
}

pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Issues a token (CLI `token issue`, tests, the embedded local server).
pub fn issue_token(
    secret: &str,
    identity: &Identity,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_now().as_secs();
    let claims = TokenClaims {
        sub: identity.user_id.clone(),
        name: identity.user_name.clone(),
        role: identity.role,
        exp: now + ttl.as_secs(),
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// TURN REST credentials (draft-uberti-behave-turn-rest, as coturn's `use-auth-secret`):
/// username `expiry:userId`, credential base64(HMAC-SHA1(secret, username)).
pub fn turn_credentials(secret: &str, urls: &[String], user_id: &str, ttl: Duration) -> IceServer {
    let expiry = unix_now().as_secs() + ttl.as_secs();
    let username = format!("{expiry}:{user_id}");
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    IceServer {
        urls: urls.to_vec(),
        username: Some(username),
        credential: Some(credential),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Identity {
        Identity {
            user_id: "u1".into(),
            user_name: "Ada".into(),
            role: Role::Instructor,
        }
    }

    #[test]
    fn a_token_signed_with_the_secret_is_accepted() {
        let token = issue_token("s3cret", &ada(), Duration::from_secs(60)).unwrap();
        let v = TokenVerifier::new(Some("s3cret"), false);
        assert_eq!(
            v.verify(Some(&token)).unwrap(),
            HandshakeIdentity::Token(ada())
        );
    }

    #[test]
    fn forged_and_expired_tokens_are_refused() {
        let forged = issue_token("other", &ada(), Duration::from_secs(60)).unwrap();
        let v = TokenVerifier::new(Some("s3cret"), false);
        let e = v.verify(Some(&forged)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert!(e.message.contains("signature"), "{e}");

        let claims = TokenClaims {
            sub: "u1".into(),
            name: "Ada".into(),
            role: Role::Student,
            exp: 1000,
            iat: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(
            v.verify(Some(&expired))
                .unwrap_err()
                .message
                .contains("expired")
        );
        assert!(v.verify(Some("not.a.jwt")).is_err());
    }

    #[test]
    fn no_token_is_anonymous_only_in_dev_mode() {
        assert_eq!(
            TokenVerifier::new(None, true).verify(None).unwrap(),
            HandshakeIdentity::Anonymous
        );
        assert_eq!(
            TokenVerifier::new(Some("s"), false)
                .verify(None)
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn turn_credentials_match_the_rest_scheme() {
        let ice = turn_credentials(
            "secret",
            &["turn:turn.example.org:3478".into()],
            "u1",
            Duration::from_secs(60),
        );
        let username = ice.username.unwrap();
        assert!(username.ends_with(":u1"));
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"secret").unwrap();
        mac.update(username.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(ice.credential.unwrap(), expected);
    }
}
