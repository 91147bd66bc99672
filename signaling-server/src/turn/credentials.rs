//! Who may allocate: the REST credentials the signaling server hands out on join
//! (draft-uberti-behave-turn-rest, coturn's `use-auth-secret`), checked here, and the nonces
//! the long-term mechanism (RFC 8489 §9.2) asks clients to echo.
//!
//! A username is `expiry:userId` (expiry in Unix seconds); its password is
//! base64(HMAC-SHA1(secret, username)), so this server and an external coturn given the same
//! secret accept the same credentials. The message-integrity key is
//! MD5(username ":" realm ":" password).

use base64::Engine;
use hmac::{Hmac, Mac};
use rtc_stun::crypto::{HashAlgorithm, RTCCrypto};

type HmacSha1 = Hmac<sha1::Sha1>;

/// How long a nonce is good for; an older one is answered 438 (Stale Nonce) with a new one.
pub(crate) const NONCE_LIFETIME_SECS: u64 = 600;

/// A username that passed the REST check: who it names and the key its messages are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    pub username: String,
    /// The user id after the expiry (the whole username when it has no `:`): quotas count per user.
    pub user: String,
    pub key: [u8; 16],
}

/// Why a username was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialError {
    /// Not `expiry:userId` with a number for the expiry.
    Malformed,
    Expired,
}

pub(crate) struct Credentials {
    secret: Vec<u8>,
    realm: String,
    nonce_key: [u8; 32],
    crypto: std::sync::Arc<dyn rtc_stun::crypto::RTCCryptoProvider>,
}

impl Credentials {
    pub fn new(secret: &str, realm: &str, nonce_key: [u8; 32]) -> Self {
        Credentials {
            secret: secret.as_bytes().to_vec(),
            realm: realm.to_string(),
            nonce_key,
            crypto: rtc_stun::crypto::default_provider()
                .expect("rtc-stun is built with its ring provider"),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub(crate) fn crypto(&self) -> &dyn RTCCrypto {
        self.crypto.crypto()
    }

    /// The password the REST scheme gives `username`.
    pub fn password(&self, username: &str) -> String {
        let mut mac = HmacSha1::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Checks `username`'s expiry against `unix_now` and derives its integrity key.
    pub fn check(&self, username: &str, unix_now: u64) -> Result<Credential, CredentialError> {
        let (expiry, user) = match username.split_once(':') {
            Some((expiry, user)) => (expiry, user),
            None => (username, username),
        };
        let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
        if expiry < unix_now {
            return Err(CredentialError::Expired);
        }
        let password = self.password(username);
        let text = format!("{username}:{}:{password}", self.realm);
        let digest = self
            .crypto()
            .hash(HashAlgorithm::Md5, text.as_bytes())
            .map_err(|_| CredentialError::Malformed)?;
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Ok(Credential {
            username: username.to_string(),
            user: if user.is_empty() { username } else { user }.to_string(),
            key,
        })
    }

    /// A nonce for now: the time it was made and a MAC over it, so any nonce can be checked
    /// without keeping state.
    pub fn nonce(&self, unix_now: u64) -> String {
        format!("{unix_now:016x}{}", self.nonce_mac(unix_now))
    }

    /// Whether `nonce` is one of ours and young enough.
    pub fn nonce_is_fresh(&self, nonce: &str, unix_now: u64) -> bool {
        if nonce.len() != 32 || !nonce.is_ascii() {
            return false;
        }
        let Ok(made) = u64::from_str_radix(&nonce[..16], 16) else {
            return false;
        };
        rtc_stun::crypto::constant_time_eq(nonce[16..].as_bytes(), self.nonce_mac(made).as_bytes())
            && made <= unix_now
            && unix_now - made < NONCE_LIFETIME_SECS
    }

    fn nonce_mac(&self, made: u64) -> String {
        let mut mac = HmacSha1::new_from_slice(&self.nonce_key).expect("HMAC takes any key length");
        mac.update(&made.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        tag[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials::new("north-wind-secret", "classroom", [7; 32])
    }

    #[test]
    fn the_rest_password_matches_what_the_signaling_server_hands_out() {
        let ice = crate::auth::turn_credentials(
            "north-wind-secret",
            &["turn:198.51.100.1:3478".into()],
            "u1",
            std::time::Duration::from_secs(600),
            None,
        );
        let c = credentials();
        let username = ice.username.unwrap();
        assert_eq!(c.password(&username), ice.credential.unwrap());
        let checked = c.check(&username, 0).unwrap();
        assert_eq!(checked.user, "u1");
    }

    #[test]
    fn expired_and_malformed_usernames_are_refused() {
        let c = credentials();
        assert_eq!(c.check("99:u1", 100), Err(CredentialError::Expired));
        assert_eq!(c.check("soon:u1", 100), Err(CredentialError::Malformed));
        assert!(c.check("100:u1", 100).is_ok());
    }

    #[test]
    fn nonces_expire_and_cannot_be_made_up() {
        let c = credentials();
        let n = c.nonce(1000);
        assert!(c.nonce_is_fresh(&n, 1000));
        assert!(c.nonce_is_fresh(&n, 1000 + NONCE_LIFETIME_SECS - 1));
        assert!(!c.nonce_is_fresh(&n, 1000 + NONCE_LIFETIME_SECS));
        let forged = format!("{:016x}{}", 2000u64, &n[16..]);
        assert!(!c.nonce_is_fresh(&forged, 2000));
        assert!(!c.nonce_is_fresh("short", 1000));
        assert!(!Credentials::new("x", "classroom", [8; 32]).nonce_is_fresh(&n, 1000));
    }
}
