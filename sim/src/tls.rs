//! The TLS certificate the simulators serve HTTPS with (PySNC refuses `http://` URLs), made at
//! start with rcgen and trusted by tests through a PEM file.
//!
//! It is a throwaway certificate authority plus a server certificate it signs, rather than one
//! bare self-signed certificate: strict verifiers (Python 3.13's default `VERIFY_X509_STRICT`,
//! webpki) want a trust anchor that is a proper CA and a leaf with key identifiers and the
//! server-auth usage, and this shape satisfies all of them.

use std::path::Path;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Makes a certificate for `localhost` and `127.0.0.1` (subject alternative names) and its key.
///
/// Returns (certificate chain PEM: the server certificate then its CA, private key PEM), ready
/// for `RustlsConfig::from_pem`. The CA's PEM, the one clients must trust (requests'
/// `verify=`, reqwest's `add_root_certificate`), is written to `pem_out` when given.
pub fn self_signed(pem_out: Option<&Path>) -> anyhow::Result<(String, String)> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())
        .context("building the CA certificate parameters")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cmdb-sim test CA");
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let ca =
        CertifiedIssuer::self_signed(ca_params, ca_key).context("signing the CA certificate")?;

    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .context("building the server certificate parameters")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().context("generating the server key")?;
    let cert = params
        .signed_by(&key, &ca)
        .context("signing the server certificate")?;

    let ca_pem = ca.pem();
    if let Some(path) = pem_out {
        std::fs::write(path, &ca_pem)
            .with_context(|| format!("writing the CA certificate to `{}`", path.display()))?;
    }
    Ok((format!("{}{ca_pem}", cert.pem()), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_ca_and_returns_chain_and_key() {
        let path = std::env::temp_dir().join(format!("cmdb-sim-ca-{}.pem", uuid::Uuid::new_v4()));
        let (chain, key) = self_signed(Some(&path)).expect("made");
        let written = std::fs::read_to_string(&path).expect("written");
        std::fs::remove_file(&path).expect("removed");
        assert_eq!(chain.matches("-----BEGIN CERTIFICATE-----").count(), 2);
        assert!(chain.ends_with(&written), "the chain ends with the CA");
        assert!(written.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(KeyPair::from_pem(&key).is_ok(), "the key parses");
        // Two calls give two different authorities.
        let (other, _) = self_signed(None).expect("made");
        assert_ne!(other, chain);
    }
}
