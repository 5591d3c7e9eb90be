//! TLS: the RESP TLS port serves the same sessions as the plain one to a client with a
//! certificate the CA signed, `tls-auth-clients` decides about clients without one, `port 0`
//! with a TLS port serves TLS only, bad certificate files stop the node with a clear error,
//! and a three-node cell forms and replicates over mutual TLS between its nodes. Every
//! certificate is made at test time by `rcgen`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use redis::Value;

use crate::cluster::Cell;
use crate::harness::{free_ports, must_cmd, must_start, NodeProcess};

/// A test CA and files signed by it, in a temporary directory.
pub(crate) struct TestPki {
    tmp: tempfile::TempDir,
}

impl TestPki {
    /// A CA, a certificate for `localhost`/`127.0.0.1` (server and client use, shared by
    /// every node as `tls-cert-file`), a client certificate, and a client certificate from
    /// another CA.
    pub(crate) fn must_create() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let ca = |name: &str| {
            let key = KeyPair::generate().expect("ca key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key).expect("ca cert");
            (cert.pem(), Issuer::new(params, key))
        };
        let leaf = |issuer: &Issuer<'_, KeyPair>, name: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, issuer).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (ca_pem, issuer) = ca("cellkv test CA");
        let (_, other_issuer) = ca("another CA");
        let write = |name: &str, text: &str| {
            std::fs::write(tmp.path().join(name), text).expect("write pem");
        };
        write("ca.crt", &ca_pem);
        let (cert, key) = leaf(&issuer, "cellkv node");
        write("node.crt", &cert);
        write("node.key", &key);
        let (cert, key) = leaf(&issuer, "client");
        write("client.crt", &cert);
        write("client.key", &key);
        let (cert, key) = leaf(&other_issuer, "stranger");
        write("stranger.crt", &cert);
        write("stranger.key", &key);
        TestPki { tmp }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn text(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read pem")
    }

    /// The node's certificate, key and CA as flags.
    pub(crate) fn node_flags(&self) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.text("node.crt"),
            "--tls-key-file".into(),
            self.text("node.key"),
            "--tls-ca-cert-file".into(),
            self.text("ca.crt"),
        ]
    }

    /// A `rediss://` client trusting the test CA, presenting `identity` (`client`,
    /// `stranger`) or no certificate.
    fn client(&self, port: u16, identity: Option<&str>) -> redis::Client {
        let client_tls = identity.map(|name| redis::ClientTlsConfig {
            client_cert: self.bytes(&format!("{name}.crt")),
            client_key: self.bytes(&format!("{name}.key")),
        });
        redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}/"),
            redis::TlsCertificates {
                client_tls,
                root_cert: Some(self.bytes("ca.crt")),
            },
        )
        .expect("TLS client")
    }

    /// Connects over TLS and runs PING; the error text when the server refuses.
    fn try_ping(&self, port: u16, identity: Option<&str>) -> Result<String, String> {
        let client = self.client(port, identity);
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query::<String>(&mut con)
            .map_err(|e| e.to_string())
    }

    fn must_connect(&self, port: u16, identity: Option<&str>) -> redis::Connection {
        self.client(port, identity)
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("TLS connection")
    }
}

fn start_tls(pki: &TestPki, extra: &[&str]) -> (NodeProcess, tempfile::TempDir) {
    let mut flags = pki.node_flags();
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    must_start(&flags)
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

#[test]
fn the_tls_port_serves_clients_with_a_certificate_and_refuses_the_rest() {
    let pki = TestPki::must_create();
    let plain = free_ports(1)[0].to_string();
    let (node, _tmp) = start_tls(&pki, &["--port", &plain, "--tls-port", "0"]);
    let tls_port = node.tls_port.expect("the node reports its TLS port");
    assert_ne!(tls_port, node.port);

    let mut con = pki.must_connect(tls_port, Some("client"));
    assert_eq!(must_cmd(&mut con, &["SET", "tls:k", "v"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["GET", "tls:k"]), bulk("v"));
    // The same keyspace and sessions as the plain port.
    let mut plain_con = node.must_connect();
    assert_eq!(must_cmd(&mut plain_con, &["GET", "tls:k"]), bulk("v"));
    let config = must_cmd(&mut con, &["CONFIG", "GET", "tls-*"]);
    let text = format!("{config:?}");
    assert!(text.contains(&tls_port.to_string()), "{text}");
    assert!(
        text.contains("tls-auth-clients") && text.contains("yes"),
        "{text}"
    );

    // tls-auth-clients yes (the default): no certificate, or one another CA signed, is
    // refused in the handshake.
    for identity in [None, Some("stranger")] {
        let refused = pki.try_ping(tls_port, identity);
        assert!(refused.is_err(), "{identity:?}: {refused:?}");
    }
    assert!(
        node.log().contains("TLS handshake failed"),
        "{}",
        node.log()
    );
    // A plain client on the TLS port gets no RESP answer.
    assert_ne!(plain_ping(tls_port), b"+PONG\r\n");
    // The certified client is still served.
    assert_eq!(must_cmd(&mut con, &["GET", "tls:k"]), bulk("v"));
}

#[test]
fn tls_auth_clients_no_and_optional_accept_clients_without_a_certificate() {
    let pki = TestPki::must_create();
    for mode in ["no", "optional"] {
        let (node, _tmp) = start_tls(&pki, &["--tls-port", "0", "--tls-auth-clients", mode]);
        let tls_port = node.tls_port.expect("TLS port");
        assert_eq!(pki.try_ping(tls_port, None), Ok("PONG".into()), "{mode}");
        if mode == "optional" {
            assert_eq!(
                pki.try_ping(tls_port, Some("client")),
                Ok("PONG".into()),
                "a valid certificate is accepted"
            );
            assert!(
                pki.try_ping(tls_port, Some("stranger")).is_err(),
                "a certificate is still checked when given"
            );
        }
    }
}

#[test]
fn port_0_with_a_tls_port_serves_tls_only() {
    let pki = TestPki::must_create();
    let tls = free_ports(1)[0].to_string();
    let (node, _tmp) = start_tls(&pki, &["--port", "0", "--tls-port", &tls]);
    assert_eq!(
        node.tls_port,
        Some(node.port),
        "the ready line names the TLS port"
    );
    let mut con = pki.must_connect(node.port, Some("client"));
    assert_eq!(must_cmd(&mut con, &["SET", "only", "tls"]), Value::Okay);
    let port = must_cmd(&mut con, &["CONFIG", "GET", "port"]);
    assert_eq!(port, Value::Array(vec![bulk("port"), bulk("0")]));
    // Nothing plain listens: no other RESP port is reported, and a plain PING on the TLS
    // port is not answered.
    assert_ne!(plain_ping(node.port), b"+PONG\r\n");
}

/// What a plaintext `PING` on `port` gets back before the server closes (or 5 s pass).
fn plain_ping(port: u16) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).expect("tcp");
    raw.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = raw.write_all(b"PING\r\n");
    let mut reply = Vec::new();
    let _ = raw.read_to_end(&mut reply);
    reply
}

/// Runs the binary with `args` and returns its exit success and its stderr.
fn run_to_exit(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cellkv"))
        .args(["--port", "0", "--raft-port", "0", "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cellkv");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_certificate_files_stop_the_node_with_a_clear_error() {
    let pki = TestPki::must_create();
    let tmp = tempfile::tempdir().expect("tempdir");
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "this is not PEM\n").expect("write");
    let missing = tmp.path().join("missing.crt");
    let (node_crt, node_key, client_key, ca) = (
        pki.text("node.crt"),
        pki.text("node.key"),
        pki.text("client.key"),
        pki.text("ca.crt"),
    );
    let (junk, missing) = (junk.display().to_string(), missing.display().to_string());
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--tls-cert-file",
                &missing,
                "--tls-key-file",
                &node_key,
                "--tls-ca-cert-file",
                &ca,
            ],
            "tls-cert-file",
        ),
        (
            &[
                "--tls-cert-file",
                &junk,
                "--tls-key-file",
                &node_key,
                "--tls-ca-cert-file",
                &ca,
            ],
            "holds no PEM certificate",
        ),
        (
            &[
                "--tls-cert-file",
                &node_crt,
                "--tls-key-file",
                &junk,
                "--tls-ca-cert-file",
                &ca,
            ],
            "tls-key-file",
        ),
        (
            // A key that belongs to another certificate.
            &[
                "--tls-cert-file",
                &node_crt,
                "--tls-key-file",
                &client_key,
                "--tls-ca-cert-file",
                &ca,
            ],
            "tls-cert-file and tls-key-file",
        ),
        (
            &["--tls-cert-file", &node_crt, "--tls-key-file", &node_key],
            "tls-ca-cert-file",
        ),
    ];
    for (i, (flags, expected)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("d{i}"));
        let mut args = vec!["--tls-port", "0"];
        args.extend_from_slice(flags);
        let (ok, stderr) = run_to_exit(&dir, &args);
        assert!(!ok, "case {i} started");
        assert!(stderr.contains(expected), "case {i}: {stderr}");
        assert!(!stderr.contains("panicked"), "case {i}: {stderr}");
    }
}

#[test]
fn a_cell_forms_and_replicates_over_mutual_tls() {
    let pki = TestPki::must_create();
    let mut flags = pki.node_flags();
    flags.extend(["--tls-replication".to_string(), "yes".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cell = Cell::must_start_with(3, &flags);
    let leader = cell.must_leader();
    let follower = cell.follower_of(leader);
    let mut on_follower = cell.con(follower);
    assert_eq!(
        must_cmd(&mut on_follower, &["SET", "mtls:k", "replicated"]),
        Value::Okay,
        "a follower forwards the write over mutual TLS"
    );
    for id in 1..=3 {
        let mut con = cell.con(id);
        assert_eq!(
            must_cmd(&mut con, &["GET", "mtls:k"]),
            bulk("replicated"),
            "node {id}"
        );
        let value = must_cmd(&mut con, &["CONFIG", "GET", "tls-replication"]);
        assert_eq!(
            value,
            Value::Array(vec![bulk("tls-replication"), bulk("yes")])
        );
    }
    // The Raft port speaks TLS only: a plaintext gRPC client gets no answer from it.
    let raft_port = cell.raft_port(leader);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let plain = runtime.block_on(async move {
        use cellkv_proto::v1::admin_client::AdminClient;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{raft_port}"))
                .expect("endpoint")
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(2))
                .connect_lazy();
        AdminClient::new(channel)
            .status(cellkv_proto::v1::StatusRequest::default())
            .await
    });
    assert!(plain.is_err(), "{plain:?}");
}
