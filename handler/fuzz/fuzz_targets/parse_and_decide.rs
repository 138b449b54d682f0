//! Any bytes, as the message of an SNS record and as a whole event, through the handler's
//! parse → diff → decide → render path. A panic is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sgwatch_handler::explain::explain;
use sgwatch_handler::settings::Policy;

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    let text = String::from_utf8_lossy(data);
    let event = serde_json::json!({"Records": [{"Sns": {"MessageId": "fuzz", "Message": text}}]});
    let _ = explain(&event, &policy);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = explain(&value, &policy);
    }
});
