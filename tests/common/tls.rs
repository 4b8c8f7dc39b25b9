//! TLS for the tests: a CA and certificates made per test with the
//! openssl CLI, the server flags that use them, TLS clients through the
//! `redis` crate, and servers that listen on TLS only (`--port 0`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{TestServer, free_port, server_binary, temp_path};

pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A fresh directory `name` under this one, for a server's `--dir`
    /// (a Redis replica writes the snapshot it receives there; any server
    /// loads a dump.rdb it finds there), removed with the certificates.
    pub fn dir(&self, name: &str) -> String {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d.display().to_string()
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    /// A server's TLS files: its certificate (also its client
    /// certificate for replication and the cluster bus, as in Redis), key
    /// and the CA.
    pub fn server_flags(&self) -> Vec<String> {
        [
            ("--tls-cert-file", "server.crt"),
            ("--tls-key-file", "server.key"),
            ("--tls-ca-cert-file", "ca.crt"),
        ]
        .iter()
        .flat_map(|(flag, file)| [flag.to_string(), self.path(file)])
        .collect()
    }

    /// redis-cli's TLS options with the client certificate.
    pub fn cli_flags(&self) -> Vec<String> {
        [
            "--tls".to_string(),
            "--cacert".into(),
            self.path("ca.crt"),
            "--cert".into(),
            self.path("client.crt"),
            "--key".into(),
            self.path("client.key"),
        ]
        .to_vec()
    }

    /// A `redis` crate client for 127.0.0.1:`port` over TLS, with the
    /// client certificate.
    pub fn client(&self, port: u16) -> redis::Client {
        redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}/"),
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: self.read("client.crt"),
                    client_key: self.read("client.key"),
                }),
                root_cert: Some(self.read("ca.crt")),
            },
        )
        .unwrap()
    }

    /// A TLS connection to 127.0.0.1:`port` (10 s timeouts).
    pub fn connect(&self, port: u16) -> redis::Connection {
        let con = self
            .client(port)
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("TLS connection");
        con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        con
    }

    /// The process id of the server answering on the TLS port `port`.
    fn pid_on(&self, port: u16) -> Option<u32> {
        let mut con = self
            .client(port)
            .get_connection_with_timeout(Duration::from_secs(5))
            .ok()?;
        con.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
        let line = info.lines().find(|l| l.starts_with("process_id:"))?;
        line["process_id:".len()..].trim().parse().ok()
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

/// A CA, a server certificate for localhost/127.0.0.1 (usable as a
/// client certificate too: servers present it when they connect to each
/// other) and a client certificate, all signed by the CA (P-256 keys).
pub fn make_certs() -> Certs {
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
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
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

/// Starts the server under test on TLS only (`--port 0 --tls-port P`)
/// with `certs`' server files and `extra` flags; `port` of the result is
/// the TLS port.
pub fn start_tls_only(certs: &Certs, extra: &[&str]) -> TestServer {
    start_tls_only_binary(&server_binary(), certs, extra)
}

/// `start_tls_only` with another binary (a real redis-server).
pub fn start_tls_only_binary(binary: &str, certs: &Certs, extra: &[&str]) -> TestServer {
    let mut last_err = String::new();
    for _ in 0..10 {
        let tls_port = free_port();
        let mut args = vec![
            "--port".to_string(),
            "0".into(),
            "--tls-port".into(),
            tls_port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ];
        args.extend(certs.server_flags());
        args.extend(["--dir".into(), certs.dir(&format!("srv-{tls_port}"))]);
        args.extend(extra.iter().map(|s| s.to_string()));
        match TestServer::try_start_probed(binary, &args, tls_port, None, &|p| certs.pid_on(p)) {
            Ok(srv) => return srv,
            Err(e) => last_err = e,
        }
    }
    panic!("could not start a TLS-only server: {last_err}");
}
