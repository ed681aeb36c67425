//! Self-signed TLS certificate for the simulators' HTTPS listeners (PySNC refuses `http://`).

use std::path::Path;

use anyhow::Context as _;

/// Makes a self-signed certificate for `localhost` and `127.0.0.1`; returns (cert PEM, key PEM)
/// and writes the cert PEM to `pem_out` so clients can trust it.
pub fn self_signed(pem_out: Option<&Path>) -> anyhow::Result<(String, String)> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .context("generating a self-signed certificate")?;
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    if let Some(path) = pem_out {
        std::fs::write(path, &cert_pem)
            .with_context(|| format!("writing the certificate to `{}`", path.display()))?;
    }
    Ok((cert_pem, key_pem))
}
