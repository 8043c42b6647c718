//! The benchmark's other processes: the gateway under test, the fake LLM and the echo server run
//! as children of this same binary (`--role …`), so their RSS and CPU are their own. A child
//! prints `ready ADDR` once listening and exits when its stdin closes or it is dropped here.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running child process; killed and reaped on drop.
pub struct Process {
    child: Child,
    pub addr: String,
}

impl Process {
    /// Starts `current_exe --role ROLE ARGS…` with `env` added to its environment and waits
    /// (bounded) for its `ready ADDR` line.
    pub fn spawn(
        name: &str,
        role: &str,
        args: &[String],
        env: &[(String, String)],
        wait: Duration,
    ) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("--role")
            .arg(role)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the {name} process"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("ready ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let mut process = Self {
            child,
            addr: String::new(),
        };
        match rx.recv_timeout(wait) {
            Ok(addr) => process.addr = addr,
            Err(_) => bail!("the {name} process did not become ready within {wait:?}"),
        }
        Ok(process)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size and its high-water mark, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User + system CPU time consumed so far.
    pub fn cpu(&self) -> Duration {
        stat_cpu(&format!("/proc/{}/stat", self.pid()))
    }

    /// CPU time consumed so far by the server's tenant writer threads (named `tenant:…`), the
    /// part of [`Process::cpu`] spent committing. Zero for children without such threads.
    pub fn writer_cpu(&self) -> Duration {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return Duration::ZERO;
        };
        tasks
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.starts_with("tenant:"))
            })
            .map(|task| stat_cpu(&task.path().join("stat").display().to_string()))
            .sum()
    }

    /// Open file descriptors (sockets and database files).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }
}

/// User + system time from a `/proc/…/stat` file (a process's or one thread's).
fn stat_cpu(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 1000 / CLOCK_TICKS)
}

/// `sysconf(_SC_CLK_TCK)`, which is 100 on every Linux platform this runs on.
const CLOCK_TICKS: u64 = 100;

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// CPU of a process over one measured window.
pub struct Usage {
    started_cpu: Duration,
    started_writer_cpu: Duration,
    started: Instant,
}

impl Usage {
    pub fn start(p: &Process) -> Self {
        Self {
            started_cpu: p.cpu(),
            started_writer_cpu: p.writer_cpu(),
            started: Instant::now(),
        }
    }

    /// Cores used on average over the window (1.0 = one core busy).
    pub fn cores(&self, p: &Process) -> f64 {
        self.per_second(p.cpu().saturating_sub(self.started_cpu))
    }

    /// The part of [`Usage::cores`] used by tenant writer threads.
    pub fn writer_cores(&self, p: &Process) -> f64 {
        self.per_second(p.writer_cpu().saturating_sub(self.started_writer_cpu))
    }

    fn per_second(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / self.started.elapsed().as_secs_f64().max(1e-9)
    }
}

/// Exits this (child) process when the parent closes our stdin, so no child outlives a run.
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        std::process::exit(0);
    });
}
