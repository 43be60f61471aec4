//! `source_ips:`: local addresses connections are bound to before connecting,
//! to spread them past one address's ephemeral port range.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Most addresses one scenario may list (a /16).
const MAX_ADDRESSES: u32 = 65_536;

/// Parses one entry: an address (`127.0.0.2`, `::1`) or an inclusive IPv4
/// range (`127.0.0.1-127.0.0.8`).
pub fn parse_source_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let parse = |x: &str| {
            x.trim().parse::<Ipv4Addr>().map_err(|_| {
                format!(
                    "{:?} is not an IPv4 address (ranges are IPv4 only)",
                    x.trim()
                )
            })
        };
        let (a, b) = (u32::from(parse(a)?), u32::from(parse(b)?));
        if b < a {
            return Err(format!("range {s:?} ends before it starts"));
        }
        if b - a >= MAX_ADDRESSES {
            return Err(format!(
                "range {s:?} has more than {MAX_ADDRESSES} addresses"
            ));
        }
        return Ok((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect());
    }
    s.parse::<IpAddr>()
        .map(|ip| vec![ip])
        .map_err(|_| format!("{s:?} is not an IP address or a range like 127.0.0.1-127.0.0.8"))
}

/// Deserializes `source_ips` from a string or a list of strings.
pub(crate) fn de_source_ips<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<IpAddr>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an address, a range like 127.0.0.1-127.0.0.8, or a list of them")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_source_ips(v).map_err(E::custom)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.extend(parse_source_ips(&s).map_err(de::Error::custom)?);
            }
            if out.is_empty() {
                return Err(de::Error::custom(
                    "the list is empty; leave source_ips out instead",
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_single_addresses() {
        let r = parse_source_ips("127.0.0.1-127.0.0.3").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].to_string(), "127.0.0.3");
        assert_eq!(parse_source_ips("::1").unwrap()[0].to_string(), "::1");
        assert!(
            parse_source_ips("127.0.0.3-127.0.0.1")
                .unwrap_err()
                .contains("ends before")
        );
        assert!(
            parse_source_ips("10.0.0.0-10.2.0.0")
                .unwrap_err()
                .contains("more than")
        );
        assert!(parse_source_ips("localhost").is_err());
    }
}
