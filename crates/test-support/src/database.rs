//! One fresh database per test.

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// The server tests create their databases on: `TEST_DATABASE_URL`, else the local
/// default. It must name a database the user can connect to (usually `postgres`).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for the life of this value and is dropped with it.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    server_url: String,
}

impl TestDatabase {
    /// Creates `switchyard_test_<random>` on the test server.
    pub async fn create() -> Self {
        let server_url = server_url();
        let name = format!("switchyard_test_{}", uuid::Uuid::new_v4().simple());
        let mut connection = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot reach the test PostgreSQL (TEST_DATABASE_URL): {e}")
            });
        // The name is ours (a prefix and a UUID), never input: safe to format in.
        connection
            .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .expect("create test database");
        let _ = connection.close().await;
        let url = database_url(&server_url, &name);
        Self {
            name,
            url,
            server_url,
        }
    }

    /// A database that something else (a script under test) creates under `name`;
    /// dropped with this value all the same.
    pub fn adopt(name: &str) -> Self {
        let server_url = server_url();
        Self {
            url: database_url(&server_url, name),
            name: name.to_owned(),
            server_url,
        }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now, cutting off whoever is still connected (to test what a
    /// service does when its database disappears).
    pub async fn drop_now(&self) {
        drop_database(&self.server_url, &self.name).await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop may run inside or outside a runtime; a thread with its own runtime works
        // in both.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(drop_database(&server_url, &name));
            }
        })
        .join();
        if dropped.is_err() {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}

async fn drop_database(server_url: &str, name: &str) {
    if let Ok(mut connection) = PgConnection::connect(server_url).await {
        let _ = connection
            .execute(AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
            )))
            .await;
        let _ = connection.close().await;
    }
}

/// `server_url` with its database path replaced by `name`, query string kept.
fn database_url(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{}", &base[..path_start], name);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_name_replaces_the_path_and_keeps_the_query() {
        assert_eq!(
            database_url("postgres://u@h:1/postgres?sslmode=disable", "t"),
            "postgres://u@h:1/t?sslmode=disable"
        );
        assert_eq!(database_url("postgres://u@h:1", "t"), "postgres://u@h:1/t");
    }
}
