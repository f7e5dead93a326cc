//! TLS client settings shared by the sinks that speak TLS (mqtts://, https://): rustls on
//! ring, the server's certificate checked against a CA file or the system's roots.

use std::path::Path;
use std::sync::Arc;

/// Client settings trusting the PEM certificates in `ca_file`, or the system's roots without
/// one; `key` names the configuration key in errors (`mqtt.ca_file`).
pub fn client_config(ca_file: Option<&Path>, key: &str) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{key} {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "{key} {}: no usable PEM certificate in it",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no CA certificates on this system (Debian: ca-certificates); name the \
                     server's CA with {key}"
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("iotad-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty), "mqtt.ca_file").unwrap_err();
        assert!(e.contains("mqtt.ca_file"), "{e}");
        assert!(client_config(Some(&dir.join("missing.pem")), "x.ca_file").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
