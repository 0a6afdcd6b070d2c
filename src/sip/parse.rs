//! One pass over a SIP message's bytes (RFC 3261 §7), borrowing from them.
//!
//! Header names are case-insensitive and may be compact (`v`, `f`, `t`, `i`,
//! `m`, `l`, ...); `Name :` is fine; folded lines (a line starting with SP or
//! HT) continue the previous value; values are opaque bytes (non-UTF-8 is
//! kept). Line ends may be CRLF or bare LF. Pure: no I/O.

use std::borrow::Cow;

use super::header::HeaderName;

/// A parsed message: a request, or a response we only need to recognise.
#[derive(Debug)]
pub enum Message<'a> {
    Request(Request<'a>),
    /// A response (the router sends none that expect one; they are dropped).
    Response,
}

/// A request, borrowing from the bytes it was parsed from.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub version: &'a str,
    pub headers: Vec<Header<'a>>,
    pub body: &'a [u8],
}

/// One header field line (after unfolding).
#[derive(Debug, Clone)]
pub struct Header<'a> {
    pub name: HeaderName,
    /// The name as sent (for unknown headers).
    pub raw_name: &'a str,
    /// The value with surrounding whitespace removed and folds joined by a space.
    pub value: Cow<'a, [u8]>,
}

/// Why bytes are not a usable message. The text becomes a 400's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("header section not terminated")]
    Unterminated,
    #[error("malformed start line")]
    StartLine,
    #[error("malformed header line")]
    HeaderLine,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("Content-Length larger than the message")]
    Truncated,
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
}

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub max_headers: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self { max_headers: 100 }
    }
}

/// Parses one complete message. Over UDP the datagram is the message: bytes
/// after `Content-Length` are ignored (RFC 3261 §18.3) and, without a
/// `Content-Length`, the body is the rest of the datagram.
pub fn parse(bytes: &[u8], limits: ParseLimits) -> Result<Message<'_>, ParseError> {
    let bytes = skip_leading_crlf(bytes);
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    let (head_end, body_start) = header_end(bytes).ok_or(ParseError::Unterminated)?;
    let head = &bytes[..head_end];
    let mut lines = Lines { rest: head };
    let start = lines.next().ok_or(ParseError::StartLine)?;
    if start.starts_with(b"SIP/") {
        return Ok(Message::Response);
    }
    let (method, uri, version) = request_line(start)?;
    let headers = header_fields(&mut lines, limits)?;
    let rest = &bytes[body_start..];
    let body = match content_length(&headers)? {
        Some(len) if len > rest.len() => return Err(ParseError::Truncated),
        Some(len) => &rest[..len],
        None => rest,
    };
    Ok(Message::Request(Request {
        method,
        uri,
        version,
        headers,
        body,
    }))
}

fn skip_leading_crlf(mut bytes: &[u8]) -> &[u8] {
    while let [b'\r' | b'\n', rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// Where the header section ends and the body starts (CRLFCRLF or LFLF).
pub(crate) fn header_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            match bytes.get(i + 1) {
                Some(b'\n') => return Some((i, i + 2)),
                Some(b'\r') if bytes.get(i + 2) == Some(&b'\n') => return Some((i, i + 3)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Splits the header section into lines, CRLF or LF.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

/// `Method SP Request-URI SP SIP-Version`, exactly one SP each (the strict
/// choice for RFC 4475 §3.1.2.9 and §3.1.2.10).
fn request_line(line: &[u8]) -> Result<(&str, &str, &str), ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| ParseError::StartLine)?;
    let mut parts = text.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine);
    };
    if method.is_empty()
        || !method.bytes().all(is_token_char)
        || uri.is_empty()
        || version.is_empty()
    {
        return Err(ParseError::StartLine);
    }
    Ok((method, uri, version))
}

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn header_fields<'a>(
    lines: &mut Lines<'a>,
    limits: ParseLimits,
) -> Result<Vec<Header<'a>>, ParseError> {
    let mut headers: Vec<Header<'a>> = Vec::with_capacity(16);
    for line in lines {
        if let [b' ' | b'\t', ..] = line {
            let last = headers.last_mut().ok_or(ParseError::HeaderLine)?;
            let more = trim(line);
            if !more.is_empty() {
                let joined = last.value.to_mut();
                if !joined.is_empty() {
                    joined.push(b' ');
                }
                joined.extend_from_slice(more);
            }
            continue;
        }
        if headers.len() == limits.max_headers {
            return Err(ParseError::TooManyHeaders(limits.max_headers));
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or(ParseError::HeaderLine)?;
        let raw_name =
            std::str::from_utf8(trim(&line[..colon])).map_err(|_| ParseError::HeaderLine)?;
        if raw_name.is_empty() || !raw_name.bytes().all(is_token_char) {
            return Err(ParseError::HeaderLine);
        }
        headers.push(Header {
            name: HeaderName::parse(raw_name),
            raw_name,
            value: Cow::Borrowed(trim(&line[colon + 1..])),
        });
    }
    Ok(headers)
}

/// Strips SP and HT at both ends.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The one Content-Length, if any. Several equal values are tolerated;
/// different ones, negative or non-numeric values are errors (never guessed).
pub(crate) fn content_length(headers: &[Header<'_>]) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for h in headers
        .iter()
        .filter(|h| h.name == HeaderName::ContentLength)
    {
        let text = std::str::from_utf8(&h.value).map_err(|_| ParseError::ContentLength)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::ContentLength);
        }
        let n: usize = text.parse().map_err(|_| ParseError::ContentLength)?;
        match found {
            Some(previous) if previous != n => return Err(ParseError::ConflictingContentLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

impl Request<'_> {
    /// Writes the request back out (start line, unfolded headers, body),
    /// with an exact `Content-Length`; parsing the result gives the same
    /// request. Used by the fuzz round trip.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(
            format!("{} {} {}\r\n", self.method, self.uri, self.version).as_bytes(),
        );
        for h in self
            .headers
            .iter()
            .filter(|h| h.name != HeaderName::ContentLength)
        {
            out.extend_from_slice(h.raw_name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(self.body);
        out
    }

    /// Every header with this name, in order.
    pub fn all(&self, name: HeaderName) -> impl Iterator<Item = &Header<'_>> {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// The first header with this name.
    pub fn first(&self, name: HeaderName) -> Option<&[u8]> {
        self.all(name).next().map(|h| h.value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> Request<'_> {
        match parse(bytes, ParseLimits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn folding_compact_names_and_round_trip() {
        let raw = b"INVITE sip:+15550100001@h SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nSubject :\r\n  folded\r\n\tmore\r\nX-Bin: \xff\xfe\r\nl: 3\r\n\r\nabcEXTRA";
        let req = request(raw);
        assert_eq!(req.headers[0].name, HeaderName::Via);
        assert_eq!(&*req.headers[1].value, b"folded more");
        assert_eq!(&*req.headers[2].value, b"\xff\xfe");
        assert_eq!(req.body, b"abc", "bytes past Content-Length are ignored");
        let again = req.serialize();
        let reparsed = request(&again);
        assert_eq!(reparsed.serialize(), again);
        assert_eq!(reparsed.body, b"abc");
    }

    #[test]
    fn serializing_adds_one_content_length() {
        // Found by fuzzing: 100 headers and no Content-Length (a UDP body to
        // the end of the datagram) serialize to 101 headers.
        let raw = format!(
            "OPTIONS sip:x SIP/2.0\r\n{}\r\nbody",
            "X: y\r\n".repeat(100)
        );
        let req = request(raw.as_bytes());
        let once = req.serialize();
        assert_eq!(
            parse(&once, ParseLimits::default()).unwrap_err(),
            ParseError::TooManyHeaders(100)
        );
        let Ok(Message::Request(again)) = parse(&once, ParseLimits { max_headers: 101 }) else {
            panic!()
        };
        assert_eq!(again.body, b"body");
    }

    #[test]
    fn framing_errors() {
        let parse_err = |b: &[u8]| parse(b, ParseLimits::default()).unwrap_err();
        assert_eq!(
            parse_err(b"INVITE sip:x SIP/2.0\r\nl: 10\r\n\r\nabc"),
            ParseError::Truncated
        );
        assert_eq!(
            parse_err(b"INVITE sip:x SIP/2.0\r\nl: -1\r\n\r\n"),
            ParseError::ContentLength
        );
        assert_eq!(
            parse_err(b"INVITE sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab"),
            ParseError::ConflictingContentLength
        );
        assert_eq!(
            parse_err(b"INVITE  sip:x SIP/2.0\r\n\r\n"),
            ParseError::StartLine
        );
        assert_eq!(
            parse_err(b"INVITE sip:x SIP/2.0 \r\n\r\n"),
            ParseError::StartLine
        );
        assert_eq!(
            parse_err(b"INVITE sip:x SIP/2.0\r\nno colon\r\n\r\n"),
            ParseError::HeaderLine
        );
        let many = format!("OPTIONS sip:x SIP/2.0\r\n{}\r\n", "X: y\r\n".repeat(101));
        assert_eq!(parse_err(many.as_bytes()), ParseError::TooManyHeaders(100));
        assert!(matches!(
            parse(b"SIP/2.0 200 OK\r\n\r\n", ParseLimits::default()),
            Ok(Message::Response)
        ));
    }
}
