//! Writes the RDP fixture's messages to a directory (default `docs/`): `email.html` (the HTML part
//! of the email, for `scripts/screenshot-email.sh`), `email.txt` (its text part) and
//! `slack-message.json` (the Block Kit message).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| sgwatch_tests::repo_root().join("docs"));
    let email = sgwatch_tests::samples::rdp_email();
    let slack = serde_json::to_string_pretty(&sgwatch_tests::samples::rdp_slack())
        .expect("JSON of a JSON value");
    for (name, text) in [
        ("email.html", email.html),
        ("email.txt", email.text),
        ("slack-message.json", slack + "\n"),
    ] {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("samples: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
