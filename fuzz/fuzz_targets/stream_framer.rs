//! The TCP/TLS framer on arbitrary bytes: never panics, never claims more
//! bytes than it was given, and frames respect the size limit.
#![no_main]

use inroute::sip::framing::{next_frame, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while !rest.is_empty() {
        match next_frame(rest, 4096) {
            Ok(Frame::Message { len }) => {
                assert!(len > 0 && len <= rest.len() && len <= 4096);
                rest = &rest[len..];
            }
            Ok(Frame::KeepAlive { consumed, .. }) => {
                assert!(consumed > 0 && consumed <= rest.len());
                rest = &rest[consumed..];
            }
            Ok(Frame::Incomplete) | Err(_) => break,
        }
    }
});
