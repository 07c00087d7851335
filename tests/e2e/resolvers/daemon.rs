//! The resolver processes: Debian's Unbound and Knot Resolver (`kresd`), each started with a
//! config of its own in a temp dir, on a loopback port of its own, sending everything under
//! `test.` to one upstream port on 127.0.0.1 and nothing anywhere else.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RecordType};
use hickory_server::proto::serialize::binary::{BinDecodable, BinEncodable};

use crate::harness::free_port;

/// Which resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Unbound,
    Knot,
}

/// How the resolver in front of the client is configured.
pub struct Options {
    pub qname_minimisation: bool,
    pub tcp_upstream: bool,
}

/// A running resolver; killed and waited for on drop.
pub struct Resolver {
    kind: Kind,
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Kind {
    /// The Debian package and the program it installs.
    fn package_and_program(self) -> (&'static str, &'static str) {
        match self {
            Kind::Unbound => ("unbound", "unbound"),
            Kind::Knot => ("knot-resolver", "kresd"),
        }
    }

    /// The resolver's binary (`/usr/sbin` is often not on a user's PATH); its absence is a
    /// failure with the install hint, never a skip.
    fn binary(self) -> PathBuf {
        let (package, program) = self.package_and_program();
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "{program} is not installed, and the resolver tests need it: \
                     run `apt-get install {package}` (Debian)"
                )
            })
    }

    /// The config file's text, and the command line that runs it in the foreground.
    fn config_and_command(
        self,
        dir: &Path,
        port: u16,
        stubs: &[(&str, u16)],
        options: &Options,
    ) -> (String, Command) {
        let conf = dir.join("resolver.conf");
        let mut command = Command::new(self.binary());
        let text = match self {
            Kind::Unbound => {
                command.arg("-d").arg("-c").arg(&conf);
                unbound_config(dir, port, stubs, options)
            }
            Kind::Knot => {
                // -n: no REPL on stdin; the last argument is the run dir (control socket).
                command.arg("-n").arg("-c").arg(&conf).arg(dir);
                kresd_config(dir, port, stubs, options)
            }
        };
        (text, command)
    }

    /// What the resolver's log says when a client asked it `name` (no trailing dot) of `qtype`,
    /// in lowercase.
    fn asked(self, name: &str, qtype: &str) -> String {
        let qtype = qtype.to_ascii_lowercase();
        match self {
            // log-queries: `info: 127.0.0.1 _acme-challenge.a.test. TXT IN`
            Kind::Unbound => format!("{name}. {qtype} in"),
            // log_groups({'plan'}): `[plan  ][00000.00] plan '_acme-challenge.a.test.' type 'TXT'`
            Kind::Knot => format!("plan '{name}.' type '{qtype}'"),
        }
    }

    /// What the resolver logs when an answer's question is not in the case it asked in (0x20):
    /// Unbound (at verbosity 2) starts its fallback of asking again without 0x20; kresd (its
    /// `iterat` group) drops the answer and asks again over TCP.
    fn case_mismatch(self) -> &'static str {
        match self {
            Kind::Unbound => "Capsforid: starting fallback",
            Kind::Knot => "ignoring mismatching response",
        }
    }
}

fn unbound_config(dir: &Path, port: u16, stubs: &[(&str, u16)], options: &Options) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    format!(
        r#"server:
    interface: 127.0.0.1@{port}
    port: {port}
    do-daemonize: no
    use-syslog: no
    logfile: "{log}"
    verbosity: 2
    log-queries: yes
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    num-threads: 1
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    so-reuseport: no
    outgoing-port-avoid: 0-32767
    access-control: 127.0.0.0/8 allow
    use-caps-for-id: yes
    qname-minimisation: {qmin}
    tcp-upstream: {tcp}
    local-zone: "test." nodefault
    domain-insecure: "test."
    module-config: "iterator"
    do-not-query-localhost: no
    cache-min-ttl: 0
remote-control:
    control-enable: no
{stub_zones}"#,
        stub_zones = stubs
            .iter()
            .map(|(zone, port)| format!(
                "stub-zone:\n    name: \"{zone}.\"\n    stub-addr: 127.0.0.1@{port}\n"
            ))
            .collect::<String>(),
        log = dir.join("resolver.log").display(),
        dir = dir.display(),
        qmin = yes_no(options.qname_minimisation),
        tcp = yes_no(options.tcp_upstream),
    )
}

/// kresd 5 (Debian bookworm) as an ordinary process: cache in `dir`, no systemd, and nothing
/// that reaches past loopback (root priming, trust-anchor upkeep, time checks against the root).
/// `test.` is a special-use name kresd refuses by default; a policy rule comes before that.
fn kresd_config(dir: &Path, port: u16, stubs: &[(&str, u16)], options: &Options) -> String {
    // In stub mode kresd sends the whole name whatever NO_MINIMIZE says; the flag is set all the
    // same, so the option means the same for both resolvers.
    let mut flags = Vec::new();
    if options.tcp_upstream {
        flags.push("'TCP'");
    }
    if !options.qname_minimisation {
        flags.push("'NO_MINIMIZE'");
    }
    let flags_rule = if flags.is_empty() {
        String::new()
    } else {
        format!(
            "policy.add(policy.suffix(policy.FLAGS({{{}}}), {{todname('test.')}}))\n",
            flags.join(", ")
        )
    };
    format!(
        r#"log_target('stderr')
log_groups({{'plan', 'iterat'}})
net.ipv6 = false
net.listen('127.0.0.1', {port}, {{ kind = 'dns' }})
cache.open(10 * MB, 'lmdb://{cache}')
modules.unload('priming')
modules.unload('ta_update')
modules.unload('ta_signal_query')
modules.unload('ta_sentinel')
modules.unload('detect_time_skew')
modules.unload('detect_time_jump')
trust_anchors.remove('.')
{flags_rule}{stub_rules}
policy.add(policy.all(policy.REFUSE))
"#,
        cache = dir.join("cache").display(),
        // The first matching rule wins: the deepest zones first.
        stub_rules = {
            let mut stubs = stubs.to_vec();
            stubs.sort_by_key(|(zone, _)| std::cmp::Reverse(zone.split('.').count()));
            stubs
                .iter()
                .map(|(zone, port)| format!("policy.add(policy.suffix(policy.STUB({{'127.0.0.1@{port}'}}), {{todname('{zone}.')}}))\n"))
                .collect::<String>()
        },
    )
}

impl Resolver {
    /// Starts a resolver of `kind` on a free port of 127.0.0.1, sending `test.` to
    /// 127.0.0.1@`upstream_port`, and waits until it answers a query.
    pub fn start(kind: Kind, upstream_port: u16, options: &Options) -> Resolver {
        Self::start_stubs(kind, &[("test", upstream_port)], options)
    }

    /// Starts a resolver of `kind` sending each zone of `stubs` (no final dot, all under
    /// `test.`) to its port on 127.0.0.1.
    pub fn start_stubs(kind: Kind, stubs: &[(&str, u16)], options: &Options) -> Resolver {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let (text, mut command) = kind.config_and_command(dir.path(), port, stubs, options);
        std::fs::write(dir.path().join("resolver.conf"), text).unwrap();
        let out = std::fs::File::create(dir.path().join("resolver.out")).unwrap();
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
        let mut resolver = Resolver {
            kind,
            child,
            dir,
            port,
        };
        resolver.wait_ready();
        resolver
    }

    /// Readiness = an answer (any: Unbound answers `localhost.` itself, kresd refuses it) to a
    /// query for `localhost.` A, polled until a deadline.
    fn wait_ready(&mut self) {
        let name = format!("{:?}", self.kind);
        let dir = self.dir.path().to_path_buf();
        let log = move || read_logs(&dir, &["resolver.out", "resolver.log"]);
        wait_for_answer(
            &mut self.child,
            self.port,
            "localhost.",
            RecordType::A,
            &name,
            &log,
        );
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether a client asked the resolver `name` (no trailing dot) of `qtype`.
    pub fn was_asked(&self, name: &str, qtype: &str) -> bool {
        self.log()
            .to_ascii_lowercase()
            .contains(&self.kind.asked(name, qtype))
    }

    /// How many answers the resolver caught not echoing the case of its question.
    pub fn case_mismatches(&self) -> usize {
        self.log().matches(self.kind.case_mismatch()).count()
    }

    pub fn log(&self) -> String {
        read_logs(self.dir.path(), &["resolver.out", "resolver.log"])
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files of a daemon's temp dir, one after the other.
pub fn read_logs(dir: &Path, files: &[&str]) -> String {
    files
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
        .collect()
}

/// Polls the DNS server `child` started on 127.0.0.1@`port` with `name` `qtype` until any
/// answer comes, for at most 15 s; panics with its log if it exits or never answers.
pub fn wait_for_answer(
    child: &mut Child,
    port: u16,
    name: &str,
    qtype: RecordType,
    what: &str,
    log: &dyn Fn() -> String,
) {
    let mut query = Message::new(0x1234, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let query = query.to_bytes().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 512];
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited with {status}:\n{}", log());
        }
        let _ = socket.send_to(&query, ("127.0.0.1", port));
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && Message::from_bytes(&buf[..n]).is_ok_and(|m| m.metadata.id == 0x1234)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer within 15 s:\n{}",
            log()
        );
    }
}
