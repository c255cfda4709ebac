//! TLS per sslmode against a server with ssl=on and a certificate for 127.0.0.1.

use std::path::Path;
use std::process::Command;

use sluice_connector_postgres::connection::ConnectionSettings;

use crate::support::PgServer;

pub(crate) fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not found: install the Debian package openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 signed by it, in `dir`, readable
/// by the server's user.
pub(crate) fn make_certificates(dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=sluice-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ][..],
            &days,
        ]
        .concat(),
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.crt",
            ][..],
            &days,
        ]
        .concat(),
        dir,
    );
    let _ = Command::new("chmod").arg("755").arg(dir).status();
    for f in ["server.key", "server.crt"] {
        let _ = Command::new("chmod").arg("600").arg(dir.join(f)).status();
        // As root the server runs as postgres, which must own its key.
        let _ = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.join(f))
            .status();
    }
}

async fn ssl_in_use(url: &str) -> Result<bool, String> {
    let settings = ConnectionSettings::parse(url, None, None)?;
    let connection = settings
        .connect()
        .await
        .map_err(|e| settings.explain(&e).to_string())?;
    let row = connection
        .client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_encrypt_and_verify() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let crt = certs.path().join("server.crt");
    let settings = [
        "ssl=on".to_string(),
        format!("ssl_cert_file={}", crt.display()),
        format!("ssl_key_file={}", certs.path().join("server.key").display()),
    ];
    let server = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
        PgServer::start_with(&refs)
    })
    .await
    .unwrap();
    let base = format!(
        "postgres://postgres:postgres@127.0.0.1:{}/postgres",
        server.port()
    );
    assert!(!ssl_in_use(&format!("{base}?sslmode=disable"))
        .await
        .unwrap());
    assert!(ssl_in_use(&format!("{base}?sslmode=prefer")).await.unwrap());
    assert!(ssl_in_use(&format!("{base}?sslmode=require"))
        .await
        .unwrap());
    let ca = certs.path().join("ca.crt").display().to_string();
    assert!(
        ssl_in_use(&format!("{base}?sslmode=verify-full&sslrootcert={ca}"))
            .await
            .unwrap()
    );
    assert!(ssl_in_use(&format!("jdbc:postgresql://127.0.0.1:{}/postgres?user=postgres&password=postgres&sslmode=verify-ca&sslrootcert={ca}", server.port()))
        .await
        .unwrap());

    // A CA that did not sign the server's certificate is refused, naming the option.
    let other = tempfile::tempdir().unwrap();
    make_certificates(other.path());
    let wrong = other.path().join("ca.crt").display().to_string();
    let err = ssl_in_use(&format!("{base}?sslmode=verify-full&sslrootcert={wrong}"))
        .await
        .unwrap_err();
    assert!(
        err.starts_with("option 'connection.url'") && err.contains("sslmode"),
        "{err}"
    );
    drop(server);
}
