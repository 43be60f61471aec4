//! `tls.ca` pinning over real loopback sockets: a self-signed certificate
//! with basicConstraints CA:TRUE (what `openssl req -x509` makes), trusted
//! with `tls: { ca: ... }` and presented by barrage's server as its own
//! certificate, is accepted, as curl, Python, Node and Go accept it. The
//! server name is still checked against its SANs, and a CA:TRUE certificate
//! that is not the pinned one is still refused.

use crate::common;

use std::path::{Path, PathBuf};

use barrage::server::{self, Mode, Options, ServerHandle};
use common::{read_report, run_yaml};

/// A self-signed CA:TRUE certificate for localhost and 127.0.0.1, written
/// as `dir/{name}.pem` and `dir/{name}.key`; returns both paths.
fn ca_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let sans = ["localhost", "127.0.0.1"].map(String::from).to_vec();
    let mut params = rcgen::CertificateParams::new(sans).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// barrage's echo server on 127.0.0.1 with TLS from PEM files, loaded as
/// `barrage serve --tls --cert C --key K` loads them.
async fn tls_server(cert: &Path, key: &Path) -> ServerHandle {
    let opts = Options {
        tls: Some(barrage::tls::server_config_from_files(cert, key).unwrap()),
        ..Mode::Echo.into()
    };
    server::start("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap()
}

const CONNECTIONS: u64 = 4;

/// Runs a short scenario against `wss://127.0.0.1:port/` with `tls`;
/// returns (exit code, report totals).
async fn run(dir: &Path, label: &str, port: u16, tls: &str) -> (u8, serde_json::Value) {
    let yaml = format!(
        "name: {label}\ntarget: wss://127.0.0.1:{port}/\ntls: {tls}\n\
         connections: {{ count: {CONNECTIONS} }}\n\
         phases:\n  - {{ name: p, duration: 500ms, rate: 40/s }}\n"
    );
    let out = dir.join(label);
    let outcome = run_yaml(&yaml, &out).await;
    (outcome.exit_code(), read_report(&out)["totals"].clone())
}

fn error_count(totals: &serde_json::Value) -> u64 {
    totals["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// Every connection refused at the TLS handshake, for a certificate reason.
fn assert_all_refused_by_tls(code: u8, t: &serde_json::Value) {
    assert_eq!(code, 3, "no connection opened: {t}");
    assert_eq!(t["connections"]["opened"], 0, "{t}");
    assert_eq!(t["errors"]["tls"], CONNECTIONS, "{t}");
    let why = t["recent_errors"].to_string();
    assert!(
        why.contains("tls:") && why.to_lowercase().contains("certificate"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_certificate_pinned_by_tls_ca_is_accepted_as_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_cert(dir.path(), "server");
    let srv = tls_server(&cert, &key).await;
    let port = srv.local_addr.port();
    let ca = cert.display();

    // Verified against the IP SAN (the URL host), then the DNS SAN.
    for (label, tls) in [
        ("by-ip", format!("{{ ca: {ca} }}")),
        ("by-name", format!("{{ ca: {ca}, server_name: localhost }}")),
    ] {
        let (code, t) = run(dir.path(), label, port, &tls).await;
        assert_eq!(code, 0, "{label}: {t}");
        assert_eq!(t["connections"]["opened"], CONNECTIONS, "{label}: {t}");
        assert_eq!(error_count(&t), 0, "{label}: {t}");
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pinned_certificate_can_be_any_of_several_in_tls_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = ca_cert(dir.path(), "first");
    let (cert, key) = ca_cert(dir.path(), "server");
    let bundle = dir.path().join("bundle.pem");
    let pems = [&first, &cert].map(|p| std::fs::read_to_string(p).unwrap());
    std::fs::write(&bundle, pems.concat()).unwrap();
    let srv = tls_server(&cert, &key).await;

    let tls = format!("{{ ca: {} }}", bundle.display());
    let (code, t) = run(dir.path(), "bundle", srv.local_addr.port(), &tls).await;
    assert_eq!(code, 0, "{t}");
    assert_eq!(t["connections"]["opened"], CONNECTIONS, "{t}");
    assert_eq!(error_count(&t), 0, "{t}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_is_still_checked_against_the_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_cert(dir.path(), "server");
    let srv = tls_server(&cert, &key).await;

    let tls = format!("{{ ca: {}, server_name: example.com }}", cert.display());
    let (code, t) = run(dir.path(), "wrong-name", srv.local_addr.port(), &tls).await;
    assert_all_refused_by_tls(code, &t);
    let why = t["recent_errors"].to_string();
    assert!(why.contains("example.com"), "names the name: {why}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_ca_certificate_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (pinned, _) = ca_cert(dir.path(), "pinned");
    // Same subject, same SANs, CA:TRUE: only the bytes differ.
    let (other, other_key) = ca_cert(dir.path(), "other");
    let srv = tls_server(&other, &other_key).await;

    let tls = format!("{{ ca: {}, server_name: localhost }}", pinned.display());
    let (code, t) = run(dir.path(), "not-pinned", srv.local_addr.port(), &tls).await;
    assert_all_refused_by_tls(code, &t);
    srv.shutdown().await;
}
