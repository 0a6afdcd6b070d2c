//! Building responses to a request (RFC 3261 §8.2.6). The parts copied from
//! the request are taken once, at intake, into an owned [`ResponseTemplate`]
//! so a transaction can answer after the datagram is gone.

use std::net::SocketAddr;

use super::header::{split_values, HeaderName};
use super::parse::Request;

/// What every response to one request repeats.
#[derive(Debug, Clone)]
pub struct ResponseTemplate {
    /// `Via` values as received, the top one with `received`/`rport` filled in.
    vias: Vec<String>,
    from: String,
    /// `To` as received; our tag is appended when it has none.
    to: String,
    to_has_tag: bool,
    call_id: String,
    cseq: String,
    to_tag: String,
}

impl ResponseTemplate {
    /// Copies Via/From/To/Call-ID/CSeq from `req`; `source` is where it came from.
    pub fn new(req: &Request<'_>, source: SocketAddr, to_tag: String) -> Self {
        let mut vias: Vec<String> = req
            .all(HeaderName::Via)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .collect();
        if let Some(first) = vias.first_mut() {
            *first = stamp_top_via(first, source);
        }
        let text = |name| {
            req.first(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let to = text(HeaderName::To);
        let to_has_tag =
            super::header::parse_name_addr(to.as_bytes()).is_some_and(|na| na.tag.is_some());
        Self {
            vias,
            from: text(HeaderName::From),
            to,
            to_has_tag,
            call_id: text(HeaderName::CallId),
            cseq: text(HeaderName::CSeq),
            to_tag,
        }
    }

    /// Our To tag for this transaction.
    pub fn to_tag(&self) -> &str {
        &self.to_tag
    }

    /// Renders `SIP/2.0 <status> <reason>` with the copied headers, `extra`
    /// headers and `Content-Length: 0`.
    pub fn render(&self, status: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut out = String::with_capacity(256 + self.vias.iter().map(String::len).sum::<usize>());
        out.push_str("SIP/2.0 ");
        out.push_str(itoa(status).as_str());
        out.push(' ');
        out.push_str(reason);
        out.push_str("\r\n");
        for via in &self.vias {
            push_header(&mut out, "Via", via);
        }
        push_header(&mut out, "From", &self.from);
        if self.to_has_tag || status == 100 {
            push_header(&mut out, "To", &self.to);
        } else {
            out.push_str("To: ");
            out.push_str(&self.to);
            out.push_str(";tag=");
            out.push_str(&self.to_tag);
            out.push_str("\r\n");
        }
        push_header(&mut out, "Call-ID", &self.call_id);
        push_header(&mut out, "CSeq", &self.cseq);
        for (name, value) in extra {
            push_header(&mut out, name, value);
        }
        out.push_str("Server: inroute\r\nContent-Length: 0\r\n\r\n");
        out.into_bytes()
    }
}

fn itoa(n: u16) -> String {
    n.to_string()
}

fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// Adds `received=<source ip>` and fills `rport` (RFC 3261 §18.2.1, RFC 3581)
/// on the first value of the top Via line.
fn stamp_top_via(line: &str, source: SocketAddr) -> String {
    let values = split_values(line.as_bytes());
    let Some(first) = values.first() else {
        return line.to_owned();
    };
    let first = String::from_utf8_lossy(first);
    let mut stamped = String::with_capacity(first.len() + 48);
    let mut has_received = false;
    for (i, param) in first.split(';').enumerate() {
        let name = param
            .split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if i > 0 {
            stamped.push(';');
        }
        match name.as_str() {
            "rport" if i > 0 => {
                stamped.push_str("rport=");
                stamped.push_str(&source.port().to_string());
            }
            "received" if i > 0 => {
                has_received = true;
                stamped.push_str("received=");
                stamped.push_str(&source.ip().to_string());
            }
            _ => stamped.push_str(param.trim_end()),
        }
    }
    if !has_received {
        stamped.push_str(";received=");
        stamped.push_str(&source.ip().to_string());
    }
    for rest in &values[1..] {
        stamped.push_str(", ");
        stamped.push_str(&String::from_utf8_lossy(rest));
    }
    stamped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::parse::{parse, Message, ParseLimits};

    #[test]
    fn copies_headers_and_stamps_the_top_via() {
        let raw = b"INVITE sip:+15550100001@127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;rport, SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n\
            v: SIP/2.0/UDP edge;branch=z9hG4bKx\r\n\
            From: <sip:a@b>;tag=f1\r\nTo: <sip:c@d>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let Message::Request(req) = parse(raw, ParseLimits::default()).unwrap() else {
            panic!()
        };
        let t = ResponseTemplate::new(&req, "192.0.2.9:5999".parse().unwrap(), "abc".into());
        let text =
            String::from_utf8(t.render(302, "Moved Temporarily", &[("Contact", "<sip:x@y>")]))
                .unwrap();
        assert!(
            text.starts_with("SIP/2.0 302 Moved Temporarily\r\n"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;rport=5999;received=192.0.2.9, SIP/2.0/UDP proxy;branch=z9hG4bK0\r\nVia: SIP/2.0/UDP edge;branch=z9hG4bKx\r\n"), "{text}");
        assert!(text.contains("To: <sip:c@d>;tag=abc\r\n"));
        assert!(
            text.contains("Contact: <sip:x@y>\r\n") && text.ends_with("Content-Length: 0\r\n\r\n")
        );
        let trying = String::from_utf8(t.render(100, "Trying", &[])).unwrap();
        assert!(trying.contains("To: <sip:c@d>\r\n"), "no tag on 100");
    }
}
