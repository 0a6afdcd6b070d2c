//! parse → serialize → parse: whatever parses must survive a round trip
//! unchanged, and classifying any bytes must never panic.
#![no_main]

use inroute::sip::parse::{parse, Message, ParseLimits};
use inroute::sip::request::classify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits::default();
    let _ = classify(data, "127.0.0.1:5060".parse().unwrap(), limits, &["friendly-scanner".to_owned()]);
    if let Ok(Message::Request(req)) = parse(data, limits) {
        let once = req.serialize();
        // Serializing adds a Content-Length when the datagram had none.
        let relaxed = ParseLimits { max_headers: limits.max_headers + 1 };
        let Ok(Message::Request(again)) = parse(&once, relaxed) else {
            panic!("serialized request does not parse: {:?}", String::from_utf8_lossy(&once));
        };
        assert_eq!((again.method, again.uri, again.version), (req.method, req.uri, req.version));
        assert_eq!(again.body, req.body);
        assert_eq!(again.serialize(), once, "serialization is stable");
    }
});
