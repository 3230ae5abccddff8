//! The server under test: the release `hubcast` binary in its own process, every listener on
//! 127.0.0.1 with a free port, killed on every exit path (the guard's Drop).

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every port the config names.
#[derive(Debug, Clone)]
pub struct Ports {
    pub udp_bind: String,
    pub rtsp: u16,
    pub rtp: u16,
    pub webrtc_http: u16,
    pub webrtc_udp: u16,
    pub api: u16,
    pub metrics: u16,
    pub pprof: u16,
}

impl Ports {
    /// Free ports, found by binding port 0 (all held until every one is chosen, so they differ).
    /// RTP/RTCP are an adjacent even/odd UDP pair.
    pub fn pick() -> std::io::Result<Ports> {
        let mut tcp = Vec::new();
        for _ in 0..5 {
            tcp.push(TcpListener::bind("127.0.0.1:0")?);
        }
        let tcp_port = |i: usize| tcp[i].local_addr().map(|a| a.port());
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let mut pair = None;
        for _ in 0..200 {
            let probe = UdpSocket::bind("127.0.0.1:0")?;
            let p = probe.local_addr()?.port() & !1;
            drop(probe);
            if p < 1024 || p == u16::MAX - 1 {
                continue;
            }
            if let (Ok(a), Ok(b)) = (
                UdpSocket::bind(("127.0.0.1", p)),
                UdpSocket::bind(("127.0.0.1", p + 1)),
            ) {
                if a.local_addr()?.port() != udp.local_addr()?.port()
                    && b.local_addr()?.port() != udp.local_addr()?.port()
                {
                    pair = Some((p, a, b));
                    break;
                }
            }
        }
        let (rtp, _a, _b) =
            pair.ok_or_else(|| std::io::Error::other("no free even/odd UDP port pair"))?;
        Ok(Ports {
            udp_bind: "127.0.0.1".into(),
            rtsp: tcp_port(0)?,
            webrtc_http: tcp_port(1)?,
            api: tcp_port(2)?,
            metrics: tcp_port(3)?,
            pprof: tcp_port(4)?,
            rtp,
            webrtc_udp: udp.local_addr()?.port(),
        })
    }

    pub fn yaml(&self) -> String {
        format!(
            "# written by benches/fanout.rs\n\
             logLevel: warn\n\
             writeQueueSize: 1024\n\
             api: yes\n\
             apiAddress: 127.0.0.1:{api}\n\
             metrics: yes\n\
             metricsAddress: 127.0.0.1:{metrics}\n\
             pprof: yes\n\
             pprofAddress: 127.0.0.1:{pprof}\n\
             rtsp: yes\n\
             rtspTransports: [udp, tcp]\n\
             rtspAddress: 127.0.0.1:{rtsp}\n\
             rtpAddress: 127.0.0.1:{rtp}\n\
             rtcpAddress: 127.0.0.1:{rtcp}\n\
             webrtc: yes\n\
             webrtcAddress: 127.0.0.1:{http}\n\
             webrtcLocalUDPAddress: {udp_bind}:{udp}\n\
             paths:\n  all_others:\n",
            api = self.api,
            metrics = self.metrics,
            pprof = self.pprof,
            rtsp = self.rtsp,
            rtp = self.rtp,
            rtcp = self.rtp + 1,
            http = self.webrtc_http,
            udp = self.webrtc_udp,
            udp_bind = self.udp_bind,
        )
    }
}

/// The running server. Dropping it kills the process and removes the config file.
pub struct ServerProc {
    child: Child,
    pub pid: u32,
    pub ports: Ports,
    pub log_path: PathBuf,
    config_path: PathBuf,
}

impl ServerProc {
    pub fn start(
        bin: &Path,
        out_dir: &Path,
        tag: &str,
        udp_bind: &str,
    ) -> Result<ServerProc, String> {
        let mut last_err = String::new();
        // A port picked free can be taken by someone else before the server binds it: retry.
        for _attempt in 0..3 {
            let mut ports = Ports::pick().map_err(|e| format!("cannot pick free ports: {e}"))?;
            ports.udp_bind = udp_bind.to_string();
            let config_path = std::env::temp_dir()
                .join(format!("hubcast-fanout-{}-{tag}.yml", std::process::id()));
            fs::write(&config_path, ports.yaml())
                .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
            let log_path = out_dir.join(format!("fanout-{tag}-server.log"));
            let log = fs::File::create(&log_path)
                .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
            let log2 = log.try_clone().map_err(|e| e.to_string())?;
            let child = Command::new(bin)
                .arg(&config_path)
                .env_remove("RUST_LOG")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            let mut server = ServerProc {
                pid: child.id(),
                child,
                ports,
                log_path,
                config_path,
            };
            match server.wait_ready(Duration::from_secs(15)) {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last_err = e;
                    // Drop kills it; a bind conflict shows in the log.
                }
            }
        }
        Err(last_err)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let addrs: Vec<SocketAddr> = [self.ports.rtsp, self.ports.webrtc_http]
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server exited during startup ({status}); its log:\n{}",
                    self.log_tail(30)
                ));
            }
            if addrs
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server did not listen on {addrs:?} within {timeout:?}; its log:\n{}",
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn rtsp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.rtsp))
    }

    pub fn whep_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}/whep", self.ports.webrtc_http)
    }

    pub fn webrtc_udp(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.webrtc_udp))
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Warnings and errors the server logged (tracing's fmt puts the level after the time).
    pub fn problems(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .take(3)
                    .any(|w| w == "WARN" || w == "ERROR")
            })
            .map(|l| l.to_string())
            .collect()
    }
}

/// Distinct messages among log lines (timestamp dropped, numbers masked), most frequent first:
/// (count, first example).
pub fn summarize(lines: &[String]) -> Vec<(usize, String)> {
    let mut out: Vec<(String, usize, String)> = Vec::new();
    for l in lines {
        let msg = l
            .split_once(' ')
            .map_or(l.as_str(), |(_, rest)| rest)
            .trim();
        let mut key = String::with_capacity(msg.len());
        let mut in_num = false;
        for ch in msg.chars() {
            if ch.is_ascii_hexdigit() && (in_num || ch.is_ascii_digit()) {
                if !in_num {
                    key.push('#');
                    in_num = true;
                }
            } else {
                in_num = false;
                key.push(ch);
            }
        }
        match out.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, n, _)) => *n += 1,
            None => out.push((key, 1, msg.to_string())),
        }
    }
    let mut v: Vec<(usize, String)> = out.into_iter().map(|(_, n, ex)| (n, ex)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.config_path);
    }
}

/// Clock ticks per second for /proc/*/stat times.
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process (`self` or a pid), in clock ticks, and its thread count.
pub fn cpu_ticks(pid: &str) -> Option<(u64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    Some((utime + stime, threads))
}

/// VmRSS in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The `Udp:` counters of /proc/net/snmp (RcvbufErrors, SndbufErrors, InErrors, ...).
pub fn udp_snmp() -> Vec<(String, u64)> {
    let text = fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    if lines.len() < 2 {
        return Vec::new();
    }
    let names = lines[0].split_whitespace().skip(1);
    let values = lines[1].split_whitespace().skip(1);
    names
        .zip(values)
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

pub fn snmp_get(snmp: &[(String, u64)], key: &str) -> u64 {
    snmp.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or(0)
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
pub fn host_cpu() -> (u64, u64) {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

pub fn loadavg() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
