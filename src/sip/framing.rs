//! Framing a byte stream (TCP/TLS) into messages by `Content-Length`
//! (RFC 3261 §18.3). Pure: the connection owns the buffer.

use super::parse::{self, ParseError};

/// The outcome of looking at the start of a stream buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// `n` bytes of CRLF keep-alive; `pong` when it was a double CRLF ping.
    KeepAlive { consumed: usize, pong: bool },
    /// A whole message occupies the first `len` bytes.
    Message { len: usize },
}

/// Finds the first message in `buf`. A missing, invalid or conflicting
/// `Content-Length`, or a message over `max` bytes, is an error: framing is
/// lost and the connection must close.
pub fn next_frame(buf: &[u8], max: usize) -> Result<Frame, ParseError> {
    let crlf = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    if crlf > 0 {
        return Ok(Frame::KeepAlive {
            consumed: crlf,
            pong: buf[..crlf].starts_with(b"\r\n\r\n"),
        });
    }
    let Some((_, body_start)) = parse::header_end(buf) else {
        return if buf.len() > max {
            Err(ParseError::TooLarge(max))
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let head = &buf[..body_start];
    let length = content_length(head)?.ok_or(ParseError::ContentLength)?;
    let len = body_start
        .checked_add(length)
        .ok_or(ParseError::ContentLength)?;
    if len > max {
        return Err(ParseError::TooLarge(max));
    }
    Ok(if buf.len() >= len {
        Frame::Message { len }
    } else {
        Frame::Incomplete
    })
}

/// Reads Content-Length from a header section without a full parse.
fn content_length(head: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = parse::trim(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = parse::trim(
            line[colon + 1..]
                .strip_suffix(b"\r")
                .unwrap_or(&line[colon + 1..]),
        );
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::ContentLength);
        }
        let n: usize = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(ParseError::ContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(ParseError::ConflictingContentLength);
        }
        found = Some(n);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:x SIP/2.0\r\nl: 4\r\n\r\nbody";

    #[test]
    fn frames_by_content_length() {
        assert_eq!(next_frame(&MSG[..10], 65535), Ok(Frame::Incomplete));
        assert_eq!(
            next_frame(&MSG[..MSG.len() - 1], 65535),
            Ok(Frame::Incomplete)
        );
        assert_eq!(
            next_frame(MSG, 65535),
            Ok(Frame::Message { len: MSG.len() })
        );
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(
            next_frame(&two, 65535),
            Ok(Frame::Message { len: MSG.len() })
        );
        assert_eq!(
            next_frame(b"\r\n\r\nOPT", 65535),
            Ok(Frame::KeepAlive {
                consumed: 4,
                pong: true
            })
        );
    }

    #[test]
    fn lost_framing_is_an_error() {
        assert!(
            next_frame(b"OPTIONS sip:x SIP/2.0\r\n\r\n", 65535).is_err(),
            "no Content-Length on a stream"
        );
        assert!(next_frame(b"X sip:x SIP/2.0\r\nContent-Length: -999\r\n\r\n", 65535).is_err());
        assert!(next_frame(
            b"X sip:x SIP/2.0\r\nContent-Length: 18446744073709551615\r\n\r\n",
            65535
        )
        .is_err());
        assert!(next_frame(
            b"X sip:x SIP/2.0\r\nl: 13\r\nContent-Length: 5\r\n\r\n",
            65535
        )
        .is_err());
        assert!(
            next_frame(b"X sip:x SIP/2.0\r\nl: 9999\r\n\r\n", 1000).is_err(),
            "over the limit up front"
        );
        assert!(
            next_frame(&vec![b'a'; 2000], 1000).is_err(),
            "no header end within the limit"
        );
    }
}
