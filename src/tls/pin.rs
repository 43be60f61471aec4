//! Server certificates pinned by `tls.ca`.
//!
//! `openssl req -x509 ...` makes a self-signed certificate with
//! basicConstraints `CA:TRUE`. Trusted through `tls.ca` and presented by the
//! server as its own certificate, webpki refuses it (`CaUsedAsEndEntity`: a
//! CA certificate may not be a leaf), while curl, Python, Node and Go accept
//! it. [`PinningVerifier`] accepts it too, but only when the server's
//! end-entity certificate is byte-for-byte one of the `tls.ca` certificates;
//! the server name, the validity period and the extended key usage are still
//! checked, and the handshake signatures still verified with the
//! certificate's key. Every other certificate goes through the normal webpki
//! verification, unchanged.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The webpki verifier (webpki roots + `tls.ca` as roots), plus the `tls.ca`
/// certificates accepted as the server's own certificate when identical.
#[derive(Debug)]
pub(super) struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinningVerifier {
    pub(super) fn new(
        inner: Arc<WebPkiServerVerifier>,
        pinned: Vec<CertificateDer<'static>>,
    ) -> Self {
        Self { inner, pinned }
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let err = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(err) => err,
        };
        if !self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Err(err);
        }
        check_pinned(end_entity, server_name, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// What a pinned certificate must still satisfy: valid for `server_name`
/// (its SANs, checked by webpki), within its validity period at `now`, and
/// an extended key usage, when it has one, that includes serverAuth (as
/// webpki requires of any server certificate).
pub(super) fn check_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    verify_server_name(&parsed, server_name)?;
    let facts = CertFacts::read(cert.as_ref()).ok_or(CertificateError::BadEncoding)?;
    facts.check_validity(now)?;
    if !facts.server_auth_allowed {
        return Err(CertificateError::InvalidPurpose.into());
    }
    Ok(())
}

/// The parts of a certificate that webpki checks but does not expose:
/// validity (seconds since the Unix epoch, negative before 1970) and
/// whether the extended key usage allows a TLS server.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CertFacts {
    pub not_before: i64,
    pub not_after: i64,
    /// No extendedKeyUsage extension, or one listing id-kp-serverAuth.
    pub server_auth_allowed: bool,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` of TBSCertificate.
const VERSION: u8 = 0xa0;
/// `[3] EXPLICIT Extensions` of TBSCertificate.
const EXTENSIONS: u8 = 0xa3;
/// 2.5.29.37, id-ce-extKeyUsage.
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// 1.3.6.1.5.5.7.3.1, id-kp-serverAuth.
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

impl CertFacts {
    /// Reads an X.509 certificate (DER); `None` when it is malformed.
    pub(super) fn read(der: &[u8]) -> Option<Self> {
        let (cert, _) = expect(der, SEQUENCE)?;
        let (tbs, _) = expect(cert, SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&VERSION) {
            rest = tlv(rest)?.2;
        }
        rest = expect(rest, INTEGER)?.1; // serialNumber
        rest = expect(rest, SEQUENCE)?.1; // signature
        rest = expect(rest, SEQUENCE)?.1; // issuer
        let (validity, after) = expect(rest, SEQUENCE)?;
        let (not_before, validity) = read_time(validity)?;
        let (not_after, validity) = read_time(validity)?;
        if !validity.is_empty() {
            return None;
        }
        rest = expect(after, SEQUENCE)?.1; // subject
        rest = expect(rest, SEQUENCE)?.1; // subjectPublicKeyInfo
        // Optional issuerUniqueID [1], subjectUniqueID [2], extensions [3].
        let mut server_auth_allowed = true;
        while !rest.is_empty() {
            let (tag, value, next) = tlv(rest)?;
            if tag == EXTENSIONS {
                server_auth_allowed = read_extensions(value)?;
            }
            rest = next;
        }
        Some(Self {
            not_before,
            not_after,
            server_auth_allowed,
        })
    }

    /// webpki's rule: valid from `not_before` through `not_after`, both
    /// inclusive, with the same errors as webpki reports.
    fn check_validity(&self, now: UnixTime) -> Result<(), rustls::Error> {
        let secs =
            |t: i64| UnixTime::since_unix_epoch(Duration::from_secs(t.max(0).unsigned_abs()));
        let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if self.not_before > self.not_after {
            return Err(CertificateError::Expired.into());
        }
        if time < self.not_before {
            return Err(CertificateError::NotValidYetContext {
                time: now,
                not_before: secs(self.not_before),
            }
            .into());
        }
        if time > self.not_after {
            return Err(CertificateError::ExpiredContext {
                time: now,
                not_after: secs(self.not_after),
            }
            .into());
        }
        Ok(())
    }
}

/// `Extensions ::= SEQUENCE OF Extension`: whether serverAuth is allowed
/// (no extendedKeyUsage, or one listing serverAuth).
fn read_extensions(explicit: &[u8]) -> Option<bool> {
    let (mut list, _) = expect(explicit, SEQUENCE)?;
    let mut allowed = true;
    while !list.is_empty() {
        let (ext, next) = expect(list, SEQUENCE)?;
        list = next;
        let (oid, mut rest) = expect(ext, OID)?;
        if rest.first() == Some(&BOOLEAN) {
            rest = tlv(rest)?.2; // critical
        }
        let (value, _) = expect(rest, OCTET_STRING)?;
        if oid == OID_EXT_KEY_USAGE {
            let (mut purposes, _) = expect(value, SEQUENCE)?;
            allowed = false;
            while !purposes.is_empty() {
                let (purpose, next) = expect(purposes, OID)?;
                allowed |= purpose == OID_SERVER_AUTH;
                purposes = next;
            }
        }
    }
    Some(allowed)
}

/// One DER element: (tag, contents, what follows). Single-byte tags and
/// definite lengths only, as DER certificates have.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((tag, value, rest))
}

/// The element at the start of `input` when its tag is `tag`: (contents,
/// what follows).
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, value, rest) = tlv(input)?;
    (t == tag).then_some((value, rest))
}

/// `Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }` as
/// RFC 5280 constrains them (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`; UTCTime
/// years 50–99 are 19xx): seconds since the Unix epoch, and what follows.
fn read_time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, value, rest) = tlv(input)?;
    let (year, digits) = match (tag, value.len()) {
        (UTC_TIME, 13) => {
            let yy = number(&value[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &value[2..])
        }
        (GENERALIZED_TIME, 15) => (number(&value[..4])?, &value[4..]),
        _ => return None,
    };
    if digits[10] != b'Z' {
        return None;
    }
    let month = number(&digits[0..2])?;
    let day = number(&digits[2..4])?;
    let hour = number(&digits[4..6])?;
    let minute = number(&digits[6..8])?;
    let second = number(&digits[8..10])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, rest))
}

/// ASCII decimal digits (and nothing else) as a number.
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
