//! mTLS end to end: a TLS server on 127.0.0.1 that accepts only clients presenting a
//! certificate signed by its CA, and [`build_client`] with and without `client_cert` /
//! `client_key`.
#![allow(clippy::disallowed_methods, reason = "the test writes PEM files")]

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{build_client, ClientError, HttpSettings};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, usage| {
        let mut p = CertificateParams::new(names).unwrap();
        p.use_authority_key_identifier_extension = true;
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(
            vec!["cmdb-reconcile".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    }
}

/// Serves `200 ok` over TLS to clients with a certificate from the CA; returns the URL.
async fn server(pki: &Pki) -> String {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client without a certificate fails the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let pki = pki();
    let url = server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca = write("ca.pem", &pki.ca_pem);
    let cert = write("client.pem", &pki.client.0);
    let key = write("client.key", &pki.client.1);
    let both = write(
        "client-and-key.pem",
        &format!("{}{}", pki.client.0, pki.client.1),
    );
    let settings = |client_cert, client_key| HttpSettings {
        ca_file: Some(ca.clone()),
        client_cert,
        client_key,
        ..HttpSettings::default()
    };

    // Certificate and key in two files, or in one.
    for s in [
        settings(Some(cert.clone()), Some(key.clone())),
        settings(Some(both.clone()), None),
    ] {
        let client = build_client(&s, "ServiceNow").unwrap();
        let response = client.get(&url).send().await.expect("mTLS handshake");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    // Without one, the server refuses the handshake.
    let client = build_client(&settings(None, None), "ServiceNow").unwrap();
    assert!(client.get(&url).send().await.is_err());

    // A key that is not there, or a certificate without a key, is a clear error.
    let missing = dir.path().join("nope.key");
    match build_client(&settings(Some(cert.clone()), Some(missing)), "ServiceNow") {
        Err(e @ ClientError::ClientCertFile { .. }) => assert!(e.to_string().contains("nope.key")),
        other => panic!("{other:?}"),
    }
    match build_client(&settings(Some(cert.clone()), None), "ServiceNow") {
        Err(e @ ClientError::ClientCertPem { .. }) => {
            assert!(e.to_string().contains("client.pem"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}
