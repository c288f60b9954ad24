//! Servers the hub's tests start: Debian's nats-server with JetStream
//! (`scripts/receivers.sh` installs it).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nats-server with JetStream in `dir`, killed when dropped.
pub struct NatsServer {
    child: Child,
    pub port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn nats(dir: &Path) -> NatsServer {
    let program = Path::new("/usr/sbin/nats-server");
    assert!(
        program.exists(),
        "/usr/sbin/nats-server is missing: run scripts/receivers.sh"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
            dir.join("js").display()
        ),
    )
    .unwrap();
    let child = Command::new(program)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = NatsServer { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}
