//! Test databases: a fresh one per test on either backend (a SQLite file in
//! a temp dir, or a new database on this test binary's private PostgreSQL
//! server), and [`on_both_backends!`], which runs one test body on each.

use crate::{Backend, DatabaseUrl, Db};

/// A fresh database, kept for as long as the test holds this.
pub(crate) struct TestDb {
    pub db: Db,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                (DatabaseUrl::sqlite_in(dir.path()), Some(dir))
            }
            Backend::Postgres => {
                let server = spareband_test_postgres::PgServer::shared();
                let url = server.fresh_database().await.expect("test database");
                (DatabaseUrl::parse(&url).expect("test URL"), None)
            }
        };
        let db = Db::connect(&url).await.expect("database opens");
        TestDb { db, url, _dir: dir }
    }
}

/// For each `async fn name(t: &TestDb)` named, a module `name` with two
/// tests, `sqlite` and `postgres`: one body, run on each backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let t = $crate::test_db::TestDb::new($crate::Backend::Sqlite).await;
                    super::$name(&t).await;
                }
                #[tokio::test]
                async fn postgres() {
                    let t = $crate::test_db::TestDb::new($crate::Backend::Postgres).await;
                    super::$name(&t).await;
                }
            }
        )*
    };
}

pub(crate) use on_both_backends;
