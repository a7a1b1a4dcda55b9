//! Secrets never leak: both API tokens and every generated password are searched for in
//! stdout, stderr at trace level (text and JSON logs), the JSON report and the state file,
//! across every command and across failure paths (a refused token, a failing API).

mod util;

use okta_spot_sim::{FailSpec, Fault};
use util::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_password_appears_in_any_output_or_file() {
    let mut env = Env::new().await;
    for i in 0..3 {
        env.assigned(
            &format!("user{i}@example.com"),
            Some(if i == 0 { "editor" } else { "viewer" }),
        );
    }
    env.person("frank@example.com");
    env.spot()
        .add_user("frank@example.com", "Frank", "F", "viewer");
    env.set_env("RUST_LOG", "trace");

    let mut outputs = Vec::new();
    for args in [
        vec!["check"],
        vec!["plan", "--output", "json"],
        vec!["reconcile", "--output", "json"],
        vec!["import", "--assign", "--output", "json"],
        vec!["reconcile"],
    ] {
        let run = env.run(&args).await;
        outputs.push((format!("{args:?}"), run));
    }
    // Failure paths: a create that fails, JSON logs, then a refused token.
    env.okta()
        .unassign(&env.okta().user_id("user1@example.com").unwrap());
    env.assigned("late@example.com", None);
    env.spot().set_fault(
        "POST /setup/user",
        Fault {
            fail: Some(FailSpec {
                status: 500,
                nth: 1,
                times: None,
            }),
            ..Fault::default()
        },
    );
    env.set_env("OKTA_SPOT_SYNC__LOG__FORMAT", "json");
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 1, "the failing create should fail the run");
    outputs.push(("failing create".into(), run));
    env.spot().clear_faults();
    let run = env.run(&["reconcile"]).await;
    outputs.push(("recovery".into(), run));
    util::write_secret(
        &env.dir.path().join("okta-token"),
        "00-wrong-okta-token-value",
    );
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("Okta refused the credentials"),
        "{}",
        run.stderr
    );
    outputs.push(("refused token".into(), run));

    let passwords = env.spot().received_passwords();
    assert!(
        passwords.len() >= 4,
        "expected generated passwords, got {}",
        passwords.len()
    );
    let mut secrets = vec![
        env.okta().token(),
        env.spot().token(),
        "00-wrong-okta-token-value".to_string(),
    ];
    secrets.extend(passwords);
    let state = std::fs::read_to_string(&env.state).unwrap();
    let mut saw_trace = false;
    for (label, run) in &outputs {
        saw_trace |= run.stderr.contains("TRACE") || run.stderr.contains("\"level\":\"TRACE\"");
        for secret in &secrets {
            assert!(
                !run.stdout.contains(secret.as_str()),
                "{label}: a secret leaked into stdout"
            );
            assert!(
                !run.stderr.contains(secret.as_str()),
                "{label}: a secret leaked into stderr"
            );
        }
    }
    for secret in &secrets {
        assert!(
            !state.contains(secret.as_str()),
            "a secret leaked into the state file"
        );
    }
    assert!(saw_trace, "trace logging was not exercised");
}
