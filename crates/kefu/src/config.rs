//! The effective configuration: defaults, then `kefu.toml`, then `KEFU_*`
//! environment variables (nested sections with `__`, e.g.
//! `KEFU_SERVER__SESSION_DAYS=7`), then command-line flags. Later wins.

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kefu_server::ServerConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the SQLite database and attachments live.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; empty for SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Log filter, e.g. `info` or `kefu_server=debug,info`.
    pub log: String,
    pub server: ServerConfig,
    pub mail: MailConfig,
}

/// The email channel's server-wide settings; each email inbox holds its own
/// addresses and mail servers in its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// Address of the inbound SMTP listener (for MX records or forwarding),
    /// e.g. `0.0.0.0:25`; unset runs none.
    pub smtp_listen: Option<SocketAddr>,
    /// Our name in the SMTP greeting.
    pub hostname: String,
    /// Largest message the listener accepts, in MiB.
    pub max_message_mb: u64,
    /// PEM certificate chain (leaf first) for STARTTLS on the SMTP listener;
    /// with `tls_key`, the listener offers STARTTLS, without it plain text only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) that goes with `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl MailConfig {
    /// Settings that cannot work; the certificate files themselves are read
    /// when the listener starts.
    pub fn problems(&self) -> Vec<String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => vec!["mail.tls_cert is set but mail.tls_key is not".into()],
            (None, Some(_)) => vec!["mail.tls_key is set but mail.tls_cert is not".into()],
            _ => vec![],
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_listen: None,
            hostname: "localhost".into(),
            max_message_mb: 30,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            log: "info".into(),
            server: ServerConfig::default(),
            mail: MailConfig::default(),
        }
    }
}

/// Flags shared by every command that touches the database.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Configuration file [default: ./kefu.toml when it exists]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database and attachments [env: KEFU_DATA_DIR]
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL instead of SQLite [env: KEFU_DATABASE_URL]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

impl Config {
    pub fn load(o: &Overrides, listen: Option<SocketAddr>) -> anyhow::Result<Config> {
        Self::load_from(o, listen, Env::prefixed("KEFU_").split("__"))
    }

    fn load_from(o: &Overrides, listen: Option<SocketAddr>, env: Env) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match &o.config {
            Some(path) if !path.exists() => bail!("config file {} does not exist", path.display()),
            Some(path) => fig = fig.merge(Toml::file_exact(path)),
            None => fig = fig.merge(Toml::file("kefu.toml")),
        }
        // Test and tool variables share the prefix but are not settings.
        let env =
            env.filter(|k| !k.as_str().starts_with("test_") && !k.as_str().starts_with("require_"));
        let mut config: Config = fig
            .merge(env)
            .extract()
            .context("reading the configuration")?;
        if let Some(d) = &o.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(u) = &o.database_url {
            config.database_url = Some(u.clone());
        }
        if let Some(l) = listen {
            config.listen = l;
        }
        config.database_url = config.database_url.filter(|u| !u.trim().is_empty());
        let mut problems = config.server.problems();
        problems.extend(config.mail.problems());
        if !problems.is_empty() {
            bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }
        Ok(config)
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("kefu.db").display()),
        }
    }

    pub fn attachments_dir(&self) -> PathBuf {
        self.data_dir.join("attachments")
    }

    /// The configuration as TOML, with the database URL's secrets masked.
    pub fn to_masked_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.database_url = shown.database_url.map(|u| mask_url_password(&u));
        shown.server.metrics_token = shown
            .server
            .metrics_token
            .map(|_| kefu_core::redact::MASK.to_string());
        Ok(toml::to_string_pretty(&shown)?)
    }
}

/// The URL with every secret in it masked (userinfo password, `?password=`
/// and the like): what `config print`, `migrate` and errors show. The one
/// implementation is `kefu_core::redact::mask_url_secrets`.
pub fn mask_url_password(url: &str) -> String {
    kefu_core::redact::mask_url_secrets(url)
}

/// Creates the directory if needed and makes it private to kefu's user
/// (0700 on Unix, also when it existed with wider modes): everything kefu
/// keeps holds secrets or customers' data.
pub fn ensure_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    restrict(path, 0o700)
}

/// Only kefu's user may read or write what the process creates from now on:
/// the SQLite database (the visitor signing key, mail passwords, DKIM keys)
/// with its WAL and SHM, blobs, import runs. One umask instead of a mode at
/// each place that creates a file, so a new one cannot be missed.
pub fn private_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Tightens what an older kefu created with wider modes: the SQLite files
/// and the data directory's subdirectories (their contents are then out of
/// reach whatever their own modes).
pub fn secure_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    ensure_dir(data_dir)?;
    for name in ["kefu.db", "kefu.db-wal", "kefu.db-shm", "kefu.db-journal"] {
        let file = data_dir.join(name);
        if file.exists() {
            restrict(&file, 0o600)?;
        }
    }
    for entry in
        std::fs::read_dir(data_dir).with_context(|| format!("reading {}", data_dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            restrict(&path, 0o700)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {} to {mode:o}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // result_large_err: figment::Jail's closures return figment's own error.
    #[allow(clippy::result_large_err)]
    fn precedence_is_defaults_then_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kefu.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\n[server]\nsession_days = 7\nmax_json_bytes = 4096\n").unwrap();
        let o = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };

        // The file beats the defaults.
        let c = Config::load_from(&o, None, Env::prefixed("KEFU_PRECEDENCE_NONE_")).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.server.session_days, 7);
        assert_eq!(c.server.max_json_bytes, 4096);
        assert_eq!(
            c.server.max_upload_bytes,
            ServerConfig::default().max_upload_bytes
        );

        // The environment beats the file; flags beat the environment.
        figment::Jail::expect_with(|jail| {
            jail.set_env("KEFUT_LOG", "warn");
            jail.set_env("KEFUT_SERVER__SESSION_DAYS", "3");
            jail.set_env("KEFUT_DATA_DIR", "/from/env");
            let o = Overrides {
                config: Some(file.clone()),
                data_dir: Some("/from/flag".into()),
                ..Default::default()
            };
            let c = Config::load_from(&o, None, Env::prefixed("KEFUT_").split("__")).unwrap();
            assert_eq!(c.log, "warn");
            assert_eq!(c.server.session_days, 3);
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
            Ok(())
        });
    }

    #[test]
    fn bad_settings_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kefu.toml");
        std::fs::write(
            &file,
            "[server]\nsession_days = 0\npublic_url = \"kefu.example.com\"\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(file),
            ..Default::default()
        };
        let err = Config::load_from(&o, None, Env::prefixed("KEFU_NONE_"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("session_days") && err.contains("public_url"),
            "{err}"
        );
    }

    #[test]
    fn passwords_are_masked() {
        for (url, shown) in [
            (
                "postgres://kefu:s3cret@db:5432/kefu",
                "postgres://kefu:****@db:5432/kefu",
            ),
            (
                "postgres://kefu@db/kefu?password=s3cret&sslmode=require",
                "postgres://kefu@db/kefu?password=****&sslmode=require",
            ),
            ("postgres://kefu@db/kefu", "postgres://kefu@db/kefu"),
            ("sqlite://data/kefu.db", "sqlite://data/kefu.db"),
        ] {
            assert_eq!(mask_url_password(url), shown);
        }
        let config = Config {
            database_url: Some("postgres://kefu:a1@db/kefu?sslpassword=b2&passfile=c3".into()),
            ..Config::default()
        };
        let mut config = config;
        config.server.metrics_token = Some("prometheus-scrape-secret".into());
        let toml = config.to_masked_toml().expect("toml");
        assert!(!toml.contains("prometheus-scrape-secret"), "{toml}");
        assert!(
            toml.contains("postgres://kefu:****@db/kefu?sslpassword=****&passfile=****"),
            "{toml}"
        );
    }
}
