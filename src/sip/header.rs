//! Header names (long and compact forms) and the few header values the
//! router interprets: Via, CSeq, From/To (name-addr and tag), Require.
//! Everything else is carried as opaque bytes.

/// Header names the router knows; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    ContentLength,
    ContentType,
    Contact,
    MaxForwards,
    Require,
    ProxyRequire,
    Supported,
    PAssertedIdentity,
    UserAgent,
    Subject,
    ContentEncoding,
    Event,
    ReferTo,
    ReferredBy,
    SessionExpires,
    AllowEvents,
    Identity,
    AcceptContact,
    RejectContact,
    RequestDisposition,
    InrouteDecisionId,
    Other,
}

impl HeaderName {
    /// Recognises long and compact forms, case-insensitively.
    pub fn parse(name: &str) -> Self {
        use HeaderName::*;
        if name.len() == 1 {
            return match name.as_bytes()[0].to_ascii_lowercase() {
                b'v' => Via,
                b'f' => From,
                b't' => To,
                b'i' => CallId,
                b'l' => ContentLength,
                b'c' => ContentType,
                b'm' => Contact,
                b'k' => Supported,
                b's' => Subject,
                b'e' => ContentEncoding,
                b'o' => Event,
                b'r' => ReferTo,
                b'b' => ReferredBy,
                b'x' => SessionExpires,
                b'u' => AllowEvents,
                b'y' => Identity,
                b'a' => AcceptContact,
                b'j' => RejectContact,
                b'd' => RequestDisposition,
                _ => Other,
            };
        }
        const LONG: [(&str, HeaderName); 26] = [
            ("via", Via),
            ("from", From),
            ("to", To),
            ("call-id", CallId),
            ("cseq", CSeq),
            ("content-length", ContentLength),
            ("content-type", ContentType),
            ("contact", Contact),
            ("max-forwards", MaxForwards),
            ("require", Require),
            ("proxy-require", ProxyRequire),
            ("supported", Supported),
            ("p-asserted-identity", PAssertedIdentity),
            ("user-agent", UserAgent),
            ("subject", Subject),
            ("content-encoding", ContentEncoding),
            ("event", Event),
            ("refer-to", ReferTo),
            ("referred-by", ReferredBy),
            ("session-expires", SessionExpires),
            ("allow-events", AllowEvents),
            ("identity", Identity),
            ("accept-contact", AcceptContact),
            ("reject-contact", RejectContact),
            ("request-disposition", RequestDisposition),
            ("x-inroute-decision-id", InrouteDecisionId),
        ];
        LONG.iter()
            .find(|(long, _)| long.eq_ignore_ascii_case(name))
            .map_or(Other, |(_, h)| *h)
    }

    /// The canonical long form, for `sip_headers` (`None` for `Other`).
    pub fn canonical(self) -> Option<&'static str> {
        use HeaderName::*;
        Some(match self {
            Via => "Via",
            From => "From",
            To => "To",
            CallId => "Call-ID",
            CSeq => "CSeq",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            Contact => "Contact",
            MaxForwards => "Max-Forwards",
            Require => "Require",
            ProxyRequire => "Proxy-Require",
            Supported => "Supported",
            PAssertedIdentity => "P-Asserted-Identity",
            UserAgent => "User-Agent",
            Subject => "Subject",
            ContentEncoding => "Content-Encoding",
            Event => "Event",
            ReferTo => "Refer-To",
            ReferredBy => "Referred-By",
            SessionExpires => "Session-Expires",
            AllowEvents => "Allow-Events",
            Identity => "Identity",
            AcceptContact => "Accept-Contact",
            RejectContact => "Reject-Contact",
            RequestDisposition => "Request-Disposition",
            InrouteDecisionId => "X-Inroute-Decision-Id",
            Other => return None,
        })
    }
}

/// Splits a header value at top-level commas (not inside quotes or `<>`).
pub fn split_values(value: &[u8]) -> Vec<&[u8]> {
    let (mut out, mut start, mut quoted, mut angle, mut escaped) =
        (Vec::new(), 0, false, false, false);
    for (i, &b) in value.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(super::parse::trim(&value[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(super::parse::trim(&value[start..]));
    out
}

/// The parts of the top Via that matter to a UAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    /// `rport` present (with or without a value).
    pub rport: bool,
}

/// Parses one Via value: `SIP / 2.0 / transport sent-by *(; param)`, with
/// LWS allowed around the separators. Empty parameters are errors.
pub fn parse_via(value: &[u8]) -> Option<Via> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.splitn(3, '/');
    let (proto, version, rest) = (
        parts.next()?.trim(),
        parts.next()?.trim(),
        parts.next()?.trim_start(),
    );
    if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
        return None;
    }
    let transport_end = rest.find([' ', '\t'])?;
    let transport = &rest[..transport_end];
    if transport.is_empty() || !transport.bytes().all(super::parse::is_token_char) {
        return None;
    }
    let mut params = rest[transport_end..].split(';');
    let sent_by = params.next()?.trim();
    let (host, port) = split_host_port(sent_by)?;
    let mut via = Via {
        transport: transport.to_ascii_uppercase(),
        host: host.to_owned(),
        port,
        branch: None,
        rport: false,
    };
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param.trim(), None),
        };
        if name.is_empty() || !name.bytes().all(super::parse::is_token_char) {
            return None;
        }
        match (name.to_ascii_lowercase().as_str(), value) {
            ("branch", Some(v)) if !v.is_empty() => via.branch = Some(v.to_owned()),
            ("branch", _) => return None,
            ("rport", _) => via.rport = true,
            (_, Some("")) => return None,
            _ => {}
        }
    }
    Some(via)
}

/// `host[:port]`, `[v6][:port]`. IPv6 references are taken as written
/// (RFC 5118 §4.10 asks for tolerance of the ABNF bug).
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let host = &s[..=close];
        match &s[close + 1..] {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.starts_with('[')
            && host[1..host.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    if !valid_host {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.trim().parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

/// `CSeq: number method`, the number at most 2^32 - 1.
pub fn parse_cseq(value: &[u8]) -> Option<(u32, &str)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split_ascii_whitespace();
    let (number, method, None) = (parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    if !number.bytes().all(|b| b.is_ascii_digit())
        || !method.bytes().all(super::parse::is_token_char)
    {
        return None;
    }
    Some((number.parse().ok()?, method))
}

/// A From/To/P-Asserted-Identity value: the URI and the `tag` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub uri: &'a str,
    pub tag: Option<&'a str>,
}

/// Parses `[display-name] <uri> *(;param)` or `uri *(;param)`. The display
/// name must be a quoted string (balanced) or tokens; the URI in `<>` has no
/// whitespace. Any URI scheme is accepted here.
pub fn parse_name_addr(value: &[u8]) -> Option<NameAddr<'_>> {
    let text = std::str::from_utf8(value).ok()?;
    let (uri, params) = if let Some(open) = find_unquoted(text, b'<')? {
        let display = text[..open].trim();
        if !display.is_empty() && !is_display_name(display) {
            return None;
        }
        let close = open + text[open..].find('>')?;
        let uri = &text[open + 1..close];
        if uri.is_empty() || uri.contains([' ', '\t']) {
            return None;
        }
        (uri, &text[close + 1..])
    } else {
        let end = text.find(';').unwrap_or(text.len());
        let uri = text[..end].trim();
        if uri.is_empty() || uri.contains([' ', '\t', '"']) {
            return None;
        }
        (uri, &text[end..])
    };
    let mut tag = None;
    for param in params.split(';').skip(1) {
        let (name, value) = param
            .split_once('=')
            .map_or((param.trim(), ""), |(n, v)| (n.trim(), v.trim()));
        if name.eq_ignore_ascii_case("tag") {
            tag = Some(value).filter(|v| !v.is_empty());
        }
    }
    if !params.trim().is_empty() && !params.trim_start().starts_with(';') {
        return None;
    }
    Some(NameAddr { uri, tag })
}

/// Position of `needle` outside a quoted string; `None` inside `Some` when
/// absent; `None` for an unterminated quote.
fn find_unquoted(text: &str, needle: u8) -> Option<Option<usize>> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, b) in text.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if !quoted && b == needle {
            return Some(Some(i));
        }
    }
    if quoted {
        None
    } else {
        Some(None)
    }
}

fn is_display_name(s: &str) -> bool {
    if s.starts_with('"') {
        return s.len() >= 2 && s.ends_with('"');
    }
    s.split_ascii_whitespace()
        .all(|word| word.bytes().all(super::parse::is_token_char))
}

/// Option tags of a `Require` value.
pub fn option_tags(value: &[u8]) -> Vec<String> {
    split_values(value)
        .into_iter()
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_long_names() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("I"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("cSeQ"), HeaderName::CSeq);
        assert_eq!(HeaderName::parse("X-Unknown"), HeaderName::Other);
    }

    #[test]
    fn via_with_lws_and_ipv6() {
        let via = parse_via(b"SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(
            (
                via.transport.as_str(),
                via.host.as_str(),
                via.branch.as_deref()
            ),
            ("UDP", "192.0.2.2", Some("390skdjuw"))
        );
        let via = parse_via(
            b"SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;rport;received=[2001:db8::9:255]",
        )
        .unwrap();
        assert_eq!(
            (via.host.as_str(), via.port, via.rport),
            ("[2001:db8::9:1]", Some(5070), true)
        );
        assert!(parse_via(b"SIP/2.0/UDP 192.0.2.15;;,;,,").is_none());
        assert!(parse_via(b"SIP/2.0/UDP 192.0.2.15;branch=").is_none());
        assert!(parse_via(b"SIP/3.0/UDP h").is_none());
    }

    #[test]
    fn name_addr_forms() {
        let na = parse_name_addr(
            br#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(
            (na.uri, na.tag),
            ("sip:jdrosen@example.com", Some("98asjd8"))
        );
        let na = parse_name_addr(b"sip:+16505552222@ss1.example.net;user=phone").unwrap();
        assert_eq!((na.uri, na.tag), ("sip:+16505552222@ss1.example.net", None));
        assert!(
            parse_name_addr(br#""Mr. J. User <sip:j.user@example.com>"#).is_none(),
            "unbalanced quote"
        );
        assert!(
            parse_name_addr(b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_none(),
            "comma in token"
        );
        assert!(
            parse_name_addr(b"\"W\" <sip:t.watson@example.org >").is_none(),
            "space in addr-spec"
        );
        assert!(
            parse_name_addr(b"<isbn:2983792873>").is_some(),
            "any scheme"
        );
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(parse_cseq(b"0009 INVITE"), Some((9, "INVITE")));
        assert!(parse_cseq(b"36893488147419103232 REGISTER").is_none());
        assert!(parse_cseq(b"1").is_none());
    }
}
