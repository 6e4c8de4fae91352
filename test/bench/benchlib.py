# Shared helpers of the hand-run benchmarks in test/bench/: the integration
# harness on sys.path, httpd memory sampling from /proc, log times, machine facts.
import datetime
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "test", "integration"))

from harness import util  # noqa: E402,F401  (re-exported for the scripts)

MOD_MD = "/usr/lib/apache2/modules/mod_md.so"


def module_path(build_dir=None):
    build = build_dir or os.environ.get("MOD_ACME_BUILD_DIR", os.path.join(TOP, "_build"))
    return os.path.join(build, ".libs", "mod_acme.so")


def exit_on_sigterm():
    """SIGTERM (e.g. from timeout(1)) raises SystemExit, so the scripts'
    finally blocks still stop the httpd and pebble processes they started."""
    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)


def say(msg=""):
    print(msg, flush=True)


# ------------------------------------------------------------------ /proc
def _status_kib(pid, field):
    """A 'kB' field of /proc/<pid>/status (VmRSS, VmHWM), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
    return 0  # a zombie has no Vm* lines


def process_tree(root_pid):
    """root_pid and all its descendants (one /proc scan)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def tree_memory(root_pid):
    """(sum VmRSS KiB, sum VmHWM KiB, number of processes) of the tree now."""
    rss = hwm = n = 0
    for pid in process_tree(root_pid):
        r = _status_kib(pid, "VmRSS")
        if r is None:
            continue
        rss += r
        hwm += _status_kib(pid, "VmHWM") or 0
        n += 1
    return rss, hwm, n


def rss_of(pid):
    return _status_kib(pid, "VmRSS")


def pss_of(pid):
    """Proportional set size in KiB: pages shared with the parent (the
    configuration a child inherits) count once over all processes."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class MemorySampler(threading.Thread):
    """Samples the httpd tree every `interval` s; keeps the peaks of the sum
    of VmRSS and of the sum of VmHWM over the processes alive at a sample."""

    def __init__(self, pid_func, interval=0.1):
        super().__init__(daemon=True)
        self.pid_func = pid_func
        self.interval = interval
        self.peak_rss = 0
        self.peak_hwm = 0
        self.peak_procs = 0
        self.samples = 0
        self._stop_evt = threading.Event()

    def run(self):
        while not self._stop_evt.is_set():
            pid = self.pid_func()
            if pid:
                rss, hwm, n = tree_memory(pid)
                if n:
                    self.samples += 1
                    self.peak_rss = max(self.peak_rss, rss)
                    self.peak_hwm = max(self.peak_hwm, hwm)
                    self.peak_procs = max(self.peak_procs, n)
            self._stop_evt.wait(self.interval)

    def stop(self):
        self._stop_evt.set()
        self.join(5)


# ------------------------------------------------------------------ logs
# "[Mon Nov 23 00:19:06.357340 2026] [acme:notice] [pid 5640:tid 5640] ..."
_TS_RE = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d\.\d+ \d{4})\]")


def log_time(line):
    """Epoch seconds of an error-log line (local time), or None."""
    m = _TS_RE.match(line)
    if not m:
        return None
    dt = datetime.datetime.strptime(re.sub(" +", " ", m.group(1)), "%a %b %d %H:%M:%S.%f %Y")
    return time.mktime(dt.timetuple()) + dt.microsecond / 1e6


def timed_lines(text, needle):
    """[(epoch, line)] of the log lines containing needle."""
    out = []
    for line in text.splitlines():
        if needle in line:
            t = log_time(line)
            if t is not None:
                out.append((t, line))
    return out


# ------------------------------------------------------------------ machine
def _cmd(args):
    try:
        return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=30).stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.SubprocessError) as e:
        return "(%s)" % e


def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    debian = util.read_text("/etc/debian_version").strip()
    apache = _cmd(["/usr/sbin/apache2", "-v"]).splitlines()[0].split(":", 1)[-1].strip()
    pebble = _cmd(["dpkg-query", "-W", "-f", "${Version}", "pebble"])
    return {
        "date": _cmd(["date", "-u"]),
        "nproc": _cmd(["nproc"]),
        "mem": "%.1f GiB" % (mem_kib / 1048576.0),
        "cpu": cpu,
        "debian": debian,
        "kernel": platform.release(),
        "apache": apache,
        "pebble": pebble,
    }


def print_machine(info):
    say("date:    %s" % info["date"])
    say("machine: %s CPU(s) %s, %s RAM, Debian %s (kernel %s)"
        % (info["nproc"], info["cpu"], info["mem"], info["debian"], info["kernel"]))
    say("apache:  %s; pebble %s" % (info["apache"], info["pebble"]))


def table(headers, rows):
    """Rows as a Markdown table (also readable on a terminal)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in cells:
        out.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                     for i, (c, w) in enumerate(zip(r, widths))) + " |")
    return "\n".join(out)


def start_pebble(work, http_port, tls_port, env=None):
    """pebble-challtestsrv and pebble in work/, on loopback; (dns, pebble),
    both started: the caller stops them. env: pebble's environment on top of
    the harness's; a value None unsets the variable."""
    from harness.pebble import Pebble, PebbleDNS
    from harness.pki import ListenerPKI
    dns = PebbleDNS(os.path.join(work, "dns"))
    os.makedirs(dns.workdir, exist_ok=True)
    dns.start()
    pki_dir = os.path.join(work, "pki")
    os.makedirs(pki_dir, exist_ok=True)
    os.chmod(pki_dir, 0o755)
    env = dict(env or {})
    pebble = Pebble(work, "pebble", ListenerPKI(pki_dir).generate(), dns, http_port, tls_port,
                    env={k: v for k, v in env.items() if v is not None})
    for k, v in env.items():
        if v is None:  # None: unset (the harness sets PEBBLE_VA_NOSLEEP=1)
            pebble.env.pop(k, None)
    pebble.start()
    return dns, pebble
