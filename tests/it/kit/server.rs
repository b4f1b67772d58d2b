//! The real server: a deployment in a temporary directory, the `nca` binary started on
//! 127.0.0.1:0, and the credentials its ceremony hands out (the first administrator's).

use std::io::{BufRead, BufReader};

use super::openssl::{openssl_csr, serial_of};
use super::pkcs11::new_token;
use super::tools::{curl, random_hex, run_ok, stdout, write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const NCA: &str = env!("CARGO_BIN_EXE_nca");

/// A valid IIN (check digit right), a person's of the demo registry.
pub const IIN: &str = "850315306048";
pub const BIN: &str = "150540041064";

pub fn key_store() -> String {
    std::env::var("NCA_TEST_KEY_STORE").unwrap_or_else(|_| "software".into())
}

pub fn is_pkcs11() -> bool {
    key_store() == "pkcs11"
}

pub fn postgres_url() -> String {
    std::env::var("NCA_TEST_POSTGRES_URL")
        .expect("NCA_TEST_POSTGRES_URL: run the suite through scripts/test.sh, which starts PostgreSQL")
}

/// A fresh, empty PostgreSQL database on the test server; returns its URL.
pub fn fresh_postgres_database() -> String {
    let base = postgres_url();
    let name = format!("nca_it_{}", random_hex(6));
    let admin = format!("{}/postgres", base.rsplit_once('/').unwrap().0);
    run_ok(Command::new("psql").args([admin.as_str(), "-qc", &format!("CREATE DATABASE {name}")]));
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

/// A deployment: data directory, environment, and (once started) a running `nca serve`.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    server: Option<Child>,
    pub public: String,
    pub operator: String,
}

impl Deployment {
    /// A deployment on the suite's key store and SQLite.
    pub fn new() -> Deployment {
        Self::with_database(None)
    }

    pub fn with_database(database_url: Option<String>) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            (
                "NCA_DATA_DIR".to_string(),
                dir.path().join("data").display().to_string(),
            ),
            ("NCA_LISTEN".into(), "127.0.0.1:0".into()),
            ("NCA_OPERATOR_LISTEN".into(), "127.0.0.1:0".into()),
            ("NCA_LOG".into(), "info,sqlx=warn".into()),
            // Tests submit many applications a second from 127.0.0.1, often for one IIN; the
            // portal tests set their own limits.
            ("NCA_RATE_PER_ADDRESS".into(), "0".into()),
            ("NCA_RATE_PER_IIN".into(), "0".into()),
        ];
        if let Some(url) = database_url {
            env.push(("NCA_DATABASE_URL".into(), url));
        }
        // Every deployment has a SoftHSM2 directory of its own (its CA token in the pkcs11 run,
        // the operators' tokens and ID cards a test makes in both runs). Never one shared by the
        // tests running side by side: SoftHSM2 rewrites a token's `token.object` on every
        // C_Login, truncating it before it takes its lock, and another process opening the same
        // token at that moment reads it half-written (CKR_GENERAL_ERROR from C_GetTokenInfo or
        // C_Login, "user PIN not initialised", or no such token).
        env.push((
            "SOFTHSM2_CONF".into(),
            dir.path().join("hsm/softhsm2.conf").display().to_string(),
        ));
        if is_pkcs11() {
            let label = std::env::var("NCA_TEST_PKCS11_TOKEN").expect("NCA_TEST_PKCS11_TOKEN");
            let pin = std::env::var("NCA_TEST_PKCS11_PIN").expect("NCA_TEST_PKCS11_PIN");
            new_token(&dir.path().join("hsm"), &label, &pin);
            for (k, v) in [
                ("NCA_KEY_STORE", "pkcs11".to_string()),
                (
                    "NCA_PKCS11_MODULE",
                    std::env::var("NCA_TEST_PKCS11_MODULE").expect("NCA_TEST_PKCS11_MODULE"),
                ),
                ("NCA_PKCS11_TOKEN", label),
                ("NCA_PKCS11_PIN", pin),
                // A PKCS#11 deployment is a production configuration: prove it starts as one.
                ("NCA_DEVELOPMENT", "false".to_string()),
            ] {
                env.push((k.to_string(), v));
            }
        } else {
            env.push(("NCA_KEY_STORE".into(), "software".into()));
        }
        Deployment {
            dir,
            env,
            server: None,
            public: String::new(),
            operator: String::new(),
        }
    }

    /// The deployment's SoftHSM2 configuration (its token directory is beside it).
    pub fn softhsm_conf(&self) -> PathBuf {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == "SOFTHSM2_CONF")
            .map(|(_, v)| PathBuf::from(v))
            .expect("every deployment names its SoftHSM2 configuration")
    }

    pub fn data(&self) -> PathBuf {
        self.env
            .iter()
            .find(|(k, _)| k == "NCA_DATA_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.data().join(rel)
    }

    /// `nca ARGS` with this deployment's environment, run from the temp dir (so the embedded
    /// defaults apply unless the repository's ca-config is named).
    pub fn nca(&self, args: &[&str]) -> Command {
        let mut c = Command::new(NCA);
        c.args(args).current_dir(self.dir.path()).env_clear();
        for k in ["PATH", "HOME", "SOFTHSM2_CONF", "RUST_BACKTRACE"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    pub fn init(&self) -> String {
        stdout(&run_ok(&mut self.nca(&["init"])))
    }

    /// Starts `nca serve` and waits for its `listening:` line.
    pub fn start(&mut self) {
        let mut child = self
            .nca(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.path().join("serve.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening: ") {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("nca serve did not start:\n{}", self.log());
            }
        };
        for part in line.split_whitespace() {
            if let Some(u) = part.strip_prefix("public=") {
                self.public = u.to_string();
            }
            if let Some(u) = part.strip_prefix("operator=") {
                self.operator = u.to_string();
            }
        }
        self.server = Some(child);
    }

    /// Kills the running service with SIGKILL: no clean stop, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the running service with SIGTERM; whether it exited within `within`. Killed with
    /// SIGKILL if it did not.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut c) = self.server.take() else { return true };
        run_ok(Command::new("kill").args(["-TERM", &c.id().to_string()]));
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if c.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Another instance of the same deployment (same environment: data directory, database and
    /// key store), with its own log; not initialised again.
    pub fn sibling(&self) -> Deployment {
        Deployment {
            dir: tempfile::tempdir().unwrap(),
            env: self.env.clone(),
            server: None,
            public: String::new(),
            operator: String::new(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `curl` against the public listener: (status, body).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        curl(&[&format!("{}{path}", self.public)])
    }

    /// `curl` against the operator listener with a client certificate and key.
    pub fn operator_post(&self, path: &str, cert: &Path, key: &Path, json: &str) -> (u16, Vec<u8>) {
        curl(&[
            "--cacert",
            &self.path("ca/root.pem").display().to_string(),
            "--cert",
            &cert.display().to_string(),
            "--key",
            &key.display().to_string(),
            "-H",
            "content-type: application/json",
            "--data-binary",
            json,
            &format!("{}{path}", self.operator),
        ])
    }

    /// Issues an `individual-auth` certificate with `nca cert issue` for a fresh key of `kind`
    /// (as [`openssl_csr`] takes it); returns the certificate's path, the key's path and the
    /// serial in lower-case hex.
    pub fn issue_individual(&self, work: &Path, name: &str, iin: &str, kind: &str) -> (PathBuf, PathBuf, String) {
        let (key, csr) = openssl_csr(work, name, kind);
        let csr = csr.display().to_string();
        let args = [
            "cert",
            "issue",
            "--profile",
            "individual-auth",
            "--csr",
            &csr,
            "--iin",
            iin,
            "--surname",
            "A",
            "--name",
            "B",
        ];
        let out = run_ok(&mut self.nca(&args));
        let pem = work.join(format!("{name}.pem"));
        write(&pem, &out.stdout);
        (pem.clone(), key, serial_of(&pem))
    }

    /// `curl` GET on the operator listener with the administrator's credentials.
    pub fn admin_get(&self, path: &str) -> (u16, Vec<u8>) {
        curl(&[
            "--cacert",
            &self.path("ca/root.pem").display().to_string(),
            "--cert",
            &self.path("admin/auth.crt").display().to_string(),
            "--key",
            &self.path("admin/auth.key").display().to_string(),
            &format!("{}{path}", self.operator),
        ])
    }

    /// The id of the first registration centre the service lists.
    pub fn first_centre(&self) -> String {
        let (_, body) = self.get("/api/v1/centres");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["regions"][0]["localities"][0]["centres"][0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn admin_post(&self, path: &str, json: &str) -> (u16, Vec<u8>) {
        self.operator_post(path, &self.path("admin/auth.crt"), &self.path("admin/auth.key"), json)
    }

    /// The number of certificates the service reports in each status, from /metrics.
    pub fn certificate_count(&self, status: &str) -> i64 {
        let (_, body) = self.get("/metrics");
        let text = String::from_utf8(body).unwrap();
        let key = format!("nca_certificates{{status=\"{status}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- nca serve log ---\n{}", self.log());
        }
    }
}
