//! Throwaway databases for integration tests, so every test crate runs its
//! cases on both backends the same way.
//!
//! [`url`] gives a SQLite file in the test's temporary directory, or a new
//! database on the PostgreSQL server named by `KEFU_TEST_POSTGRES_URL`
//! (a superuser URL; `scripts/test` starts one). Without that variable the
//! PostgreSQL case is skipped, unless `KEFU_REQUIRE_POSTGRES` is set, in
//! which case it fails: CI must never skip it silently.

#![allow(clippy::expect_used)]

use std::path::Path;

/// A database URL for one test; `None` skips the PostgreSQL case.
pub async fn url(postgres: bool, dir: &Path) -> Option<String> {
    if !postgres {
        return Some(format!("sqlite://{}/kefu.db", dir.display()));
    }
    let Ok(admin) = std::env::var("KEFU_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("KEFU_REQUIRE_POSTGRES").is_err(),
            "KEFU_REQUIRE_POSTGRES is set but KEFU_TEST_POSTGRES_URL is not"
        );
        eprintln!("skipping: KEFU_TEST_POSTGRES_URL not set");
        return None;
    };
    let name = format!("kefu_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect to KEFU_TEST_POSTGRES_URL");
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .expect("create the test database");
    let _ = sqlx::Connection::close(conn).await;
    // Swap the database name in the URL, keeping any ?options.
    let (url, query) = match admin.split_once('?') {
        Some((u, q)) => (u, format!("?{q}")),
        None => (admin.as_str(), String::new()),
    };
    let (server, _) = url
        .rsplit_once('/')
        .filter(|(s, _)| s.contains("://") && !s.ends_with('/'))
        .unwrap_or((url, ""));
    Some(format!("{server}/{name}{query}"))
}
