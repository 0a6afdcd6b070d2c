//! Intake: what to do with one received message, decided without I/O.
//!
//! This is the one place where a request's faults become SIP statuses
//! (400/416/420/481/482/405/501/505), in the order RFC 3261 §8.2 checks them.
//! INVITEs that pass come out as owned [`CallFacts`] for the call handler.

use std::net::SocketAddr;

use serde_json::{Map, Value};

use super::header::{self, HeaderName, NameAddr};
use super::parse::{self, Message, ParseError, ParseLimits, Request};
use super::response::ResponseTemplate;
use super::transaction::TransactionKey;
use super::uri::{self, Scheme, UriError};

/// Methods this router answers; others get 501.
pub const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "CANCEL",
    "OPTIONS",
    "BYE",
    "REGISTER",
    "MESSAGE",
    "SUBSCRIBE",
    "NOTIFY",
    "INFO",
    "UPDATE",
    "PRACK",
    "REFER",
    "PUBLISH",
];

/// The `Allow` header value.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, OPTIONS, BYE";

/// The decision for one message.
#[derive(Debug)]
pub enum Intake {
    /// Nothing can or should be sent (responses, unusable bytes).
    Drop(&'static str),
    /// Answer statelessly.
    Respond(Box<Reply>),
    /// A new or retransmitted INVITE.
    Invite(Box<InviteIntake>),
    /// An ACK for the INVITE transaction with this key.
    Ack(TransactionKey),
    /// A CANCEL of the INVITE with `invite`; answer 200 if it exists, else 481.
    Cancel {
        invite: TransactionKey,
        reply: Box<ResponseTemplate>,
    },
}

/// A stateless answer.
#[derive(Debug)]
pub struct Reply {
    pub template: ResponseTemplate,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn render(&self) -> Vec<u8> {
        let extra: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.template.render(self.status, &self.reason, &extra)
    }
}

/// An INVITE ready for a transaction.
#[derive(Debug)]
pub struct InviteIntake {
    pub key: TransactionKey,
    pub template: ResponseTemplate,
    pub facts: CallFacts,
}

/// What the call handler needs to know about an INVITE (owned).
#[derive(Debug, Clone)]
pub struct CallFacts {
    pub source: SocketAddr,
    pub call_id: String,
    /// Request-URI user part (or `tel:` number), unescaped.
    pub called: String,
    /// URI of `From`.
    pub from_uri: String,
    /// URI of the first `P-Asserted-Identity`, if any.
    pub asserted_uri: Option<String>,
    /// `X-Inroute-Decision-Id` if the INVITE carries one (a redirect loop).
    pub loop_marker: bool,
    /// Header name (canonical long form) → value; repeated headers joined with `, `.
    pub sip_headers: Map<String, Value>,
}

/// Classifies one message received from `source`. Requests whose
/// User-Agent contains one of `scanners` (case-insensitive) are dropped.
pub fn classify(
    bytes: &[u8],
    source: SocketAddr,
    limits: ParseLimits,
    scanners: &[String],
) -> Intake {
    match parse::parse(bytes, limits) {
        Ok(Message::Response) => Intake::Drop("response"),
        Ok(Message::Request(req)) if is_scanner(&req, scanners) => Intake::Drop("scanner"),
        Ok(Message::Request(req)) => request(&req, source),
        Err(ParseError::Empty) => Intake::Drop("empty"),
        Err(error) => salvage(bytes, source, &error.to_string()),
    }
}

fn is_scanner(req: &Request<'_>, scanners: &[String]) -> bool {
    let Some(agent) = req.first(HeaderName::UserAgent) else {
        return false;
    };
    let agent = String::from_utf8_lossy(agent).to_ascii_lowercase();
    scanners
        .iter()
        .any(|s| !s.is_empty() && agent.contains(&s.to_ascii_lowercase()))
}

/// A message over the size limit: `513 Message Too Large` when its headers
/// can be read, else dropped.
pub fn oversize(bytes: &[u8], source: SocketAddr) -> Intake {
    match salvage(bytes, source, "too large") {
        Intake::Respond(mut reply) => {
            reply.status = 513;
            reply.reason = "Message Too Large".to_owned();
            Intake::Respond(reply)
        }
        _ => Intake::Drop("too_large"),
    }
}

/// A request that does not parse still gets a 400 if its Via, Call-ID and
/// CSeq can be read; otherwise it is dropped. The re-parse has no header
/// count limit (the failure may have been too many headers, and the message
/// is already bounded by `sip.max_message_bytes`).
fn salvage(bytes: &[u8], source: SocketAddr, why: &str) -> Intake {
    let head_end = parse::header_end(bytes).map_or(bytes.len(), |(end, _)| end);
    let mut head = bytes[..head_end].to_vec();
    head.extend_from_slice(b"\r\n\r\n");
    // Re-parse the header section alone, with a neutral start line.
    let Some(first_line_end) = head.iter().position(|b| *b == b'\n') else {
        return Intake::Drop("unparsable");
    };
    let mut neutral = b"X sip:x SIP/2.0\r\n".to_vec();
    neutral.extend_from_slice(&head[first_line_end + 1..]);
    let stripped = strip_length(&neutral);
    let unbounded = ParseLimits {
        max_headers: usize::MAX,
    };
    let Ok(Message::Request(req)) = parse::parse(&stripped, unbounded) else {
        return Intake::Drop("unparsable");
    };
    if has_essentials(&req) {
        bad_request(&req, source, why)
    } else {
        Intake::Drop("unparsable, no usable Via/Call-ID/CSeq")
    }
}

/// Removes Content-Length lines so a header-only re-parse cannot fail on them.
fn strip_length(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|b| *b == b'\n') {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        let name = String::from_utf8_lossy(parse::trim(name));
        if !(name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Whether the headers every response needs are there: Via, Call-ID, CSeq.
fn has_essentials(req: &Request<'_>) -> bool {
    [HeaderName::Via, HeaderName::CallId, HeaderName::CSeq]
        .into_iter()
        .all(|h| req.first(h).is_some())
}

fn template(req: &Request<'_>, source: SocketAddr) -> ResponseTemplate {
    let tag = stateless_key(req)
        .map(|k| k.to_tag())
        .unwrap_or_else(|| "ir0".to_owned());
    ResponseTemplate::new(req, source, tag)
}

fn stateless_key(req: &Request<'_>) -> Option<TransactionKey> {
    let via = header::parse_via(header::split_values(req.first(HeaderName::Via)?)[0])?;
    let call_id = std::str::from_utf8(req.first(HeaderName::CallId)?).ok()?;
    let (cseq, _) = header::parse_cseq(req.first(HeaderName::CSeq)?)?;
    let from_tag = req
        .first(HeaderName::From)
        .and_then(header::parse_name_addr)
        .and_then(|na| na.tag);
    Some(TransactionKey::of(
        req, &via, call_id, cseq, from_tag, false,
    ))
}

fn respond(
    req: &Request<'_>,
    source: SocketAddr,
    status: u16,
    reason: &str,
    headers: Vec<(&'static str, String)>,
) -> Intake {
    Intake::Respond(Box::new(Reply {
        template: template(req, source),
        status,
        reason: reason.to_owned(),
        headers,
    }))
}

fn bad_request(req: &Request<'_>, source: SocketAddr, why: &str) -> Intake {
    respond(
        req,
        source,
        400,
        &format!("Bad Request ({why})"),
        Vec::new(),
    )
}

/// The checks of a parsed request, in order.
fn request(req: &Request<'_>, source: SocketAddr) -> Intake {
    if !has_essentials(req) {
        return Intake::Drop("no usable Via/Call-ID/CSeq");
    }
    if let Err(why) = single_values(req) {
        return bad_request(req, source, why);
    }
    if req.version != "SIP/2.0" {
        return respond(req, source, 505, "Version Not Supported", Vec::new());
    }
    let Some(top_via) =
        header::parse_via(header::split_values(req.first(HeaderName::Via).unwrap_or_default())[0])
    else {
        return bad_request(req, source, "malformed Via");
    };
    let (cseq_number, cseq_method) =
        match header::parse_cseq(req.first(HeaderName::CSeq).unwrap_or_default()) {
            Some(c) if !c.1.is_empty() => c,
            _ => return bad_request(req, source, "malformed CSeq"),
        };
    let (Some(from), Some(_to)) = (
        req.first(HeaderName::From)
            .and_then(header::parse_name_addr),
        req.first(HeaderName::To).and_then(header::parse_name_addr),
    ) else {
        return bad_request(req, source, "malformed or missing From/To");
    };
    if !KNOWN_METHODS.contains(&req.method) {
        return respond(
            req,
            source,
            501,
            "Not Implemented",
            vec![("Allow", ALLOW.to_owned())],
        );
    }
    if cseq_method != req.method {
        return bad_request(req, source, "CSeq method does not match the request");
    }
    let request_uri = match uri::parse_request_uri(req.uri) {
        Ok(u) => u,
        Err(UriError::UnsupportedScheme) => {
            return respond(req, source, 416, "Unsupported URI Scheme", Vec::new())
        }
        Err(UriError::Malformed) => return bad_request(req, source, "malformed Request-URI"),
    };
    if !matches!(req.method, "ACK" | "CANCEL") {
        let required: Vec<String> = req
            .all(HeaderName::Require)
            .flat_map(|h| header::option_tags(&h.value))
            .collect();
        if !required.is_empty() {
            return respond(
                req,
                source,
                420,
                "Bad Extension",
                vec![("Unsupported", required.join(", "))],
            );
        }
    }
    let call_id =
        String::from_utf8_lossy(req.first(HeaderName::CallId).unwrap_or_default()).into_owned();
    let key =
        |as_invite| TransactionKey::of(req, &top_via, &call_id, cseq_number, from.tag, as_invite);
    match req.method {
        "INVITE" => invite(req, source, key(false), &request_uri, call_id, &from),
        "ACK" => Intake::Ack(key(true)),
        "CANCEL" => Intake::Cancel {
            invite: key(true),
            reply: Box::new(template(req, source)),
        },
        "OPTIONS" => respond(
            req,
            source,
            200,
            "OK",
            vec![
                ("Allow", ALLOW.to_owned()),
                ("Accept", "application/sdp".to_owned()),
            ],
        ),
        "BYE" => respond(
            req,
            source,
            481,
            "Call/Transaction Does Not Exist",
            Vec::new(),
        ),
        _ => respond(
            req,
            source,
            405,
            "Method Not Allowed",
            vec![("Allow", ALLOW.to_owned())],
        ),
    }
}

/// Call-ID, From, To, CSeq and Max-Forwards must appear once (RFC 4475 §3.3.8).
fn single_values(req: &Request<'_>) -> Result<(), &'static str> {
    for (name, what) in [
        (HeaderName::CallId, "more than one Call-ID"),
        (HeaderName::From, "more than one From"),
        (HeaderName::To, "more than one To"),
        (HeaderName::CSeq, "more than one CSeq"),
        (HeaderName::MaxForwards, "more than one Max-Forwards"),
    ] {
        if req.all(name).count() > 1 {
            return Err(what);
        }
    }
    Ok(())
}

fn invite(
    req: &Request<'_>,
    source: SocketAddr,
    key: TransactionKey,
    request_uri: &uri::RequestUri<'_>,
    call_id: String,
    from: &NameAddr<'_>,
) -> Intake {
    let called = match (request_uri.scheme, &request_uri.user) {
        (Scheme::Sip | Scheme::Sips | Scheme::Tel, Some(user)) => user.to_string(),
        _ => String::new(),
    };
    let asserted_uri = req.first(HeaderName::PAssertedIdentity).and_then(|v| {
        header::split_values(v)
            .into_iter()
            .find_map(|one| header::parse_name_addr(one).map(|na| na.uri.to_owned()))
    });
    let facts = CallFacts {
        source,
        call_id,
        called,
        from_uri: from.uri.to_owned(),
        asserted_uri,
        loop_marker: req.first(HeaderName::InrouteDecisionId).is_some(),
        sip_headers: sip_headers(req),
    };
    let template = ResponseTemplate::new(req, source, key.to_tag());
    Intake::Invite(Box::new(InviteIntake {
        key,
        template,
        facts,
    }))
}

/// Header name → value for the workflow input; repeats joined with `, `.
fn sip_headers(req: &Request<'_>) -> Map<String, Value> {
    let mut map = Map::with_capacity(req.headers.len());
    for h in &req.headers {
        let name = h
            .name
            .canonical()
            .map_or_else(|| h.raw_name.to_owned(), str::to_owned);
        let value = String::from_utf8_lossy(&h.value);
        match map.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name, Value::String(value.into_owned()));
            }
        }
    }
    map
}
