//! Who may call: pre-emptive Basic auth for the configured users, Bearer tokens issued by
//! `POST /oauth_token.do` (password, client_credentials and refresh_token grants) that expire
//! after the configured lifetime.
//!
//! Time is passed in (`now`) rather than read here, so expiry is testable without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

use super::api::ApiResponse;
use super::{RouteState, SnowConfig};

/// Refresh tokens live 100 days, the instance default.
const REFRESH_TTL: Duration = Duration::from_secs(100 * 24 * 3600);

/// Credentials and the tokens handed out.
pub(crate) struct Auth {
    users: Vec<(String, String)>,
    clients: Vec<(String, String)>,
    ttl: Duration,
    tokens: Mutex<Tokens>,
}

#[derive(Default)]
struct Tokens {
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
}

struct Grant {
    user: String,
    client_id: String,
    expires: Instant,
}

/// A successful grant, as `/oauth_token.do` returns it.
#[derive(Debug)]
pub(crate) struct IssuedToken {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// A refused grant: status and the JSON body an instance sends.
#[derive(Debug, PartialEq)]
pub(crate) struct OAuthError {
    pub status: StatusCode,
    pub body: Value,
}

impl OAuthError {
    fn access_denied() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            body: json!({"error": "server_error", "error_description": "access_denied"}),
        }
    }

    fn unsupported_grant(grant_type: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "error": "unsupported_grant_type",
                "error_description": format!("unsupported grant_type `{grant_type}`"),
            }),
        }
    }
}

fn new_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 86)
}

/// `(user, password)` from an `Authorization: Basic ...` header.
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn holds(pairs: &[(String, String)], name: &str, secret: &str) -> bool {
    pairs.iter().any(|(n, s)| n == name && s == secret)
}

impl Auth {
    pub(crate) fn new(cfg: &SnowConfig) -> Self {
        Self {
            users: cfg.users.clone(),
            clients: cfg.oauth_clients.clone(),
            ttl: Duration::from_secs(cfg.token_ttl_secs),
            tokens: Mutex::default(),
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The user an `Authorization` header authenticates, if it does.
    pub(crate) fn authenticate(&self, authorization: Option<&str>, now: Instant) -> Option<String> {
        let authorization = authorization?;
        if let Some(token) = bearer_token(authorization) {
            let tokens = self.tokens();
            let grant = tokens.access.get(token)?;
            return (grant.expires > now).then(|| grant.user.clone());
        }
        let (user, password) = basic_credentials(authorization)?;
        holds(&self.users, &user, &password).then_some(user)
    }

    /// Serves a token request: `form` is the decoded form body; client credentials come from
    /// the form or, as some clients send them, from Basic auth.
    pub(crate) fn grant(
        &self,
        form: &[(String, String)],
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<IssuedToken, OAuthError> {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let (client_id, client_secret) = match (field("client_id"), field("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => authorization
                .and_then(basic_credentials)
                .ok_or_else(OAuthError::access_denied)?,
        };
        if !holds(&self.clients, &client_id, &client_secret) {
            return Err(OAuthError::access_denied());
        }
        let mut tokens = self.tokens();
        tokens.access.retain(|_, g| g.expires > now);
        tokens.refresh.retain(|_, g| g.expires > now);
        let grant_type = field("grant_type").unwrap_or("");
        let (user, refresh_token) = match grant_type {
            "password" => {
                let user = field("username").unwrap_or("");
                if !holds(&self.users, user, field("password").unwrap_or("")) {
                    return Err(OAuthError::access_denied());
                }
                (user.to_owned(), None)
            }
            // The client acts as itself: its id is the user its writes are stamped with.
            "client_credentials" => (client_id.clone(), None),
            "refresh_token" => {
                let token = field("refresh_token").unwrap_or("");
                let grant = tokens
                    .refresh
                    .get(token)
                    .filter(|g| g.client_id == client_id)
                    .ok_or_else(OAuthError::access_denied)?;
                (grant.user.clone(), Some(token.to_owned()))
            }
            other => return Err(OAuthError::unsupported_grant(other)),
        };
        let refresh_token = refresh_token.unwrap_or_else(|| {
            let token = new_token();
            tokens.refresh.insert(
                token.clone(),
                Grant {
                    user: user.clone(),
                    client_id: client_id.clone(),
                    expires: now + REFRESH_TTL,
                },
            );
            token
        });
        let access_token = new_token();
        tokens.access.insert(
            access_token.clone(),
            Grant {
                user,
                client_id,
                expires: now + self.ttl,
            },
        );
        Ok(IssuedToken {
            access_token,
            refresh_token,
            expires_in: self.ttl.as_secs(),
        })
    }
}

/// 401 with the envelope an instance sends for missing or bad credentials.
pub(crate) fn unauthenticated() -> ApiResponse {
    ApiResponse::error(
        StatusCode::UNAUTHORIZED,
        "User Not Authenticated",
        "Required to provide Auth information",
    )
    .with_header("WWW-Authenticate", "BASIC realm=\"Service-now\"".to_owned())
}

/// `POST /oauth_token.do`.
pub(crate) async fn token_endpoint(
    State(state): State<RouteState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state
        .snow
        .inner
        .auth
        .grant(&form, authorization, Instant::now())
    {
        Ok(token) => axum::Json(json!({
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": token.expires_in,
        }))
        .into_response(),
        Err(err) => (err.status, axum::Json(err.body)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(ttl: u64) -> Auth {
        Auth::new(&SnowConfig {
            token_ttl_secs: ttl,
            ..SnowConfig::default()
        })
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    const CLIENT: [(&str, &str); 2] =
        [("client_id", "cmdb-reconcile"), ("client_secret", "secret")];

    #[test]
    fn basic_auth_checks_the_configured_users() {
        let auth = auth(60);
        let now = Instant::now();
        assert_eq!(
            auth.authenticate(Some(&basic("admin", "admin")), now),
            Some("admin".into())
        );
        assert_eq!(auth.authenticate(Some(&basic("admin", "nope")), now), None);
        assert_eq!(auth.authenticate(Some("Basic !!!"), now), None);
        assert_eq!(auth.authenticate(Some("Digest x"), now), None);
        assert_eq!(auth.authenticate(None, now), None);
    }

    #[test]
    fn password_grant_issues_a_bearer_token_that_expires() {
        let auth = auth(60);
        let now = Instant::now();
        let mut f = form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "admin"),
        ]);
        f.extend(form(&CLIENT));
        let token = auth.grant(&f, None, now).expect("granted");
        assert_eq!(token.expires_in, 60);
        assert_eq!(token.access_token.len(), 86);
        let bearer = format!("Bearer {}", token.access_token);
        assert_eq!(
            auth.authenticate(Some(&bearer), now + Duration::from_secs(59)),
            Some("admin".into())
        );
        assert_eq!(
            auth.authenticate(Some(&bearer), now + Duration::from_secs(60)),
            None
        );
        assert_eq!(auth.authenticate(Some("Bearer forged"), now), None);
    }

    #[test]
    fn bad_credentials_are_access_denied() {
        let auth = auth(60);
        let now = Instant::now();
        let denied = Err(OAuthError::access_denied());
        let mut wrong_user = form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "x"),
        ]);
        wrong_user.extend(form(&CLIENT));
        assert_eq!(auth.grant(&wrong_user, None, now).map(|_| ()), denied);
        let wrong_client = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cmdb-reconcile"),
            ("client_secret", "guess"),
        ]);
        assert_eq!(auth.grant(&wrong_client, None, now).map(|_| ()), denied);
        assert_eq!(
            auth.grant(&form(&[("grant_type", "client_credentials")]), None, now)
                .map(|_| ()),
            denied
        );
        let body = OAuthError::access_denied().body;
        assert_eq!(
            body,
            json!({"error": "server_error", "error_description": "access_denied"})
        );
        let mut odd = form(&[("grant_type", "implicit")]);
        odd.extend(form(&CLIENT));
        assert_eq!(
            auth.grant(&odd, None, now)
                .map(|_| ())
                .expect_err("refused")
                .status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn client_credentials_may_come_as_basic_auth() {
        let auth = auth(60);
        let now = Instant::now();
        let token = auth
            .grant(
                &form(&[("grant_type", "client_credentials")]),
                Some(&basic("cmdb-reconcile", "secret")),
                now,
            )
            .expect("granted");
        let bearer = format!("Bearer {}", token.access_token);
        assert_eq!(
            auth.authenticate(Some(&bearer), now),
            Some("cmdb-reconcile".into())
        );
    }

    #[test]
    fn refresh_grant_renews_access_for_the_same_user_and_client() {
        let auth = auth(10);
        let now = Instant::now();
        let mut f = form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "admin"),
        ]);
        f.extend(form(&CLIENT));
        let first = auth.grant(&f, None, now).expect("granted");
        let later = now + Duration::from_secs(30);
        let mut refresh = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first.refresh_token),
        ]);
        refresh.extend(form(&CLIENT));
        let second = auth.grant(&refresh, None, later).expect("refreshed");
        assert_eq!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {}", second.access_token)), later),
            Some("admin".into())
        );
        // An unknown refresh token, or one presented by another client, is refused.
        let mut forged = form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")]);
        forged.extend(form(&CLIENT));
        assert!(auth.grant(&forged, None, later).is_err());
        let other = Auth::new(&SnowConfig {
            oauth_clients: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            ..SnowConfig::default()
        });
        let mut f = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "a"),
            ("client_secret", "1"),
        ]);
        let token = other.grant(&f, None, now).expect("granted");
        f = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &token.refresh_token),
            ("client_id", "b"),
            ("client_secret", "2"),
        ]);
        assert!(other.grant(&f, None, now).is_err());
    }

    #[test]
    fn unauthenticated_envelope() {
        let response = unauthenticated();
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.json_body(),
            json!({
                "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
                "status": "failure",
            })
        );
    }
}
