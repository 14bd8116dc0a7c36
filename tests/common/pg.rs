//! PostgreSQL for tests: `tools/postgres/test.sh` starts a throwaway server and sets
//! `L402_TEST_DATABASE_URL`; each test works in a schema of its own.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The test server's URL (the tests that need it are `#[ignore]`d without one).
pub fn server_url() -> String {
    std::env::var("L402_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("L402_TEST_DATABASE_URL is not set: these tests need PostgreSQL; run tools/postgres/test.sh")
    })
}

/// The test server's URL, narrowed to schema `name`, dropped and made again empty.
pub async fn fresh_schema(name: &str) -> String {
    fresh_schema_on(&server_url(), name).await
}

/// `url` narrowed to schema `name`, dropped and made again empty (benches/pay_fleet.rs too).
pub async fn fresh_schema_on(url: &str, name: &str) -> String {
    let mut admin = PgConnection::connect(url)
        .await
        .expect("cannot connect to the PostgreSQL server");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
    )))
    .execute(&mut admin)
    .await
    .expect("make a schema");
    let _ = admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={name}")
}
