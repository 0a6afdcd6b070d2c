//! Validation and compilation of arbitrary workflow definitions: any JSON
//! either compiles or yields problems with JSON paths; never a panic.
#![no_main]

use inroute::routing::{compile, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(definition) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Err(problems) = compile(&definition, &Limits::default()) {
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| p.path.starts_with('$')));
    }
});
