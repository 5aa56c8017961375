//! `ledger-jobs DATA_DIR`: prints the job ids a relay's ledger holds, one
//! JSON array, read through the ledger crate (the tests of the real binaries
//! check what a killed relay kept; no test reads the database file itself).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: ledger-jobs DATA_DIR");
        return ExitCode::from(2);
    };
    let db = match spareband_ledger::Db::open(std::path::Path::new(&dir)).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("ledger-jobs: {e}");
            return ExitCode::FAILURE;
        }
    };
    match spareband_ledger::inspect::usage_records(&db).await {
        Ok(records) => {
            let ids: Vec<String> = records.into_iter().map(|r| r.job_id).collect();
            println!("{}", serde_json::to_string(&ids).unwrap_or_default());
            db.close().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ledger-jobs: {e}");
            ExitCode::FAILURE
        }
    }
}
