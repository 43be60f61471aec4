//! Tests of the TLS configurations and of `TlsIo` over real loopback sockets.

use super::*;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector, client::TlsStream, server};

const WB: io::ErrorKind = io::ErrorKind::WouldBlock;
const GREETING: &[u8] = b"hello from the server";

fn opts(f: impl FnOnce(&mut ClientTlsOptions)) -> ClientTlsOptions {
    let mut o = ClientTlsOptions::default();
    f(&mut o);
    o
}

fn insecure() -> ClientTlsOptions {
    opts(|o| o.insecure = true)
}

/// `contents` in a file of a fresh temp dir (removed when dropped).
fn temp_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.pem");
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    let limit = Duration::from_secs(30);
    tokio::time::timeout(limit, f).await.expect("timed out")
}

fn self_signed_config() -> (String, Arc<ServerConfig>) {
    let (cert, key) = self_signed().unwrap();
    let config = server_config(&cert, &key).unwrap();
    (cert, config)
}

/// Accepts one TLS connection on 127.0.0.1 (queueing `greeting` before
/// the handshake ends) and runs `body` on it.
async fn serve<F, Fut>(config: Arc<ServerConfig>, greeting: &'static [u8], body: F) -> SocketAddr
where
    F: FnOnce(server::TlsStream<TcpStream>) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<()>> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let acceptor = TlsAcceptor::from(config);
        body(
            acceptor
                .accept_with(tcp, |c| c.writer().write_all(greeting).unwrap())
                .await?,
        )
        .await
    });
    addr
}

/// Echoes until the client's close_notify, then sends its own.
async fn echo(tls: server::TlsStream<TcpStream>) -> io::Result<()> {
    let (mut r, mut w) = tokio::io::split(tls);
    tokio::io::copy(&mut r, &mut w).await?;
    w.shutdown().await
}

async fn handshake(
    o: &ClientTlsOptions,
    addr: SocketAddr,
    host: &str,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = TlsConnector::from(client_config(o).unwrap());
    connector.connect(server_name(o, host).unwrap(), tcp).await
}

/// A handshake that must succeed, taken apart for TlsIo.
async fn open(o: &ClientTlsOptions, addr: SocketAddr, host: &str) -> (TcpStream, TlsIo) {
    let (tcp, conn) = handshake(o, addr, host).await.unwrap().into_inner();
    (tcp, TlsIo::new(conn))
}

/// Sends `data` (the first `first` bytes in one call, so the backlog is
/// used; then 8 KiB whenever nothing is queued) and reads until as much
/// came back, with readable()/writable() as the engine does.
async fn pump(io: &mut TlsIo, tcp: &TcpStream, data: &[u8], first: usize) -> Vec<u8> {
    let mut got = Vec::new();
    io.write_plain(tcp, &data[..first]).unwrap();
    let mut sent = first;
    while got.len() < data.len() {
        while sent < data.len() && !io.wants_write() {
            let end = (sent + 8192).min(data.len());
            io.write_plain(tcp, &data[sent..end]).unwrap();
            sent = end;
        }
        tokio::select! {
            r = tcp.readable() => match (r, io.read_plain(tcp, &mut got)) {
                (Ok(()), Ok(o)) => assert!(!o.eof, "closed after {} bytes", got.len()),
                (Ok(()), Err(e)) if e.kind() == WB => {}
                other => panic!("{other:?}"),
            },
            r = tcp.writable(), if io.wants_write() => { r.unwrap(); io.flush(tcp).unwrap() }
        }
    }
    got
}

/// Reads until the peer closes; returns the last outcome and all plaintext.
async fn read_to_close(io: &mut TlsIo, tcp: &TcpStream) -> (ReadOutcome, Vec<u8>) {
    let mut out = Vec::new();
    loop {
        match io.read_plain(tcp, &mut out) {
            Ok(o) if o.eof => return (o, out),
            Ok(_) => {}
            Err(e) if e.kind() == WB => tcp.readable().await.unwrap(),
            Err(e) => panic!("read_plain: {e}"),
        }
    }
}

#[tokio::test]
async fn echoes_one_mib_through_tlsio_with_custom_ca() {
    let (cert, config) = self_signed_config();
    let addr = serve(config, b"", echo).await;
    let (_dir, ca) = temp_file(&cert);
    let tls = handshake(&opts(|o| o.ca = Some(ca)), addr, "localhost")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (tcp, conn) = tls.into_inner();
    let mut io = TlsIo::new(conn);
    assert_eq!(io.read_plain(&tcp, &mut Vec::new()).unwrap_err().kind(), WB);
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let got = within(pump(&mut io, &tcp, &data, 300 << 10)).await;
    assert!(got == data, "echo differs");
    io.send_close_notify();
    io.flush(&tcp).unwrap();
    let (end, rest) = within(read_to_close(&mut io, &tcp)).await;
    assert!(end.close_notify && rest.is_empty(), "{end:?}");
}

#[tokio::test]
async fn webpki_roots_alone_reject_self_signed_and_insecure_accepts_it() {
    let (_, config) = self_signed_config();
    let addr = serve(config.clone(), b"", echo).await;
    let err = handshake(&opts(|_| ()), addr, "localhost")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    // Even for a name the certificate does not cover.
    let (tcp, mut io) = open(&insecure(), serve(config, b"", echo).await, "example.com").await;
    let data = vec![7u8; 5000];
    assert_eq!(within(pump(&mut io, &tcp, &data, 0)).await, data);
}

#[tokio::test]
async fn server_name_override_is_what_gets_verified() {
    let (cert, config) = self_signed_config();
    let (_dir, ca) = temp_file(&cert);
    let mut o = opts(|o| (o.ca, o.server_name) = (Some(ca), Some("localhost".into())));
    assert_eq!(
        server_name(&o, "127.0.0.1").unwrap(),
        ServerName::try_from("localhost").unwrap()
    );
    open(&o, serve(config.clone(), b"", echo).await, "127.0.0.1").await;
    o.server_name = Some("wrong.example".into());
    let err = handshake(&o, serve(config, b"", echo).await, "127.0.0.1")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate not valid for name"),
        "{err}"
    );

    let o = ClientTlsOptions::default();
    for (host, ip) in [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("::1", "::1")] {
        let want = ServerName::IpAddress(ip.parse::<IpAddr>().unwrap().into());
        assert_eq!(server_name(&o, host).unwrap(), want, "{host}");
    }
    assert!(matches!(
        server_name(&o, "echo.example.com"),
        Ok(ServerName::DnsName(_))
    ));
    let err = server_name(&o, "not a host").unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid TLS server name \"not a host\": not a DNS name or IP address"
    );
}

#[test]
fn self_signed_covers_localhost_and_both_loopbacks() {
    let (cert, _) = self_signed().unwrap();
    let cert = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let builder = rustls::client::WebPkiServerVerifier::builder_with_provider;
    let verifier = builder(roots.into(), provider()).build().unwrap();
    let hosts = [
        ("localhost", true),
        ("127.0.0.1", true),
        ("::1", true),
        ("a.example", false),
    ];
    for (host, ok) in hosts {
        let name = server_name(&ClientTlsOptions::default(), host).unwrap();
        let r = verifier.verify_server_cert(&cert, &[], &name, &[], UnixTime::now());
        assert_eq!(r.is_ok(), ok, "{host}: {r:?}");
    }
}

#[test]
fn setup_errors_name_the_file_and_the_problem() {
    let (cert, key) = self_signed().unwrap();
    let ((_d1, c), (_d2, k)) = (temp_file(&cert), temp_file(&key));
    let gone = c.with_file_name("missing.pem");
    let some = |p: &PathBuf| Some(p.clone());
    // (options, the error's Debug prefix, the path its message names)
    let cases = [
        (opts(|o| o.ca = some(&gone)), "Read", Some(&gone)),
        (
            opts(|o| (o.cert, o.key) = (some(&gone), some(&k))),
            "Read",
            Some(&gone),
        ),
        (opts(|o| o.ca = some(&k)), "NoCertificate", Some(&k)),
        (
            opts(|o| (o.cert, o.key) = (some(&c), some(&c))),
            "NoPrivateKey",
            Some(&c),
        ),
        (opts(|o| o.cert = some(&c)), "CertWithoutKey", None),
        (opts(|o| o.key = some(&k)), "KeyWithoutCert", None),
    ];
    for (o, kind, path) in cases {
        let e = client_config(&o).unwrap_err();
        assert!(format!("{e:?}").starts_with(kind), "{o:?}: {e:?}");
        let named = path.is_none_or(|p| e.to_string().contains(&p.display().to_string()));
        assert!(named, "{e}");
    }
    let config = server_config_from_files(&c, &k).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1"]);
    let e = server_config_from_files(&k, &k).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("no certificate found in {}", k.display())
    );
    let e = server_config(&cert, "").unwrap_err();
    assert!(matches!(e, TlsSetupError::NoPrivateKey(_)), "{e}");
    let e = server_config(&cert, &self_signed().unwrap().1).unwrap_err();
    assert!(
        matches!(e, TlsSetupError::Rustls(_)),
        "another certificate's key: {e}"
    );
}

/// The greeting comes in the server's handshake flight (TLS 1.3 half-RTT
/// data, no session tickets after it), so the handshake driver decrypts
/// it and only read_plain's own draining of rustls can deliver it; then
/// the server drops TCP without a close_notify.
#[tokio::test]
async fn handshake_leftovers_then_tcp_eof_without_close_notify() {
    let (_, config) = self_signed_config();
    let mut config = (*config).clone();
    (config.send_half_rtt_data, config.send_tls13_tickets) = (true, 0);
    let body = |tls: server::TlsStream<_>| async move {
        drop(tls.into_inner()); // no close_notify
        Ok(())
    };
    let addr = serve(Arc::new(config), GREETING, body).await;
    let tls = handshake(&insecure(), addr, "localhost").await.unwrap();
    let (tcp, mut conn) = tls.into_inner();
    // The premise: the greeting is already decrypted inside rustls.
    let held = conn
        .process_new_packets()
        .unwrap()
        .plaintext_bytes_to_read();
    assert_eq!(held, GREETING.len());
    let (end, out) = within(read_to_close(&mut TlsIo::new(conn), &tcp)).await;
    assert!(end.eof && !end.close_notify, "{end:?}");
    assert_eq!(out, GREETING);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let ((server_cert, server_key), (client_cert, client_key)) =
        (self_signed().unwrap(), self_signed().unwrap());
    let mut client_roots = RootCertStore::empty();
    client_roots.add_parsable_certificates(parse_certs(client_cert.as_bytes(), "").unwrap());
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider;
    let verifier = builder(client_roots.into(), provider()).build().unwrap();
    let server_chain = parse_certs(server_cert.as_bytes(), "").unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_chain, parse_key(server_key.as_bytes(), "").unwrap())
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let body = |tls: server::TlsStream<_>| async move {
        let _ = tx.send(tls.get_ref().1.peer_certificates().map(<[_]>::len));
        Ok(())
    };
    let addr = serve(Arc::new(config), b"", body).await;
    let files = [&server_cert, &client_cert, &client_key].map(|pem| temp_file(pem));
    let [ca, cert, key] = files.each_ref().map(|(_, path)| Some(path.clone()));
    open(
        &opts(|o| (o.ca, o.cert, o.key) = (ca, cert, key)),
        addr,
        "localhost",
    )
    .await;
    assert_eq!(rx.await.unwrap(), Some(1));
}

/// A self-signed CA:TRUE certificate for localhost and 127.0.0.1 (what
/// `openssl req -x509` makes), with `f` applied to its parameters first.
fn ca_cert(f: impl FnOnce(&mut rcgen::CertificateParams)) -> (rcgen::Certificate, rcgen::KeyPair) {
    let sans = ["localhost", "127.0.0.1"].map(String::from).to_vec();
    let mut params = rcgen::CertificateParams::new(sans).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    f(&mut params);
    let key = rcgen::KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap(), key)
}

/// The verifier `client_config` builds for `tls.ca` = `pinned`.
fn pinning_verifier(pinned: &[&rcgen::Certificate]) -> pin::PinningVerifier {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let pinned: Vec<_> = pinned.iter().map(|c| c.der().clone()).collect();
    for cert in &pinned {
        roots.add(cert.clone()).unwrap();
    }
    let builder = rustls::client::WebPkiServerVerifier::builder_with_provider;
    let webpki = builder(roots.into(), provider()).build().unwrap();
    pin::PinningVerifier::new(webpki, pinned)
}

fn at(year: i64) -> UnixTime {
    let secs = pin::days_from_civil(year, 6, 1) * 86_400;
    UnixTime::since_unix_epoch(Duration::from_secs(secs.try_into().unwrap()))
}

#[test]
fn a_pinned_ca_certificate_is_accepted_for_its_names_and_dates_only() {
    let (a, _) = ca_cert(|p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    });
    let (b, _) = ca_cert(|_| ());
    let verifier = pinning_verifier(&[&a]);
    let check = |cert: &rcgen::Certificate, host: &str, now| {
        let name = server_name(&ClientTlsOptions::default(), host).unwrap();
        verifier
            .verify_server_cert(cert.der(), &[], &name, &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // webpki alone refuses it as a leaf, even with it as a root.
    let mut roots = RootCertStore::empty();
    roots.add(a.der().clone()).unwrap();
    let builder = rustls::client::WebPkiServerVerifier::builder_with_provider;
    let webpki = builder(roots.into(), provider()).build().unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let err = webpki.verify_server_cert(a.der(), &[], &name, &[], at(2025));
    assert!(format!("{err:?}").contains("CaUsedAsEndEntity"), "{err:?}");

    assert_eq!(check(&a, "localhost", at(2025)), Ok(()));
    assert_eq!(check(&a, "127.0.0.1", at(2025)), Ok(()));
    let err = check(&a, "a.example", at(2025)).unwrap_err();
    assert!(err.contains("certificate not valid for name"), "{err}");
    let err = check(&a, "localhost", at(2019)).unwrap_err();
    assert!(err.contains("not valid yet"), "{err}");
    let err = check(&a, "localhost", at(2031)).unwrap_err();
    assert!(err.contains("expired"), "{err}");
    // A CA certificate with the same names, not pinned: webpki's verdict.
    let err = check(&b, "localhost", at(2025)).unwrap_err();
    assert!(err.contains("CaUsedAsEndEntity"), "{err}");
    // Pinned too: accepted.
    let both = pinning_verifier(&[&a, &b]);
    let r = both.verify_server_cert(b.der(), &[], &name, &[], UnixTime::now());
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn a_pinned_certificate_keeps_its_extended_key_usage() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let name = ServerName::try_from("localhost").unwrap();
    for (ekus, ok) in [
        (vec![], true),
        (vec![ServerAuth], true),
        (vec![ClientAuth, ServerAuth], true),
        (vec![ClientAuth], false),
    ] {
        let (cert, _) = ca_cert(|p| p.extended_key_usages = ekus.clone());
        let r = pinning_verifier(&[&cert]).verify_server_cert(
            cert.der(),
            &[],
            &name,
            &[],
            UnixTime::now(),
        );
        assert_eq!(r.is_ok(), ok, "{ekus:?}: {r:?}");
        if !ok {
            assert!(format!("{r:?}").contains("InvalidPurpose"), "{r:?}");
        }
    }
}

#[test]
fn certificates_issued_by_a_pinned_ca_are_verified_as_before() {
    let (ca, ca_key) = ca_cert(|p| {
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    });
    let issuer_params = {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p
    };
    // rcgen names issuers by their distinguished name: the default one, as
    // `ca_cert` leaves it.
    let issuer = rcgen::Issuer::from_params(&issuer_params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let make_leaf = |sans: &[&str], not_after| {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.not_after = not_after;
        p.signed_by(&leaf_key, &issuer).unwrap()
    };
    let verifier = pinning_verifier(&[&ca]);
    let name = ServerName::try_from("localhost").unwrap();
    let verify = |leaf: &rcgen::Certificate| {
        verifier.verify_server_cert(leaf.der(), &[], &name, &[], UnixTime::now())
    };
    let good = make_leaf(&["localhost"], rcgen::date_time_ymd(4000, 1, 1));
    assert!(verify(&good).is_ok(), "{:?}", verify(&good));
    let wrong_name = make_leaf(&["a.example"], rcgen::date_time_ymd(4000, 1, 1));
    let err = format!("{:?}", verify(&wrong_name));
    assert!(err.contains("NotValidForName"), "{err}");
    let expired = make_leaf(&["localhost"], rcgen::date_time_ymd(2001, 1, 1));
    let err = format!("{:?}", verify(&expired));
    assert!(err.contains("Expired"), "{err}");
}

#[test]
fn certificate_facts_read_both_time_forms_and_refuse_garbage() {
    assert_eq!(pin::days_from_civil(1970, 1, 1), 0);
    assert_eq!(pin::days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(pin::days_from_civil(1969, 12, 31), -1);
    // rcgen writes UTCTime for 1950..2050, GeneralizedTime otherwise.
    let cases = [
        ((1950, 1, 1), (2049, 12, 31), -631_152_000, 2_524_521_600),
        ((1975, 1, 1), (4096, 1, 1), 157_766_400, 67_090_118_400),
        ((1949, 12, 31), (2050, 1, 1), -631_238_400, 2_524_608_000),
    ];
    for ((y0, m0, d0), (y1, m1, d1), before, after) in cases {
        let (cert, _) = ca_cert(|p| {
            p.not_before = rcgen::date_time_ymd(y0, m0, d0);
            p.not_after = rcgen::date_time_ymd(y1, m1, d1);
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        });
        let facts = pin::CertFacts::read(cert.der()).unwrap();
        assert_eq!(
            facts,
            pin::CertFacts {
                not_before: before,
                not_after: after,
                server_auth_allowed: false,
            },
            "{y0}..{y1}"
        );
    }
    let (cert, _) = ca_cert(|_| ());
    let der = cert.der().as_ref();
    assert!(pin::CertFacts::read(der).unwrap().server_auth_allowed);
    for bad in [
        &der[..der.len() / 2],
        &der[1..],
        b"",
        b"\x30\x84\xff\xff\xff\xff",
    ] {
        assert_eq!(pin::CertFacts::read(bad), None);
    }
}

#[tokio::test]
async fn handshake_with_a_pinned_ca_certificate_checks_signatures_and_dates() {
    let (cert, key) = ca_cert(|_| ());
    let config = server_config(&cert.pem(), &key.serialize_pem()).unwrap();
    let (_dir, ca) = temp_file(&cert.pem());
    let o = opts(|o| o.ca = Some(ca));
    let (tcp, mut io) = open(&o, serve(config.clone(), b"", echo).await, "127.0.0.1").await;
    let data = vec![9u8; 3000];
    assert_eq!(within(pump(&mut io, &tcp, &data, 0)).await, data);
    drop((tcp, io));

    // A server presenting the pinned certificate without its private key
    // (signing with another key): the handshake signature is refused.
    let (_, other_key) = ca_cert(|_| ());
    let other_key = PrivateKeyDer::from_pem_slice(other_key.serialize_pem().as_bytes()).unwrap();
    let signer = provider().key_provider.load_private_key(other_key).unwrap();
    let forged = rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signer);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(forged)));
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    let addr = serve(Arc::new(config), b"", echo).await;
    let err = handshake(&o, addr, "localhost")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("signature"), "{err}");

    let (old, old_key) = ca_cert(|p| p.not_after = rcgen::date_time_ymd(2001, 1, 1));
    let config = server_config(&old.pem(), &old_key.serialize_pem()).unwrap();
    let (_dir, ca) = temp_file(&old.pem());
    let err = handshake(
        &opts(|o| o.ca = Some(ca)),
        serve(config, b"", echo).await,
        "localhost",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("expired"), "{err}");
}
