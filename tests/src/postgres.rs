//! A PostgreSQL database of its own for each test that needs one.
//!
//! The server is the one at `$C2D_TEST_POSTGRES_URL` (an admin URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) or, when that variable is unset, the one on
//! 127.0.0.1:5432 if it answers; otherwise the test starts its own: `initdb` and `postgres`
//! from `$C2D_POSTGRES_BIN`, `/usr/lib/postgresql/*/bin` or `PATH`, in a temporary directory,
//! on a free port, stopped with the test (`C2D_TEST_POSTGRES_URL=own` asks for that even when
//! a server runs). Each [`TestDatabase`] is a fresh database, dropped
//! when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::{Connection as _, Executor as _};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, on a server that lives as long as it does.
pub struct TestDatabase {
    /// Connect here: `postgres://.../c2d_test_...`.
    pub url: String,
    admin_url: String,
    name: String,
    server: Option<OwnServer>,
}

impl TestDatabase {
    /// Creates a database on the first server that answers (see the module docs).
    pub async fn create() -> anyhow::Result<TestDatabase> {
        match std::env::var("C2D_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() && url != "own" => {
                TestDatabase::create_on(url, None).await
            }
            Err(_) if answers(DEFAULT_ADMIN_URL).await => {
                TestDatabase::create_on(DEFAULT_ADMIN_URL.to_owned(), None).await
            }
            _ => TestDatabase::on_own_server().await,
        }
    }

    /// Creates a database on a server this test starts, whatever else runs.
    pub async fn on_own_server() -> anyhow::Result<TestDatabase> {
        let server = OwnServer::start().await?;
        TestDatabase::create_on(server.admin_url.clone(), Some(server)).await
    }

    async fn create_on(
        admin_url: String,
        server: Option<OwnServer>,
    ) -> anyhow::Result<TestDatabase> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "c2d_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {admin_url}"))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let _ = admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => bail!("{admin_url} does not end with /database"),
        };
        Ok(TestDatabase {
            url,
            admin_url,
            name,
            server,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.server.is_some() {
            // The whole server goes with its directory.
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: drop the database from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

async fn answers(url: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(url)).await,
        Ok(Ok(_))
    )
}

/// A PostgreSQL server this test started.
struct OwnServer {
    admin_url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl OwnServer {
    async fn start() -> anyhow::Result<OwnServer> {
        let bin = postgres_bin_dir().context(
            "no PostgreSQL answers on 127.0.0.1:5432 and initdb was not found: install PostgreSQL \
             (Debian: apt-get install postgresql; `make tools` does it) or set C2D_TEST_POSTGRES_URL",
        )?;
        let dir = tempfile::Builder::new().prefix("c2d-postgres-").tempdir()?;
        let data = dir.path().join("data");
        // PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
        let user = run_as();
        if let Some((uid, gid)) = user {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(dir.path())
                .status()?;
            if !status.success() {
                bail!("cannot hand {} to the postgres user", dir.path().display());
            }
        }
        let command = |program: &Path| {
            let mut command = Command::new(program);
            if let Some((uid, gid)) = user {
                use std::os::unix::process::CommandExt as _;
                command.uid(uid).gid(gid);
            }
            command
        };
        let output = command(&bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .context("cannot run initdb")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let port = crate::free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        let child = command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-k")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start postgres")?;
        let server = OwnServer {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            child,
            dir,
        };
        for _ in 0..200 {
            if answers(&server.admin_url).await {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the test's own postgres did not answer on port {port}; see {}",
            server.dir.path().join("postgres.log").display()
        )
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `initdb`'s directory: `$C2D_POSTGRES_BIN`, the newest `/usr/lib/postgresql/*/bin`, or PATH.
fn postgres_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("C2D_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|dir| dir.join("initdb").exists())
    })
}

/// The postgres user's (uid, gid) when this process is root.
fn run_as() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let output = Command::new("id").args(args).output().ok()?;
        String::from_utf8(output.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    use super::*;

    #[tokio::test]
    async fn a_server_of_the_tests_own_serves_a_fresh_database() {
        let database = TestDatabase::on_own_server()
            .await
            .expect("initdb and postgres are installed (make tools)");
        let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
        let row = sqlx::query("SELECT current_database() AS name")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("name"), database.name);
    }
}
