//! The node binary as built by default (no `dev` feature): it refuses
//! `--allow-target` and `--trust-target-ca` in words, so a release node has
//! no way to widen its target policy or the roots it trusts (SECURITY.md). Built with `--features dev`, the flag works
//! and this test does not apply. With the refusal removed, the node starts
//! and the test fails: checked once by hand.
#![cfg(not(feature = "dev"))]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the binary may take to refuse (it does so before any I/O).
const REFUSAL_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_release_node_refuses_the_development_flags_in_words() {
    let bin = env!("CARGO_BIN_EXE_spareband-node");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not read").unwrap();
    let ca = ca.display().to_string();
    for (args, env) in [
        (vec!["--allow-target", "127.0.0.1:8000"], None),
        (vec![], Some(("SPAREBAND_ALLOW_TARGETS", "127.0.0.1:8000"))),
        (vec!["--trust-target-ca", ca.as_str()], None),
        (vec![], Some(("SPAREBAND_TRUST_TARGET_CA", ca.as_str()))),
    ] {
        let mut cmd = Command::new(bin);
        cmd.args(["--relay", "http://127.0.0.1:9"])
            .arg("--key-file")
            .arg(&key)
            .args(&args)
            .env_remove("SPAREBAND_ALLOW_TARGETS")
            .env_remove("SPAREBAND_TRUST_TARGET_CA");
        if let Some((name, value)) = env {
            cmd.env(name, value);
        }
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        // Refusing is immediate; a node that accepted the flag would keep
        // trying to reach the (absent) relay.
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > REFUSAL_WITHIN {
                let _ = child.kill();
                panic!("{args:?} {env:?}: the node started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("works only in a development build"),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(!key.exists(), "refused before doing anything");
    }
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("allow-target") && !help.contains("trust-target-ca"));
}
