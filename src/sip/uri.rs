//! Request-URI parsing: `sip:`, `sips:` and `tel:` (RFC 3261 §19.1, RFC 3966).
//! Only what routing needs: the scheme, the user part (unescaped once), the
//! host. A Request-URI with `?headers` is refused (the strict choice for
//! RFC 4475 §3.1.2.11).

use std::borrow::Cow;

use super::header::split_host_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// A parsed Request-URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUri<'a> {
    pub scheme: Scheme,
    /// The user part, or the number of a `tel:` URI, `%`-unescaped once.
    pub user: Option<Cow<'a, str>>,
    /// Empty for `tel:`.
    pub host: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("unsupported URI scheme")]
    UnsupportedScheme,
    #[error("malformed Request-URI")]
    Malformed,
}

/// Parses a Request-URI.
pub fn parse_request_uri(uri: &str) -> Result<RequestUri<'_>, UriError> {
    let colon = uri.find(':').ok_or(UriError::Malformed)?;
    let scheme = &uri[..colon];
    let valid_scheme = scheme
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !valid_scheme {
        return Err(UriError::Malformed);
    }
    let rest = &uri[colon + 1..];
    if rest.is_empty()
        || rest
            .bytes()
            .any(|b| b <= b' ' || b == b'<' || b == b'>' || b == b'"')
    {
        return Err(UriError::Malformed);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "sip" => sip(Scheme::Sip, rest),
        "sips" => sip(Scheme::Sips, rest),
        "tel" => {
            let number = rest.split(';').next().unwrap_or_default();
            if number.is_empty() {
                return Err(UriError::Malformed);
            }
            Ok(RequestUri {
                scheme: Scheme::Tel,
                user: Some(unescape(number)?),
                host: "",
            })
        }
        _ => Err(UriError::UnsupportedScheme),
    }
}

fn sip(scheme: Scheme, rest: &str) -> Result<RequestUri<'_>, UriError> {
    let (userinfo, hostpart) = match rest.find('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    if hostpart.contains('?') {
        return Err(UriError::Malformed);
    }
    let hostport = hostpart.split(';').next().unwrap_or_default();
    let (host, _port) = split_host_port(hostport).ok_or(UriError::Malformed)?;
    let user = match userinfo {
        Some("") => return Err(UriError::Malformed),
        Some(info) => Some(unescape(info.split(':').next().unwrap_or(info))?),
        None => None,
    };
    Ok(RequestUri { scheme, user, host })
}

/// Decodes `%XX` once; a `%` not followed by two hex digits is an error.
pub fn unescape(s: &str) -> Result<Cow<'_, str>, UriError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(UriError::Malformed)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UriError::Malformed)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris() {
        let u = parse_request_uri("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(
            (u.user.as_deref(), u.host),
            (Some("sips:user@example.com"), "example.net")
        );
        let u = parse_request_uri("tel:+14155550100;phone-context=x").unwrap();
        assert_eq!(
            (u.scheme, u.user.as_deref()),
            (Scheme::Tel, Some("+14155550100"))
        );
        let u = parse_request_uri("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u@example.net"));
        let u = parse_request_uri("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!((u.host, u.user), ("[2001:db8::10]", None));
        assert_eq!(
            parse_request_uri("sip:[2001:db8::10:5070]").unwrap().host,
            "[2001:db8::10:5070]"
        );
        assert_eq!(
            parse_request_uri("nobodyknows:x"),
            Err(UriError::UnsupportedScheme)
        );
        assert_eq!(
            parse_request_uri("soap.beep://192.0.2.103:3002"),
            Err(UriError::UnsupportedScheme)
        );
        for bad in [
            "<sip:user@example.com>",
            "sip:2001:db8::10",
            "sip:user@example.com?Route=%3Csip:x%3E",
            "sip:",
            "sip:@x",
        ] {
            assert_eq!(parse_request_uri(bad), Err(UriError::Malformed), "{bad}");
        }
    }
}
