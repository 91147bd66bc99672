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
pub(crate) enum HandshakeIdentity {
    /// A verified token, valid until `expires_at` (seconds since the Unix epoch).
    Token { identity: Identity, expires_at: u64 },
    /// No token, development mode: the identity comes from `join-session`.
    Anonymous,
}

impl HandshakeIdentity {
    /// When the connection's right to be here ends (a token's expiry); `None` in dev mode.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        match self {
            HandshakeIdentity::Token { expires_at, .. } => Some(*expires_at),
            HandshakeIdentity::Anonymous => None,
        }
    }
}

/// What a token must satisfy besides its HS256 signature, `exp` and `sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set; a token with an `aud` is refused when none is set.
    pub audience: Option<String>,
    /// The longest a token may live: `exp - iat`, or `exp - now` without `iat`.
    pub max_lifetime: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        TokenRules {
            issuer: None,
            audience: None,
            max_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// Clock skew allowed between the LMS and this server, for `exp`, `nbf` and the lifetime.
const LEEWAY_SECS: u64 = 30;

pub(crate) struct TokenVerifier {
    key: Option<DecodingKey>,
    validation: Validation,
    max_lifetime: Duration,
    dev_mode: bool,
}

impl TokenVerifier {
    #[cfg(test)]
    pub(crate) fn new(secret: Option<&str>, dev_mode: bool) -> Self {
        Self::with_rules(secret, dev_mode, &TokenRules::default())
    }

    pub(crate) fn with_rules(secret: Option<&str>, dev_mode: bool, rules: &TokenRules) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &rules.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        TokenVerifier {
            key: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            validation,
            max_lifetime: rules.max_lifetime,
            dev_mode,
        }
    }

    /// Checks the handshake's `auth.token` (absent or `null` when the client sent none).
    pub(crate) fn verify(&self, token: Option<&str>) -> Result<HandshakeIdentity, Refusal> {
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
                    ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_owned(),
                    ErrorKind::InvalidSignature => "token signature is invalid".to_owned(),
                    ErrorKind::InvalidAlgorithm => "token algorithm must be HS256".to_owned(),
                    ErrorKind::InvalidIssuer => "token issuer (iss) is not accepted".to_owned(),
                    ErrorKind::InvalidAudience => {
                        "token audience (aud) is not this server".to_owned()
                    }
                    ErrorKind::MissingRequiredClaim(claim) => {
                        format!("token has no {claim} claim")
                    }
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
        let issued = claims.iat.unwrap_or_else(|| unix_now().as_secs());
        let lifetime = claims.exp.saturating_sub(issued);
        if lifetime > self.max_lifetime.as_secs() + LEEWAY_SECS {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                format!(
                    "token lives {lifetime} s, longer than this server allows ({} s)",
                    self.max_lifetime.as_secs()
                ),
            ));
        }
        Ok(HandshakeIdentity::Token {
            identity: Identity {
                user_id: claims.sub,
                user_name: claims.name,
                role: claims.role,
            },
            expires_at: claims.exp,
        })
    }
}

/// Takes the identity for a join: the token's if there is one, else the payload's (dev mode).
pub(crate) fn identity_for_join(
    handshake: &HandshakeIdentity,
    join: &JoinSession,
) -> Result<Identity, Refusal> {
    match handshake {
        HandshakeIdentity::Token { identity, .. } => Ok(identity.clone()),
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

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(crate) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Issues a token (CLI `token`, tests) with the issuer and audience the rules require.
pub fn issue_token(
    secret: &str,
    identity: &Identity,
    ttl: Duration,
    rules: &TokenRules,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_now().as_secs();
    let claims = TokenClaims {
        sub: identity.user_id.clone(),
        name: identity.user_name.clone(),
        role: identity.role,
        exp: now + ttl.as_secs(),
        iat: Some(now),
        nbf: None,
        iss: rules.issuer.clone(),
        aud: rules.audience.clone(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// TURN REST credentials (draft-uberti-behave-turn-rest, as coturn's `use-auth-secret`):
/// username `expiry:userId`, credential base64(HMAC-SHA1(secret, username)). They expire after
/// `ttl`, and no later than `not_after` (the sign-in token's expiry), so they do not outlive
/// the right to be in the class.
pub(crate) fn turn_credentials(
    secret: &str,
    urls: &[String],
    user_id: &str,
    ttl: Duration,
    not_after: Option<u64>,
) -> IceServer {
    let mut expiry = unix_now().as_secs() + ttl.as_secs();
    if let Some(limit) = not_after {
        expiry = expiry.min(limit);
    }
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
        let token = issue_token(
            "s3cret",
            &ada(),
            Duration::from_secs(60),
            &TokenRules::default(),
        )
        .unwrap();
        let v = TokenVerifier::new(Some("s3cret"), false);
        let HandshakeIdentity::Token {
            identity,
            expires_at,
        } = v.verify(Some(&token)).unwrap()
        else {
            panic!("a token identity")
        };
        assert_eq!(identity, ada());
        assert!(expires_at.abs_diff(unix_now().as_secs() + 60) <= 1);
    }

    #[test]
    fn forged_and_expired_tokens_are_refused() {
        let forged = issue_token(
            "other",
            &ada(),
            Duration::from_secs(60),
            &TokenRules::default(),
        )
        .unwrap();
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
            nbf: None,
            iss: None,
            aud: None,
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
            None,
        );
        let username = ice.username.unwrap();
        assert!(username.ends_with(":u1"));
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"secret").unwrap();
        mac.update(username.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(ice.credential.unwrap(), expected);
    }

    fn claims(exp_in: i64) -> TokenClaims {
        let now = unix_now().as_secs() as i64;
        TokenClaims {
            sub: "u1".into(),
            name: "Ada".into(),
            role: Role::Student,
            exp: (now + exp_in) as u64,
            iat: Some(now as u64),
            nbf: None,
            iss: None,
            aud: None,
        }
    }

    fn sign(claims: &TokenClaims, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn refusal(v: &TokenVerifier, token: &str) -> String {
        v.verify(Some(token)).unwrap_err().message
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let v = TokenVerifier::new(Some("s3cret"), false);
        let mut c = claims(600);
        c.nbf = Some(unix_now().as_secs() + 300);
        assert!(refusal(&v, &sign(&c, Algorithm::HS256, b"s3cret")).contains("nbf"));
        c.nbf = Some(unix_now().as_secs() - 10);
        assert!(
            v.verify(Some(&sign(&c, Algorithm::HS256, b"s3cret")))
                .is_ok()
        );
    }

    #[test]
    fn issuer_and_audience_are_required_when_configured() {
        let rules = TokenRules {
            issuer: Some("https://lms.example".into()),
            audience: Some("classroom".into()),
            ..TokenRules::default()
        };
        let v = TokenVerifier::with_rules(Some("s3cret"), false, &rules);
        let mut c = claims(600);
        c.aud = Some("classroom".into());
        assert!(refusal(&v, &sign(&c, Algorithm::HS256, b"s3cret")).contains("no iss"));
        c.aud = None;
        c.iss = Some("https://lms.example".into());
        assert!(refusal(&v, &sign(&c, Algorithm::HS256, b"s3cret")).contains("no aud"));
        c.iss = Some("https://evil.example".into());
        c.aud = Some("classroom".into());
        assert!(refusal(&v, &sign(&c, Algorithm::HS256, b"s3cret")).contains("issuer"));
        c.iss = Some("https://lms.example".into());
        c.aud = Some("another-app".into());
        assert!(refusal(&v, &sign(&c, Algorithm::HS256, b"s3cret")).contains("audience"));
        c.aud = Some("classroom".into());
        assert!(
            v.verify(Some(&sign(&c, Algorithm::HS256, b"s3cret")))
                .is_ok()
        );
        // Without a configured audience, a token meant for another service is refused.
        let plain = TokenVerifier::new(Some("s3cret"), false);
        assert!(refusal(&plain, &sign(&c, Algorithm::HS256, b"s3cret")).contains("audience"));
    }

    #[test]
    fn a_token_living_longer_than_allowed_is_refused() {
        let rules = TokenRules {
            max_lifetime: Duration::from_secs(3600),
            ..TokenRules::default()
        };
        let v = TokenVerifier::with_rules(Some("s3cret"), false, &rules);
        assert!(
            v.verify(Some(&sign(&claims(3600), Algorithm::HS256, b"s3cret")))
                .is_ok()
        );
        let long = sign(&claims(30 * 24 * 3600), Algorithm::HS256, b"s3cret");
        assert!(refusal(&v, &long).contains("longer than this server allows"));
        let mut no_iat = claims(30 * 24 * 3600);
        no_iat.iat = None;
        assert!(refusal(&v, &sign(&no_iat, Algorithm::HS256, b"s3cret")).contains("longer"));
    }

    #[test]
    fn tokens_with_alg_none_or_another_algorithm_are_refused() {
        let v = TokenVerifier::new(Some("s3cret"), false);
        let c = claims(600);
        assert!(refusal(&v, &sign(&c, Algorithm::HS512, b"s3cret")).contains("HS256"));
        // alg "none": a header and claims with an empty signature.
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(serde_json::to_value(&c).unwrap())
        );
        assert!(v.verify(Some(&none)).is_err());
        // RS256 key confusion: the shared secret used as an HMAC key under another name.
        let rs = format!(
            "{}.{}.{}",
            b64(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            b64(serde_json::to_value(&c).unwrap()),
            sign(&c, Algorithm::HS256, b"s3cret")
                .rsplit('.')
                .next()
                .unwrap()
        );
        assert!(v.verify(Some(&rs)).is_err());
    }

    #[test]
    fn turn_credentials_do_not_outlive_the_token() {
        let soon = unix_now().as_secs() + 120;
        let ice = turn_credentials(
            "secret",
            &["turn:turn.example.org:3478".into()],
            "u1",
            Duration::from_secs(6 * 3600),
            Some(soon),
        );
        assert_eq!(ice.username.unwrap(), format!("{soon}:u1"));
    }
}
