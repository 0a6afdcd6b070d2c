//! Field validation for request bodies: every problem is collected and
//! reported at once with its JSON path.

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{ApiError, FieldError};

/// Collects field errors; [`Violations::finish`] turns them into one 422.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<FieldError>);

impl Violations {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records `message` at `path` unless `ok`.
    pub(crate) fn check(&mut self, ok: bool, path: &str, message: &str) {
        if !ok {
            self.push(path, message);
        }
    }

    /// `Ok` if nothing was recorded, else a 422 listing everything.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// `+` then 2 to 15 digits, the first not 0 (ITU-T E.164).
pub(crate) fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A CIDR (`203.0.113.0/24`, `2001:db8::/32`) or a bare address (a /32 or
/// /128), normalized with host bits cleared. `None` if it is neither.
pub(crate) fn normalize_cidr(s: &str) -> Option<String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc().to_string());
    }
    s.parse::<IpAddr>()
        .ok()
        .map(|ip| IpNet::from(ip).to_string())
}

/// Agent ids travel in SIP URIs and headers: letters, digits, `_ - .`, 1–64.
pub(crate) fn is_agent_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A `sip:` or `sips:` URI with a plausible host (RFC 3261 §19.1, checked
/// structurally: scheme, optional user, host or `[IPv6]`, optional port and
/// parameters; no spaces, angle brackets or quotes).
pub(crate) fn is_sip_uri(s: &str) -> bool {
    let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("sip:") {
        &s[4..]
    } else if lower == "sips:" {
        &s[5..]
    } else {
        return false;
    };
    if s.len() > 512 || rest.bytes().any(|b| b <= b' ' || b"<>\"\x7f".contains(&b)) {
        return false;
    }
    let hostport_and_rest = match rest.rfind('@') {
        Some(at) if at > 0 => &rest[at + 1..],
        Some(_) => return false,
        None => rest,
    };
    let hostport = hostport_and_rest
        .split([';', '?'])
        .next()
        .unwrap_or_default();
    is_hostport(hostport)
}

fn is_hostport(hostport: &str) -> bool {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return false,
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(hostport), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !h.starts_with(['.', '-'])
    });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// A country calling code: 1 to 3 digits, not starting with 0.
pub(crate) fn is_country_code(s: &str) -> bool {
    (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        for good in ["+14155550100", "+442071838750", "+12"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "14155550100",
            "+0123",
            "+1",
            "+1415555010012345",
            "+1 415",
            "+1-415",
            "",
            "+",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn cidrs_are_normalized() {
        assert_eq!(
            normalize_cidr("203.0.113.5/24").as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(normalize_cidr("127.0.0.1").as_deref(), Some("127.0.0.1/32"));
        assert_eq!(normalize_cidr("::1").as_deref(), Some("::1/128"));
        assert_eq!(
            normalize_cidr("2001:db8::1/32").as_deref(),
            Some("2001:db8::/32")
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "host.example",
            "10.0.0",
            "1.2.3.4/",
            "'; DROP TABLE trunks;--",
        ] {
            assert!(normalize_cidr(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sip_uris() {
        for good in [
            "sip:agent@agents.example.com",
            "sips:agent@agents.example.com:5061;transport=tls",
            "sip:10.0.0.1",
            "sip:a@[2001:db8::1]:5060",
            "SIP:a@example.com",
        ] {
            assert!(is_sip_uri(good), "{good}");
        }
        for bad in [
            "http://example.com",
            "sip:",
            "sip:@example.com",
            "sip:a b@example.com",
            "sip:a@exa mple.com",
            "sip:a@example.com:99999",
            "sip:a@[2001:db8::1",
            "<sip:a@example.com>",
            "tel:+14155550100",
        ] {
            assert!(!is_sip_uri(bad), "{bad}");
        }
    }

    #[test]
    fn agent_ids() {
        assert!(is_agent_id("agent_123"));
        assert!(!is_agent_id(""));
        assert!(!is_agent_id("a@b"));
        assert!(!is_agent_id("x'; --"));
    }
}
