//! The OpenAPI document is the API: schemathesis generates requests from the document
//! the gateway serves, sends them through the real stack as an admin, and checks every
//! answer against the document (statuses, schemas, headers), that schema-valid
//! requests are accepted and invalid ones refused, and that no request is a 5xx.
//!
//! `./scripts/test` installs schemathesis (from PyPI, into its tools directory) and
//! names it in `SCHEMATHESIS`; otherwise it is looked for on the `PATH`.

use std::path::Path;
use std::process::Stdio;

use system_tests::System;

/// Examples per operation and phase: enough to meet every bound and status the
/// document states; the seed keeps a run repeatable (drop it to explore).
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261203";

#[tokio::test]
async fn schemathesis_finds_no_difference_between_the_document_and_the_api() {
    let schemathesis = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let found = std::process::Command::new(&schemathesis)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "schemathesis ({schemathesis}) is missing: ./scripts/test installs it, or set SCHEMATHESIS"
    );
    let system = System::start(&[("RATE_LIMIT_PER_MINUTE", "1000000")]).await;
    let token = system.admin().await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let base = system.url("");
    let base = base.trim_end_matches("/api");

    let output = tokio::process::Command::new(&schemathesis)
        .arg("--no-color")
        .arg("--config-file")
        .arg(&config)
        .args(["run", &system.url("/openapi.json"), "--url", base])
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--workers", "1"])
        // Its cache of failures to replay goes with the build, not the sources.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found differences:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
