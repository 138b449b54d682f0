//! `make demo`: the story sgwatch exists for, played against local AWS (moto) with the real
//! installer and the real handler binary. `scripts/demo.sh` builds what it runs first; the story
//! itself is `sgwatch_tests::story`, which `tests/tests/it/e2e.rs` asserts.

use std::process::ExitCode;
use std::time::Instant;

use sgwatch_tests::cli::Programs;
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::{organization, story};

#[tokio::main]
async fn main() -> ExitCode {
    let started = Instant::now();
    println!("sgwatch demo: Department B opens RDP on Department A's group; Department A is told.");
    let programs = Programs::locate();
    let moto = Moto::start();
    let result = story::play(&moto, &programs).await;
    drop(moto);
    // The organization's act, on a server of its own: a hub and two member accounts.
    let organization = match &result {
        Ok(_) => {
            let moto = Moto::start();
            Some(organization::play(&moto, &programs).await)
        }
        Err(_) => None,
    };
    let elapsed = started.elapsed();

    match result {
        Err(e) => {
            eprintln!("\ndemo failed: {e:#}");
            eprintln!("logs: {}", programs.work_dir.display());
            ExitCode::FAILURE
        }
        Ok(outcome) => {
            let mut problems = outcome.problems();
            match organization {
                Some(Ok(org)) => problems.extend(org.problems()),
                Some(Err(e)) => problems.push(format!("the organization's act failed: {e:#}")),
                None => {}
            }
            println!();
            if problems.is_empty() {
                println!(
                    "Done: Department A was emailed about RDP, the untagged group's change sent \
                     nothing, verify timed a real change end to end, teardown left nothing \
                     behind, and the organization's hub emailed team B about a change in a \
                     member account."
                );
            } else {
                for problem in &problems {
                    println!("✗ {problem}");
                }
            }
            println!("Elapsed: {:.1} s", elapsed.as_secs_f64());
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
