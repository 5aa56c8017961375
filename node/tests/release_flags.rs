//! The node binary as built by default (no `dev` feature): it refuses
//! `--allow-target` in words, so a release node has no way to widen its
//! target policy (SECURITY.md). Built with `--features dev`, the flag works
//! and this test does not apply. With the refusal removed, the node starts
//! and the test fails: checked once by hand.
#![cfg(not(feature = "dev"))]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the binary may take to refuse (it does so before any I/O).
const REFUSAL_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_release_node_refuses_allow_target_in_words() {
    let bin = env!("CARGO_BIN_EXE_spareband-node");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    for (args, env) in [
        (vec!["--allow-target", "127.0.0.1:8000"], None),
        (vec![], Some("127.0.0.1:8000")),
    ] {
        let mut cmd = Command::new(bin);
        cmd.args(["--relay", "http://127.0.0.1:9"])
            .arg("--key-file")
            .arg(&key)
            .args(&args)
            .env_remove("SPAREBAND_ALLOW_TARGETS");
        if let Some(v) = env {
            cmd.env("SPAREBAND_ALLOW_TARGETS", v);
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
    assert!(!String::from_utf8_lossy(&help.stdout).contains("allow-target"));
}
