//! `ledger-jobs DATA_DIR | DATABASE_URL`: prints the job ids a relay's
//! ledger holds, one JSON array, read through the ledger crate (the tests of
//! the real binaries check what a killed relay kept; no test reads the
//! database file itself). The argument is a data dir (its `spareband.db`)
//! or a `sqlite://` or `postgres://` URL, as the relay's `database_url`.

use spareband_ledger::DatabaseUrl;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: ledger-jobs DATA_DIR | DATABASE_URL");
        return ExitCode::from(2);
    };
    let url = if arg.contains("://") || arg.starts_with("sqlite:") {
        match DatabaseUrl::parse(&arg) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("ledger-jobs: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        DatabaseUrl::sqlite_in(std::path::Path::new(&arg))
    };
    let db = match spareband_ledger::Db::connect(&url).await {
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
