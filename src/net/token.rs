//! Credentials: [`Secret`], a value that never prints, so that a password or a token cannot
//! reach a log, a report or an error; and [`TokenCache`], the one session token that all the
//! concurrent requests of an API client share (CloudForms' `X-Auth-Token`, ServiceNow's OAuth
//! access token).

use std::fmt;
use std::future::Future;
use std::time::Instant;

use super::HttpError;

/// A credential: prints as `********` in `Debug` and `Display`, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// A token as its issuer hands it out.
#[derive(Debug, Clone)]
pub struct Token {
    /// What authenticates a request.
    pub secret: Secret,
    /// When to stop using it although no server has refused it yet; `None`: until refused.
    pub renew_at: Option<Instant>,
    /// What the issuer needs to issue the next one without a full login (OAuth's refresh
    /// token).
    pub refresh: Option<Secret>,
}

/// A token from the cache, with its generation: the number to give [`TokenCache::renew`]
/// when the server refuses it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub secret: Secret,
    pub generation: u64,
}

/// The session token of one API client. The first caller fetches it while the others wait
/// (the lock is held across the fetch), so a read of a hundred concurrent pages logs in once;
/// it is reused until it is due or refused, and then renewed by exactly one caller: callers
/// refused a token name its generation, and a token replaced since is not replaced again.
#[derive(Default)]
pub struct TokenCache {
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// Tokens issued so far; the current one's generation.
    generation: u64,
    /// The server refused the current token: it is not handed out again, even when its
    /// renewal fails, but its refresh secret may still serve for the next try.
    refused: bool,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl TokenCache {
    /// The token to send, issued by `issue` when there is none yet or it is due. `issue`
    /// gets the refresh secret of the token it replaces, if that had one.
    pub async fn current<F, Fut>(&self, issue: F) -> Result<Issued, HttpError>
    where
        F: FnOnce(Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Token, HttpError>>,
    {
        self.get(None, issue).await
    }

    /// The server refused the token of generation `refused`: a new one, issued by `issue`
    /// unless another caller has already replaced that token (then the replacement).
    pub async fn renew<F, Fut>(&self, refused: u64, issue: F) -> Result<Issued, HttpError>
    where
        F: FnOnce(Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Token, HttpError>>,
    {
        self.get(Some(refused), issue).await
    }

    async fn get<F, Fut>(&self, refused: Option<u64>, issue: F) -> Result<Issued, HttpError>
    where
        F: FnOnce(Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Token, HttpError>>,
    {
        // Held across `issue`: concurrent callers wait for the one renewal, then share it.
        let mut state = self.state.lock().await;
        if refused == Some(state.generation) {
            state.refused = true;
        }
        if let Some(token) = &state.token {
            let due = token.renew_at.is_some_and(|at| Instant::now() >= at);
            if !state.refused && !due {
                return Ok(Issued {
                    secret: token.secret.clone(),
                    generation: state.generation,
                });
            }
        }
        let refresh = state.token.as_ref().and_then(|t| t.refresh.clone());
        let token = issue(refresh).await?;
        state.generation += 1;
        state.refused = false;
        let issued = Issued {
            secret: token.secret.clone(),
            generation: state.generation,
        };
        state.token = Some(token);
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::net::ErrorKind;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "******** ********");
        assert_eq!(s.expose(), "hunter2");
    }

    /// An issuer counting its calls; tokens are named after the call.
    async fn issue(
        calls: &AtomicU32,
        renew_at: Option<Instant>,
        refresh: Option<Secret>,
    ) -> Result<Token, HttpError> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(Token {
            secret: Secret::new(format!("token-{n}")),
            renew_at,
            refresh: Some(Secret::new(format!(
                "refresh-{n}-after-{}",
                refresh.as_ref().map_or("none", Secret::expose)
            ))),
        })
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_one_renewal() {
        let cache = Arc::new(TokenCache::default());
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.spawn(async move { cache.current(|r| issue(&calls, None, r)).await });
        }
        while let Some(done) = tasks.join_next().await {
            let issued = done.unwrap().unwrap();
            assert_eq!((issued.secret.expose(), issued.generation), ("token-1", 1));
        }
        // Every request refused generation 1; one renewal serves them all.
        for _ in 0..8 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.spawn(async move { cache.renew(1, |r| issue(&calls, None, r)).await });
        }
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.unwrap().unwrap().generation, 2);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_due_token_is_renewed_with_its_refresh_secret() {
        let cache = TokenCache::default();
        let calls = AtomicU32::new(0);
        let past = Some(Instant::now());
        cache.current(|r| issue(&calls, past, r)).await.unwrap();
        let issued = cache.current(|r| issue(&calls, None, r)).await.unwrap();
        assert_eq!(issued.generation, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let again = cache.current(|r| issue(&calls, None, r)).await.unwrap();
        assert_eq!(again.generation, 2, "not due: reused");
        cache
            .renew(2, |refresh| async move {
                assert_eq!(
                    refresh.as_ref().map(Secret::expose),
                    Some("refresh-2-after-refresh-1-after-none")
                );
                Ok(Token {
                    secret: Secret::new("t"),
                    renew_at: None,
                    refresh: None,
                })
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_refused_token_is_not_handed_out_again_when_its_renewal_fails() {
        let cache = TokenCache::default();
        let calls = AtomicU32::new(0);
        cache.current(|r| issue(&calls, None, r)).await.unwrap();
        let down = |_| async {
            Err(HttpError::new(
                "GET",
                "https://h/api/auth",
                ErrorKind::Status,
                "503",
            ))
        };
        assert!(cache.renew(1, down).await.is_err());
        let next = cache.current(|r| issue(&calls, None, r)).await.unwrap();
        assert_eq!((next.secret.expose(), next.generation), ("token-2", 2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(format!("{cache:?}"), "TokenCache { .. }");
    }
}
