//! A throwaway certificate for `localhost` / 127.0.0.1, made by the `openssl`
//! command line (installed with the system; scripts/test needs nothing more).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `cert.pem` and `key.pem` into `dir`: a self-signed P-256 leaf
/// (CA:FALSE, so rustls accepts it as the trusted end entity) valid two days.
pub fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}
