//! The README's first command, `okta-spot-sync demo`, run as a user runs it: the real binary
//! tells its story against the bundled emulators and exits 0 only when every step did what it
//! says (each step checks itself; see `sim_commands::demo`).

use std::process::Command;

#[test]
fn the_demo_runs_every_step_as_it_says() {
    let out = Command::new(env!("CARGO_BIN_EXE_okta-spot-sync"))
        .arg("demo")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Demo finished: every step did what it should."),
        "{stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    for step in 1..=11 {
        assert!(
            stdout.contains(&format!("Step {step} —")),
            "step {step} missing:\n{stdout}"
        );
    }
}
