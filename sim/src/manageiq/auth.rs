//! Authentication as manageiq-api does it: pre-emptive HTTP Basic (no
//! `WWW-Authenticate` challenge), or an `X-Auth-Token` from `GET /api/auth`
//! whose expiry slides with every use; `X-MIQ-Group` must name the user's group.

use super::error::MiqError;
use axum::http::HeaderMap;
use base64::Engine;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Authenticator {
    user: String,
    password: String,
    group: String,
    ttl: Duration,
    tokens: Mutex<HashMap<String, Session>>,
}

struct Session {
    userid: String,
    expires: Instant,
}

/// A freshly issued token, as `GET /api/auth` reports it.
pub struct Issued {
    pub token: String,
    pub ttl_secs: u64,
    pub expires_on: DateTime<Utc>,
}

impl Authenticator {
    pub fn new(user: &str, password: &str, group: &str, ttl: Duration) -> Self {
        Authenticator {
            user: user.to_owned(),
            password: password.to_owned(),
            group: group.to_owned(),
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The user id a request authenticates as, or the 401 the real server sends.
    pub fn check(&self, headers: &HeaderMap) -> Result<String, MiqError> {
        let userid = if let Some(token) = header(headers, "x-auth-token") {
            self.check_token(
                token,
                header(headers, "x-auth-skip-token-renewal") == Some("true"),
            )?
        } else {
            self.check_basic(header(headers, "authorization"))?
        };
        if let Some(group) = header(headers, "x-miq-group") {
            let group = percent_decode(group);
            if group != self.group {
                return Err(MiqError::unauthorized(format!(
                    "Invalid Authorization Group {group} specified"
                )));
            }
        }
        Ok(userid)
    }

    fn check_token(&self, token: &str, skip_renewal: bool) -> Result<String, MiqError> {
        let invalid =
            || MiqError::unauthorized(format!("Invalid Authentication Token {token} specified"));
        let mut tokens = self.tokens.lock().map_err(|_| invalid())?;
        let now = Instant::now();
        tokens.retain(|_, s| s.expires > now);
        let session = tokens.get_mut(token).ok_or_else(invalid)?;
        if !skip_renewal {
            session.expires = now + self.ttl;
        }
        Ok(session.userid.clone())
    }

    fn check_basic(&self, authorization: Option<&str>) -> Result<String, MiqError> {
        let failed = || MiqError::unauthorized("Authentication failed");
        let encoded = authorization
            .and_then(|a| {
                a.strip_prefix("Basic ")
                    .or_else(|| a.strip_prefix("basic "))
            })
            .ok_or_else(failed)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| failed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| failed())?;
        let (user, password) = decoded.split_once(':').ok_or_else(failed)?;
        if user == self.user && password == self.password {
            Ok(user.to_owned())
        } else {
            Err(failed())
        }
    }

    pub fn issue(&self, userid: &str) -> Issued {
        let token = uuid::Uuid::new_v4().simple().to_string();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(
                token.clone(),
                Session {
                    userid: userid.to_owned(),
                    expires: Instant::now() + self.ttl,
                },
            );
        }
        Issued {
            token,
            ttl_secs: self.ttl.as_secs(),
            expires_on: Utc::now() + self.ttl,
        }
    }

    /// `DELETE /api/auth`: forgets the token; false when it was unknown.
    pub fn revoke(&self, token: &str) -> bool {
        self.tokens
            .lock()
            .map(|mut t| t.remove(token).is_some())
            .unwrap_or(false)
    }
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `X-MIQ-Group` is URL-encoded when the group name is not ASCII.
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("g={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(ttl: Duration) -> Authenticator {
        Authenticator::new("admin", "smartvm", "EvmGroup-super_administrator", ttl)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(*k, v);
            }
        }
        h
    }

    #[test]
    fn basic_and_token() {
        let a = auth(Duration::from_secs(600));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:smartvm")
        );
        assert_eq!(
            a.check(&headers(&[("authorization", &basic)]))
                .ok()
                .as_deref(),
            Some("admin")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:x")
        );
        let err = a.check(&headers(&[("authorization", &bad)])).err();
        assert_eq!(
            err.map(|e| e.message).as_deref(),
            Some("Authentication failed")
        );
        let issued = a.issue("admin");
        assert!(a
            .check(&headers(&[("x-auth-token", &issued.token)]))
            .is_ok());
        assert!(a.revoke(&issued.token));
        let err = a.check(&headers(&[("x-auth-token", &issued.token)])).err();
        assert_eq!(
            err.map(|e| e.message),
            Some(format!(
                "Invalid Authentication Token {} specified",
                issued.token
            ))
        );
    }

    #[test]
    fn tokens_expire_and_groups_are_checked() {
        let a = auth(Duration::from_millis(30));
        let issued = a.issue("admin");
        std::thread::sleep(Duration::from_millis(60));
        assert!(a
            .check(&headers(&[("x-auth-token", &issued.token)]))
            .is_err());
        let issued = a.issue("admin");
        let ok = headers(&[
            ("x-auth-token", &issued.token),
            ("x-miq-group", "EvmGroup-super_administrator"),
        ]);
        assert!(a.check(&ok).is_ok());
        let wrong = headers(&[("x-auth-token", &issued.token), ("x-miq-group", "other")]);
        assert!(a.check(&wrong).is_err());
    }
}
