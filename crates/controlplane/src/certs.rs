//! Keys and certificates for one control plane, made with the `openssl` command
//! (present wherever libssl is; well under a second for all of them).

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A self-signed CA `<name>.crt`/`<name>.key` in `dir`.
fn ca(dir: &Path, name: &str, subject: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            subject,
        ],
    )
}

/// A leaf `<name>.crt`/`<name>.key` signed by the CA `<ca>`, with `extensions`
/// (an openssl extension section body).
fn leaf(dir: &Path, name: &str, ca: &str, subject: &str, extensions: &str) -> Result<(), String> {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    )
}

/// Everything the apiserver and controller-manager read: the cluster CA
/// (`ca`), the serving certificate (`serving`, SANs 127.0.0.1 and localhost),
/// the front-proxy CA and its client (`front-proxy-ca`, `front-proxy-client`)
/// and the service-account signing key pair (`sa.key`, `sa.pub`).
pub fn generate(dir: &Path) -> Result<(), String> {
    ca(dir, "ca", "/CN=relbot-test-ca")?;
    leaf(
        dir,
        "serving",
        "ca",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n\
         extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )?;
    ca(dir, "front-proxy-ca", "/CN=relbot-test-front-proxy-ca")?;
    leaf(
        dir,
        "front-proxy-client",
        "front-proxy-ca",
        "/CN=front-proxy-client",
        "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )?;
    openssl(dir, &["genrsa", "-out", "sa.key", "2048"])?;
    openssl(dir, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])
}
