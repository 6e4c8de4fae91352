# Small helpers shared by the integration fixtures: free loopback ports,
# deadline loops, log tails and process bookkeeping by pid.
import contextlib
import os
import signal
import socket
import time

import requests

# Every port handed out in this session: bind(0) can return a port that was
# given out a moment ago but is not bound yet by the process that got it.
_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that is free now (and UDP-free too, for DNS)."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port in _handed_out:
            continue
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")


def http_session():
    """A requests session that ignores the environment: REQUESTS_CA_BUNDLE
    would silently override a session's verify=, and proxies must not see
    loopback test traffic."""
    s = requests.Session()
    s.trust_env = False
    return s


class WaitTimeout(AssertionError):
    pass


def wait_for(predicate, timeout=10.0, what="condition", interval=0.05, fatal=()):
    """Call predicate until it returns a true value; return that value.

    Raises WaitTimeout naming `what` when the deadline passes.  Exceptions
    from the predicate count as "not yet" and the last one is reported,
    except those of the types in `fatal`, which end the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except tuple(fatal):
            raise
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise WaitTimeout(msg)
        time.sleep(interval)


def port_accepts(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_text(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tail(text, lines=60):
    parts = text.splitlines()
    return "\n".join(parts[-lines:])


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid, "r") as f:
            stat = f.read()
        # The state follows the parenthesised command name.
        state = stat.rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


def kill_tree(pid, sig=signal.SIGKILL):
    """Kills pid and its children so that no child survives: the parent is
    stopped first, so it cannot fork a new child between the listing of its
    children and its own death (an httpd child whose parent died keeps
    serving, and its ports, for as long as a sibling holds the pipe)."""
    kill_pid(pid, signal.SIGSTOP)
    for child in child_pids(pid):
        kill_pid(child, sig)
    kill_pid(pid, sig)
    if sig != signal.SIGKILL:
        kill_pid(pid, signal.SIGCONT)


def pids_with_arg(needle):
    """Processes whose command line has needle as one of its arguments."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if needle.encode() in args:
            out.append(int(name))
    return out


def child_pids(ppid):
    """Direct children of ppid, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "r") as f:
                stat = f.read()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                out.append(int(name))
        except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
            continue
    return out


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_popen(proc, timeout=10.0):
    """Terminate a subprocess.Popen we started: TERM, then KILL, always reap."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001
        proc.kill()
        proc.wait(timeout=timeout)


class TimeLimitExceeded(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds, what):
    """Raise TimeLimitExceeded in the main thread if the block runs longer
    than `seconds` (SIGALRM; interrupts sleeps and blocking socket calls)."""
    def on_alarm(signum, frame):
        raise TimeLimitExceeded("%s exceeded its time limit of %ds" % (what, seconds))

    if seconds <= 0:
        yield
        return
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
