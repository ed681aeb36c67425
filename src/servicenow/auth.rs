//! The `Authorization` header of every ServiceNow call: pre-emptive Basic auth, or an OAuth
//! access token from `POST /oauth_token.do` that is renewed shortly before it expires and
//! once when the instance refuses it (a 401).
//!
//! The token lives in a [`TokenCache`]: when many concurrent page reads meet the same 401,
//! only the first one asks for a new token and the others use the one it got.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::net::{ErrorKind, HttpError, Issued, Secret, Token, TokenCache};

use super::SnAuth;

/// The lifetime assumed when a token response does not say (the instance default).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(1800);

/// Longer lifetimes are not believed: a token is renewed at least daily.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// A token is renewed when this share of its lifetime, or a minute, whichever is less, is
/// left: early enough that a request sent just before expiry does not arrive just after.
const RENEW_MARGIN_SHARE: f64 = 0.1;
const MAX_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// What to send, and which token generation it is (0 for Basic auth, which never changes).
#[derive(Clone)]
pub(super) struct Credential {
    pub header: HeaderValue,
    pub generation: u64,
}

/// Produces `Authorization` headers for one instance.
pub(super) enum Authorizer {
    Basic(HeaderValue),
    OAuth(Box<OAuth>),
}

pub(super) struct OAuth {
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    /// Password grant when set, else client_credentials.
    user: Option<(String, Secret)>,
    /// The access token (its refresh token alongside), renewed shortly before it expires.
    token: TokenCache,
}

/// `/oauth_token.do`'s answer; values may arrive as numbers or strings.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// A header value that HTTP/2 tables and `Debug` output treat as secret.
fn sensitive(text: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(text)
        .map_err(|_| "the credential holds characters a header cannot carry".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Authorization: Bearer {access token}`.
fn bearer(token: &Secret) -> Result<HeaderValue, String> {
    sensitive(&format!("Bearer {}", token.expose()))
}

impl Authorizer {
    /// `base` is the instance URL; OAuth tokens come from `{base}/oauth_token.do`.
    pub(super) fn new(auth: &SnAuth, base: &Url) -> Result<Self, String> {
        match auth {
            SnAuth::Basic { user, password } => {
                let pair = format!("{user}:{}", password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                Ok(Self::Basic(sensitive(&format!("Basic {encoded}"))?))
            }
            SnAuth::OAuth {
                client_id,
                client_secret,
                user,
                password,
            } => {
                let user = match (user, password) {
                    (Some(user), Some(password)) => Some((user.clone(), password.clone())),
                    (None, None) => None,
                    // Half a user is a configuration mistake, not a reason to switch grants.
                    _ => {
                        return Err(
                            "OAuth needs both a user and a password for the password grant, \
                             or neither for client_credentials"
                                .to_owned(),
                        )
                    }
                };
                let mut token_url = base.clone();
                token_url
                    .path_segments_mut()
                    .map_err(|()| "the instance URL cannot have a path".to_owned())?
                    .pop_if_empty()
                    .push("oauth_token.do");
                Ok(Self::OAuth(Box::new(OAuth {
                    token_url,
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    user,
                    token: TokenCache::default(),
                })))
            }
        }
    }

    /// The header for the next request, fetching or renewing a token when due.
    pub(super) async fn current(
        &self,
        http: &reqwest::Client,
        sent: &super::Traffic,
    ) -> Result<Credential, HttpError> {
        match self {
            Self::Basic(header) => Ok(Credential {
                header: header.clone(),
                generation: 0,
            }),
            Self::OAuth(oauth) => oauth.credential(http, sent, None).await,
        }
    }

    /// A new credential after the instance refused generation `stale`; `None` when there is
    /// nothing to renew (Basic auth: the password is what it is).
    pub(super) async fn renew(
        &self,
        http: &reqwest::Client,
        sent: &super::Traffic,
        stale: u64,
    ) -> Result<Option<Credential>, HttpError> {
        match self {
            Self::Basic(_) => Ok(None),
            Self::OAuth(oauth) => oauth.credential(http, sent, Some(stale)).await.map(Some),
        }
    }
}

impl OAuth {
    /// The current token, renewed when it is (nearly) expired or is generation `refused`.
    async fn credential(
        &self,
        http: &reqwest::Client,
        sent: &super::Traffic,
        refused: Option<u64>,
    ) -> Result<Credential, HttpError> {
        let issue = |refresh| self.issue(http, sent, refresh);
        let Issued { secret, generation } = match refused {
            Some(stale) => self.token.renew(stale, issue).await?,
            None => self.token.current(issue).await?,
        };
        // Checked when the token came (`request`), so this cannot fail in practice.
        let header = bearer(&secret)
            .map_err(|m| HttpError::new("POST", self.token_url.as_str(), ErrorKind::Decode, m))?;
        Ok(Credential { header, generation })
    }

    /// A new token: by the refresh token when there is one, else (or when the instance
    /// no longer takes it) by the configured grant.
    async fn issue(
        &self,
        http: &reqwest::Client,
        sent: &super::Traffic,
        refresh: Option<Secret>,
    ) -> Result<Token, HttpError> {
        let Some(refresh) = refresh else {
            return self.request(http, sent, self.grant()).await;
        };
        match self.request(http, sent, Grant::Refresh(&refresh)).await {
            Ok(token) => Ok(token),
            Err(e) => {
                // An expired or revoked refresh token: start over with a new grant.
                tracing::debug!("refresh_token grant failed ({e}); requesting a new token");
                self.request(http, sent, self.grant()).await
            }
        }
    }

    fn grant(&self) -> Grant<'_> {
        match &self.user {
            Some((user, password)) => Grant::Password(user, password),
            None => Grant::ClientCredentials,
        }
    }

    /// The form body of a token request.
    fn form(&self, grant: Grant<'_>) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        match grant {
            Grant::Password(user, password) => form
                .append_pair("grant_type", "password")
                .append_pair("username", user)
                .append_pair("password", password.expose()),
            Grant::ClientCredentials => form.append_pair("grant_type", "client_credentials"),
            Grant::Refresh(token) => form
                .append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", token.expose()),
        };
        form.append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose());
        form.finish()
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        sent: &super::Traffic,
        grant: Grant<'_>,
    ) -> Result<Token, HttpError> {
        let url = self.token_url.as_str();
        let form = self.form(grant);
        let started = Instant::now();
        let turn = sent.pacer.turn().await;
        sent.count.fetch_add(1, Ordering::Relaxed);
        crate::net::stats::request(crate::net::stats::Api::ServiceNow);
        let response = http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| HttpError::from_reqwest("POST", url, &e))?;
        sent.pacer
            .answered(turn, response.status().as_u16(), response.headers());
        if !response.status().is_success() {
            return Err(HttpError::from_response("POST", url, response).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| HttpError::from_reqwest("POST", url, &e))?;
        // The serde message could quote a token, so it is not passed on.
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            HttpError::new(
                "POST",
                url,
                ErrorKind::Decode,
                "the token response is not OAuth JSON with an `access_token`",
            )
        })?;
        let lifetime = parsed
            .expires_in
            .as_ref()
            .and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .map_or(DEFAULT_TOKEN_TTL, |d| d.min(MAX_TOKEN_TTL));
        let margin = lifetime.mul_f64(RENEW_MARGIN_SHARE).min(MAX_RENEW_MARGIN);
        let secret = Secret::new(parsed.access_token);
        // Refused here, where the error can name the token URL, rather than on every use.
        bearer(&secret).map_err(|m| HttpError::new("POST", url, ErrorKind::Decode, m))?;
        tracing::debug!(
            grant = grant.name(),
            lifetime_s = lifetime.as_secs(),
            "got a ServiceNow access token"
        );
        Ok(Token {
            secret,
            refresh: parsed
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            // Counted from when the request left: the server's clock started no later.
            renew_at: Some(started + lifetime - margin),
        })
    }
}

#[derive(Clone, Copy)]
enum Grant<'a> {
    Password(&'a str, &'a Secret),
    ClientCredentials,
    Refresh(&'a Secret),
}

impl Grant<'_> {
    fn name(self) -> &'static str {
        match self {
            Grant::Password(..) => "password",
            Grant::ClientCredentials => "client_credentials",
            Grant::Refresh(_) => "refresh_token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://acme.service-now.com/").expect("url")
    }

    #[test]
    fn basic_header_is_preemptive_and_sensitive() {
        let auth = Authorizer::new(
            &SnAuth::Basic {
                user: "admin".into(),
                password: Secret::new("admin"),
            },
            &base(),
        )
        .expect("built");
        let Authorizer::Basic(header) = auth else {
            panic!("not basic")
        };
        assert_eq!(header.to_str().ok(), Some("Basic YWRtaW46YWRtaW4="));
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("YWRt"));
    }

    #[test]
    fn oauth_tokens_come_from_the_instance_root() {
        let auth = Authorizer::new(
            &SnAuth::OAuth {
                client_id: "id".into(),
                client_secret: Secret::new("s"),
                user: None,
                password: None,
            },
            &base(),
        )
        .expect("built");
        let Authorizer::OAuth(oauth) = auth else {
            panic!("not oauth")
        };
        assert_eq!(
            oauth.token_url.as_str(),
            "https://acme.service-now.com/oauth_token.do"
        );
        assert!(matches!(oauth.grant(), Grant::ClientCredentials));
    }

    #[test]
    fn half_a_user_is_refused() {
        let err = Authorizer::new(
            &SnAuth::OAuth {
                client_id: "id".into(),
                client_secret: Secret::new("s"),
                user: Some("ann".into()),
                password: None,
            },
            &base(),
        )
        .err();
        assert!(err.is_some_and(|e| e.contains("both a user and a password")));
    }
}
