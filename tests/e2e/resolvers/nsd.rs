//! Debian's NSD as the authoritative server of a parent zone (the zone where a user's names live
//! and where the `--dns-zone` CNAMEs are created), started by the test with a config and a zone
//! file of its own on a loopback port of its own; killed and waited for on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use hickory_server::proto::rr::RecordType;

use super::daemon::{read_logs, wait_for_answer};
use crate::harness::free_port;

/// A running NSD.
pub struct Nsd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

fn nsd_bin() -> PathBuf {
    ["/usr/sbin/nsd", "/usr/local/sbin/nsd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "NSD is not installed, and the --dns-zone tests need it as the parent zone's \
                 server: run `apt-get install nsd` (Debian)"
            )
        })
}

impl Nsd {
    /// Serves `zone` (no final dot) with an SOA, an NS and `records` (zone-file lines such as
    /// `_acme-challenge.a.example.test. CNAME x.acme.test.`), TTL 0, on `port` (0: a free one).
    pub fn start(zone: &str, records: &[String], port: u16) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        let port = if port == 0 { free_port() } else { port };
        let d = dir.path().display();
        let conf = format!(
            r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    logfile: "{d}/nsd.log"
    server-count: 1
    verbosity: 1
    do-ip6: no
remote-control:
    control-enable: no
zone:
    name: {zone}
    zonefile: zone.db
"#
        );
        // Negative TTL 0 too: a resolver caches neither answers nor their absence.
        let mut db = format!(
            "$ORIGIN {zone}.\n$TTL 0\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 0\n\
             @ IN NS ns.{zone}.\nns IN A 127.0.0.1\n"
        );
        for record in records {
            db.push_str(&record.replace(" CNAME ", " IN CNAME "));
            db.push('\n');
        }
        std::fs::write(dir.path().join("nsd.conf"), conf).unwrap();
        std::fs::write(dir.path().join("zone.db"), db).unwrap();
        let out = std::fs::File::create(dir.path().join("nsd.out")).unwrap();
        let child = Command::new(nsd_bin())
            .arg("-d")
            .arg("-c")
            .arg(dir.path().join("nsd.conf"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nsd: {e}"));
        let mut nsd = Nsd { child, dir, port };
        nsd.wait_ready(zone);
        nsd
    }

    /// Readiness = an answer to the zone's SOA query, polled until a deadline.
    fn wait_ready(&mut self, zone: &str) {
        let dir = self.dir.path().to_path_buf();
        let log = move || read_logs(&dir, &["nsd.out", "nsd.log"]);
        let apex = format!("{zone}.");
        wait_for_answer(
            &mut self.child,
            self.port,
            &apex,
            RecordType::SOA,
            "nsd",
            &log,
        );
    }

    pub fn log(&self) -> String {
        read_logs(self.dir.path(), &["nsd.out", "nsd.log"])
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
