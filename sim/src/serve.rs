//! The accept loop both simulators run on: HTTP/1.1 over plain TCP or TLS,
//! one task per connection, and a per-connection [`ConnKill`] handle (put in
//! every request's extensions) with which a fault aborts that one connection
//! with a TCP reset: the only way to make a client see "connection reset"
//! after its request was processed.

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Aborts the connection a request arrived on.
#[derive(Clone, Default)]
pub struct ConnKill(Arc<KillState>);

#[derive(Default)]
struct KillState {
    aborted: AtomicBool,
    notify: Notify,
}

impl ConnKill {
    /// Drops the connection with an RST; whatever the server has not yet
    /// written is lost, and the handler's future is dropped with it.
    pub fn abort(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        self.0.notify.notify_one();
    }

    fn aborted(&self) -> bool {
        self.0.aborted.load(Ordering::SeqCst)
    }
}

/// A running listener; dropping it does not stop it, [`Server::stop`] does.
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `app` on `listener` (TLS when `tls` is given) until stopped.
    pub fn spawn(
        listener: TcpListener,
        app: Router,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let (shutdown, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(connection(stream, app.clone(), tls.clone()));
                        }
                        // Out of file descriptors and the like: back off instead of spinning.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            // Keep-alive connections would otherwise outlive the server.
            connections.shutdown().await;
        });
        Ok(Server {
            addr,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every open connection and waits for the loop to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn connection(stream: TcpStream, app: Router, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let kill = ConnKill::default();
    let io = Abortable {
        inner: stream,
        kill: kill.clone(),
    };
    match tls {
        Some(acceptor) => {
            // A client that connects but never finishes the handshake must not pin a task.
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io));
            if let Ok(Ok(tls_stream)) = handshake.await {
                drive(tls_stream, app, kill).await;
            }
        }
        None => drive(io, app, kill).await,
    }
}

async fn drive<I>(io: I, app: Router, kill: ConnKill)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handle = kill.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(handle.clone());
        app.clone().oneshot(req)
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.0.notify.notified() => {}
    }
}

/// The TCP stream, which resets instead of closing when its connection was aborted.
struct Abortable {
    inner: TcpStream,
    kill: ConnKill,
}

impl Drop for Abortable {
    fn drop(&mut self) {
        if self.kill.aborted() {
            // SO_LINGER 0: close() sends RST and discards unsent data.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for Abortable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Abortable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A TLS acceptor for the given PEM certificate chain and key, HTTP/1.1 only.
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the certificate PEM")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("reading the key PEM")?;
    // An explicit provider: with both `ring` and `aws-lc-rs` compiled into
    // rustls (reqwest brings ring), `ServerConfig::builder()` would panic.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("building the TLS configuration")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
