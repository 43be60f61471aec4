//! Arbitrary text as a scenario file: `parse` must return a scenario or an
//! error, never panic, and what it returns must be usable (the error prints;
//! the scenario answers what `barrage run` asks of it first).

#![no_main]

use barrage::scenario::{Scenario, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 cannot be a scenario (the file is read as a String), so
    // map it to text rather than waste the input.
    let text = String::from_utf8_lossy(data);
    match parse("fuzz.yaml", &text) {
        Ok(scenario) => {
            let _ = scenario.total_duration();
            for phase in &scenario.phases {
                let _ = Scenario::expected_messages(phase);
            }
            let _ = scenario.effective_roles();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
