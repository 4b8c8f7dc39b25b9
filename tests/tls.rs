//! TLS as Redis's --tls-port: redis-cli --tls and the `redis` crate over
//! rustls, client certificates as tls-auth-clients asks, the plain port
//! alongside. Certificates are made per test with the openssl CLI.
//!
//! Checked against redis-server 7.0.15 (built with TLS) with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test tls`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate, all signed by the CA (P-256 keys).
fn make_certs() -> Certs {
    let dir = temp_path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=ferrocache test CA",
    ]);
    openssl(&dir, &ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let crt = format!("{who}.crt");
        let ext = format!("{who}.ext");
        let subj = format!("/CN={who}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(&dir, &req);
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    Certs { dir }
}

fn start_tls(certs: &Certs, auth_clients: &str) -> (TestServer, u16) {
    let tls_port = pick_free_port();
    let port_s = tls_port.to_string();
    let srv = TestServer::start_with(&[
        "--tls-port",
        &port_s,
        "--tls-cert-file",
        &certs.path("server.crt"),
        "--tls-key-file",
        &certs.path("server.key"),
        "--tls-ca-cert-file",
        &certs.path("ca.crt"),
        "--tls-auth-clients",
        auth_clients,
    ]);
    (srv, tls_port)
}

fn redis_cli(
    tls_port: u16,
    certs: &Certs,
    with_client_cert: bool,
    args: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &tls_port.to_string(), "--tls"])
        .args(["--cacert", &certs.path("ca.crt")]);
    if with_client_cert {
        cmd.args([
            "--cert",
            &certs.path("client.crt"),
            "--key",
            &certs.path("client.key"),
        ]);
    }
    let out = cmd.args(args).output().expect("run redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn redis_cli_over_tls_with_client_certificate() {
    let certs = make_certs();
    let (srv, tls_port) = start_tls(&certs, "yes");
    let (ok, out) = redis_cli(tls_port, &certs, true, &["SET", "k", "over tls"]);
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = redis_cli(tls_port, &certs, true, &["GET", "k"]);
    assert!(ok && out.trim() == "over tls", "{out}");
    // Same data on the plain port.
    let mut con = srv.client();
    let v: String = q(&mut con, &["GET", "k"]);
    assert_eq!(v, "over tls");
    // tls-auth-clients yes: no certificate, no session.
    let (_, out) = redis_cli(tls_port, &certs, false, &["PING"]);
    assert!(!out.contains("PONG"), "{out}");
}

#[test]
fn redis_crate_over_tls() {
    let certs = make_certs();
    let (_srv, tls_port) = start_tls(&certs, "yes");
    let client = redis::Client::build_with_tls(
        format!("rediss://localhost:{tls_port}/"),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: certs.read("client.crt"),
                client_key: certs.read("client.key"),
            }),
            root_cert: Some(certs.read("ca.crt")),
        },
    )
    .unwrap();
    let mut con = client.get_connection().expect("TLS connection");
    let _: () = q(&mut con, &["SET", "big", &"x".repeat(300_000)]);
    let v: String = q(&mut con, &["GET", "big"]);
    assert_eq!(v.len(), 300_000);
    let pong: String = q(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    // Pipelined replies come back in order through TLS records.
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("INCR").arg("n").ignore();
        if i == 999 {
            pipe.cmd("GET").arg("n");
        }
    }
    let (n,): (i64,) = pipe.query(&mut con).unwrap();
    assert_eq!(n, 1000);
}

#[test]
fn tls_auth_clients_no_and_optional() {
    let certs = make_certs();
    for auth in ["no", "optional"] {
        let (_srv, tls_port) = start_tls(&certs, auth);
        let (ok, out) = redis_cli(tls_port, &certs, false, &["PING"]);
        assert!(ok && out.trim() == "PONG", "tls-auth-clients {auth}: {out}");
        let (ok, out) = redis_cli(tls_port, &certs, true, &["PING"]);
        assert!(ok && out.trim() == "PONG", "tls-auth-clients {auth}: {out}");
    }
}

#[test]
fn tls_settings_shown_by_config_get() {
    let certs = make_certs();
    let (srv, tls_port) = start_tls(&certs, "optional");
    let mut con = srv.client();
    let v: Vec<String> = q(&mut con, &["CONFIG", "GET", "tls-port"]);
    assert_eq!(v, ["tls-port".to_string(), tls_port.to_string()]);
    let v: Vec<String> = q(&mut con, &["CONFIG", "GET", "tls-auth-clients"]);
    assert_eq!(v, ["tls-auth-clients", "optional"]);
}

#[test]
fn missing_certificate_file_refuses_to_start() {
    if against_real_redis() {
        return;
    }
    let port = pick_free_port().to_string();
    let tls_port = pick_free_port().to_string();
    let (status, _out, err) = run_expecting_exit(&[
        "--port",
        &port,
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        "/nonexistent.crt",
        "--tls-key-file",
        "/nonexistent.key",
        "--tls-auth-clients",
        "no",
    ]);
    assert!(!status.success());
    assert!(err.contains("Failed to load certificate"), "{err}");
}
