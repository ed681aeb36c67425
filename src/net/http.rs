//! The HTTP client of one API (timeouts, TLS, our user agent) and [`HttpError`]: a failed
//! request named by method and URL (never a credential), with the server's own message, its
//! `Retry-After`, and the kind of failure that tells [`decide`](super::decide) whether trying
//! again may help.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

/// Connection settings of one API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Whole-request timeout (a server that never answers fails after this).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Verify the server's certificate (only a lab turns this off).
    pub verify_tls: bool,
    /// Extra CA certificates (PEM) to trust, e.g. an internal CA.
    pub ca_file: Option<PathBuf>,
    /// mTLS: the client certificate (PEM, with its chain), presented to servers that ask.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); `None` when it is in `client_cert`.
    pub client_key: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            verify_tls: true,
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

/// The client could not be built (bad CA file).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read CA file `{}`", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file `{}` holds no usable PEM certificate: {message}", path.display())]
    CaPem { path: PathBuf, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("cannot read client certificate or key `{}`", path.display())]
    ClientCertFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("client certificate `{}` and its key are not a usable PEM identity: {message}", path.display())]
    ClientCertPem { path: PathBuf, message: String },
}

/// Builds an HTTP client with the settings; rustls, gzip, our user agent. `api` names the
/// API it talks to (`ServiceNow`, `CloudForms`) for the warning that certificate checks
/// are off, given once per API and process however many clients a run builds.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub fn build_client(settings: &HttpSettings, api: &str) -> Result<reqwest::Client, ClientError> {
    if !settings.verify_tls {
        warn_once_unverified(api);
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("cmdb-reconcile/", env!("CARGO_PKG_VERSION")))
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(!settings.verify_tls);
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
            path: path.clone(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaPem {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(ClientError::CaPem {
                path: path.clone(),
                message: "no certificate found".into(),
            });
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(identity) = client_identity(settings)? {
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}

/// Warns that `api`'s certificate is not checked, once per API and process: a lab setting
/// that must never pass unnoticed into production, so every run says it.
fn warn_once_unverified(api: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if warned.iter().any(|a| a == api) {
        return;
    }
    warned.push(api.to_owned());
    tracing::warn!(
        api,
        "verify_tls = false: the {api} certificate is not checked, so anyone on the path can \
         read the credentials and change what the job reads and writes; trust an internal CA \
         with `ca_file` instead"
    );
}

/// The mTLS identity: the certificate file, followed by the key file when it is separate
/// (rustls reads one PEM holding a private key and at least one certificate).
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
fn client_identity(settings: &HttpSettings) -> Result<Option<reqwest::Identity>, ClientError> {
    let Some(cert) = &settings.client_cert else {
        return Ok(None);
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| ClientError::ClientCertFile {
            path: path.clone(),
            source,
        })
    };
    let mut pem = read(cert)?;
    if let Some(key) = &settings.client_key {
        pem.push(b'\n');
        pem.extend(read(key)?);
    }
    reqwest::Identity::from_pem(&pem)
        .map(Some)
        .map_err(|e| ClientError::ClientCertPem {
            path: cert.clone(),
            message: e.to_string(),
        })
}

/// What kind of failure a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection (refused, DNS).
    Connect,
    /// The server's certificate is not trusted: asking again cannot help.
    Tls,
    /// No answer in time.
    Timeout,
    /// The connection broke or the body was cut short (reset, truncated JSON).
    Interrupted,
    /// The server answered with an error status.
    Status,
    /// The body was not what the API returns.
    Decode,
}

/// A failed request: method, URL (without credentials), what happened and the server's word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {url}: {message}")]
pub struct HttpError {
    pub method: String,
    pub url: String,
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    pub message: String,
}

/// A URL fit for a message: no user info (credentials never travel in URLs we build, but a
/// configured base URL might carry them).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// Text from a server made safe to print on a terminal or in a log. A server (or a proxy in
/// front of it) chooses the bytes of an error body, and terminals and log viewers obey the
/// escape sequences in them: colours, cursor moves, a window title, a hyperlink, or a `\r`
/// that makes a line overwrite the one before. ANSI escape sequences go whole, every other
/// C0 and C1 control and DEL goes, and so do the bidirectional overrides that make text read
/// differently from what it says; a line break or a tab becomes a space, so a message stays
/// one line. Every [`HttpError`] message passes through here.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            '\n' | '\t' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if c.is_control() => {}
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Skips the rest of an escape sequence whose ESC was just read: CSI (`ESC [` parameters,
/// then a final byte), OSC/DCS/SOS/PM/APC strings (up to BEL or `ESC \`), or a two-character
/// escape.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        Some(']' | 'P' | 'X' | '^' | '_') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        _ => {}
    }
}

impl HttpError {
    /// An error; the message is made [`printable`], since it may quote the server.
    pub fn new(method: &str, url: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            method: method.to_owned(),
            url: redact(url),
            kind,
            status: None,
            retry_after: None,
            message: printable(&message.into()),
        }
    }

    /// Classifies a transport error.
    pub fn from_reqwest(method: &str, url: &str, err: &reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_connect() && is_certificate_error(err) {
            ErrorKind::Tls
        } else if err.is_connect() {
            ErrorKind::Connect
        } else if err.is_decode() && !is_broken_body(err) {
            ErrorKind::Decode
        } else {
            // A reset mid-request or mid-body, an incomplete message, a closed connection.
            ErrorKind::Interrupted
        };
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        // reqwest includes the URL in its message; ours already leads with it.
        let mut message = message.replace(&format!(" for url ({url})"), "");
        if kind == ErrorKind::Tls && message.contains("UnknownIssuer") {
            message.push_str(
                " (the certificate's issuer is not trusted: if an internal CA signed it, \
                 name that CA's PEM file in `ca_file`)",
            );
        }
        Self::new(method, url, kind, message)
    }

    /// An error status: the message is the server's own (ServiceNow's, ManageIQ's or OAuth's
    /// envelope), else the start of the body.
    pub fn from_status(
        method: &str,
        url: &str,
        status: u16,
        headers: &HeaderMap,
        body: &str,
    ) -> Self {
        let server_message = server_message(body).unwrap_or_else(|| {
            let text: String = body.trim().chars().take(200).collect();
            if text.is_empty() {
                "no body".into()
            } else {
                text
            }
        });
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut e = Self::new(
            method,
            url,
            ErrorKind::Status,
            format!("{status} {reason}: {server_message}"),
        );
        e.status = Some(status);
        e.retry_after = retry_after(headers);
        e
    }

    /// Reads an error response's body (bounded) and builds the error.
    pub async fn from_response(method: &str, url: &str, response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(4096).collect();
        Self::from_status(method, url, status, &headers, &body)
    }

    /// A 200 whose body could not be read as the API's JSON. ServiceNow cancels long
    /// transactions mid-body ("Transaction cancelled: maximum execution time exceeded"):
    /// that is worth a retry, like a connection reset.
    pub fn from_body(method: &str, url: &str, body: &str, err: &serde_json::Error) -> Self {
        let cancelled = body.contains("Transaction cancelled");
        let kind = if cancelled || err.is_eof() {
            ErrorKind::Interrupted
        } else {
            ErrorKind::Decode
        };
        let message = if cancelled {
            "the server cancelled the transaction mid-body (maximum execution time exceeded)"
                .to_owned()
        } else {
            format!("unexpected response body: {err}")
        };
        Self::new(method, url, kind, message)
    }
}

/// Whether a "decode" error is really a body cut short: with gzip on, a reset or an early
/// end of the stream surfaces as a decoding failure of the compressed body. Only a JSON
/// error is a genuine decode error; an I/O error underneath is an interruption.
fn is_broken_body(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<serde_json::Error>() {
            return false;
        }
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Whether a connect error is the server's certificate being refused (rustls says
/// "invalid peer certificate" for an unknown issuer, a wrong name or an expired cert).
fn is_certificate_error(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if text.contains("certificate") || text.contains("Certificate") {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The message of an API error envelope: ServiceNow `{"error":{"message","detail"}}`,
/// ManageIQ `{"error":{"kind","message"}}`, OAuth `{"error","error_description"}`, or a
/// routing error `{"status":404,"error":"Not Found"}`.
fn server_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    match error {
        Value::Object(o) => {
            let message = o.get("message").and_then(Value::as_str).unwrap_or_default();
            let detail = o.get("detail").and_then(Value::as_str).unwrap_or_default();
            match (message.is_empty(), detail.is_empty() || detail == message) {
                (false, true) => Some(message.to_owned()),
                (false, false) => Some(format!("{message} ({detail})")),
                (true, false) => Some(detail.to_owned()),
                (true, true) => None,
            }
        }
        Value::String(s) => {
            let description = value.get("error_description").and_then(Value::as_str);
            Some(match description {
                Some(d) => format!("{s}: {d}"),
                None => s.clone(),
            })
        }
        _ => None,
    }
}

/// The `Retry-After` of a response, if it has a readable one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// `Retry-After`: delay seconds (what ServiceNow sends) or an HTTP date.
#[allow(
    clippy::disallowed_methods,
    reason = "the Retry-After date is relative to the wall clock"
)]
fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact("https://admin:pw@sn.example.com/api?x=1"),
            "https://sn.example.com/api?x=1"
        );
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn server_messages_are_read_from_each_envelope() {
        let h = HeaderMap::new();
        let sn = r#"{"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"}"#;
        assert_eq!(
            HttpError::from_status("GET", "https://sn/x", 404, &h, sn).to_string(),
            "GET https://sn/x: 404 Not Found: No Record found (Record doesn't exist or ACL restricts the record retrieval)"
        );
        let miq = r#"{"error":{"kind":"unauthorized","message":"Authentication failed","klass":"Api::AuthenticationError"}}"#;
        assert!(HttpError::from_status("GET", "u", 401, &h, miq)
            .message
            .ends_with("Authentication failed"));
        let oauth = r#"{"error":"server_error","error_description":"access_denied"}"#;
        assert!(HttpError::from_status("POST", "u", 401, &h, oauth)
            .message
            .ends_with("server_error: access_denied"));
        assert!(
            HttpError::from_status("GET", "u", 502, &h, "<html>Bad gateway</html>")
                .message
                .contains("<html>")
        );
    }

    #[test]
    fn server_text_loses_escapes_and_controls() {
        assert_eq!(
            printable("\u{1b}[31mred\u{1b}[0m and \u{1b}]0;title\u{7}plain"),
            "red and plain"
        );
        assert_eq!(
            printable("\u{1b}]8;;http://evil\u{1b}\\link\u{1b}]8;;\u{1b}\\"),
            "link"
        );
        assert_eq!(
            printable("over\rwrite\u{7f}\u{0}\u{85}\u{9b}2J"),
            "overwrite2J"
        );
        assert_eq!(printable("two\r\nlines\tand\n\ntabs"), "two lines and tabs");
        assert_eq!(printable("abc\u{202e}fed\u{2069}"), "abcfed");
        assert_eq!(
            printable("ünïcödé, quotes \"'` stay"),
            "ünïcödé, quotes \"'` stay"
        );
        assert_eq!(printable("cut short \u{1b}["), "cut short ");
    }

    #[test]
    fn a_hostile_error_body_reaches_no_terminal() {
        let h = HeaderMap::new();
        let body = "{\"error\":{\"message\":\"\\u001b[2J\\u001b[1;1Hall good\\r\\nreally\"}}";
        let e = HttpError::from_status("PATCH", "https://sn/x", 500, &h, body);
        assert_eq!(e.message, "500 Internal Server Error: all good really");
        let html = HttpError::from_status("GET", "u", 502, &h, "<h1>\u{1b}[5mgateway</h1>\r\n");
        assert!(!html.message.contains(['\u{1b}', '\r', '\n']), "{html:?}");
    }

    #[test]
    fn retry_after_header_is_read() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            HttpError::from_status("GET", "u", 429, &h, "").retry_after,
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn cancelled_transactions_are_interruptions() {
        let body =
            r#"{"result":[{"sys_id":"1"},Transaction cancelled: maximum execution time exceeded"#;
        let err = serde_json::from_str::<Value>(body).unwrap_err();
        assert_eq!(
            HttpError::from_body("GET", "u", body, &err).kind,
            ErrorKind::Interrupted
        );
    }
}
