#!/usr/bin/python3
"""bench_memory.py: where the memory over static certificates goes, by
structure. For the variants of bench_config.py (static, mod_acme-loaded,
mod_acme-valid) at N domains, it starts apache2 with apr_blocks.c preloaded
(it records every APR pool block with the code that made it), waits for the
first TLS answer and --settle seconds, and prints:

- per variant: PSS of all processes, the parent's APR blocks, the blocks
  only the child has, and the parent's blocks the child has copied (a write
  to a page shared since the fork makes a private copy in both);
- per caller (the first frame outside libapr and libc, with file and line
  where the object has symbols): the parent's blocks in each variant, and
  the child's own blocks and copies in the last one.

A caller is the code that needed a new block; APR reuses freed blocks, so a
pool that was large once keeps its blocks, and they show under whoever
first made them. Run by hand, as root, after building the module:
    MOD_ACME_BUILD_DIR=/tmp/build-x /usr/bin/python3 test/bench/bench_memory.py -n 1000
"""
import argparse
import collections
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import benchlib
import bench_config
from benchlib import say, util
from harness.httpd import APACHE_BIN, Httpd  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("static", "mod_acme-loaded", "mod_acme-valid")


def build_preload(work):
    so = os.path.join(work, "apr_blocks.so")
    subprocess.run(["gcc", "-Wall", "-O1", "-g", "-shared", "-fPIC", "-o", so,
                    os.path.join(HERE, "apr_blocks.c"), "-ldl", "-lpthread"], check=True)
    return so


def read_blocks(path):
    out = []
    with open(path) as f:
        for line in f:
            x = line.split()
            out.append((int(x[0]), int(x[1], 16), x[2:]))
    return out


def pages(pid, addr, size):
    """{virtual page: physical frame} of the present pages in [addr, addr+size)."""
    res = {}
    with open("/proc/%d/pagemap" % pid, "rb") as f:
        f.seek(addr // 4096 * 8)
        data = f.read(size // 4096 * 8)
    for i in range(len(data) // 8):
        v = struct.unpack_from("<Q", data, i * 8)[0]
        if v >> 63:
            res[addr + i * 4096] = v & ((1 << 55) - 1)
    return res


_names = {}


def caller(frames):
    """'object:function (file:line)' of the first frame, by addr2line."""
    if not frames:
        return "?"
    fr = frames[0]
    if fr not in _names:
        obj, off = fr.rsplit("+", 1)
        out = subprocess.run(["addr2line", "-f", "-s", "-e", obj, off],
                             capture_output=True, text=True).stdout.split("\n")
        base = os.path.basename(obj)
        _names[fr] = ("%s:%s (%s)" % (base, out[0], out[1]) if len(out) > 1 and out[0] not in ("", "??")
                      else "%s+%s" % (base, off))
    return _names[fr]


def measure(variant, n, work, names, cert, ca, module, preload, settle):
    """PSS of a start without the preload (it costs memory of its own), then
    the blocks of a start with it."""
    pss = start(variant, n, work, names, cert, ca, module, None, settle)
    row = start(variant, n, work, names, cert, ca, module, preload, settle)
    row["pss"] = pss
    return row


def start(variant, n, work, names, cert, ca, module, preload, settle):
    root = os.path.join(work, "%s-%d" % (variant, n))
    shutil.rmtree(root, ignore_errors=True)
    httpd = Httpd(root, util.free_port(), util.free_port(), module_path=module)
    ca_url, ca_file = ca
    httpd.write_config(bench_config.config_text(variant, httpd, names, ca_url, ca_file, cert),
                       with_module=variant.startswith("mod_acme"))
    if variant == "mod_acme-valid":
        bench_config.populate_valid_store(httpd.store_dir, names, cert[2], ca_url)
    dump = os.path.join(work, "dump-%s" % variant)
    os.makedirs(dump, exist_ok=True)
    os.chmod(dump, 0o777)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    if preload:
        env.update(LD_PRELOAD=preload, APR_BLOCKS_DIR=dump)
    proc = subprocess.Popen([APACHE_BIN, "-d", httpd.root, "-f", httpd.conf_file, "-DFOREGROUND"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        util.wait_for(lambda: bench_config.handshake_ok(httpd, names[-1]), 600,
                      "a TLS handshake", interval=0.1)
        time.sleep(settle)
        parent = httpd.pid()
        children = [p for p in benchlib.process_tree(parent) if p != parent]
        if not preload:
            return sum(benchlib.pss_of(p) or 0 for p in [parent] + children)
        for p in [parent] + children:
            open(os.path.join(dump, "trigger.%d" % p), "w").close()
        util.wait_for(lambda: all(os.path.exists(os.path.join(dump, "blocks.%d" % p))
                                  and not os.path.exists(os.path.join(dump, "trigger.%d" % p))
                                  for p in [parent] + children), 30, "the block lists")
        pblocks = read_blocks(os.path.join(dump, "blocks.%d" % parent))
        row = {"variant": variant, "parent": collections.Counter(),
               "child_own": collections.Counter(), "copied": collections.Counter()}
        for size, addr, frames in pblocks:
            row["parent"][caller(frames)] += size
        inherited = {addr for _, addr, _ in pblocks}
        for c in children:  # the renewal child is among them; the others add little
            for size, addr, frames in read_blocks(os.path.join(dump, "blocks.%d" % c)):
                if addr not in inherited:
                    row["child_own"][caller(frames)] += size
            for size, addr, frames in pblocks:
                pp, cp = pages(parent, addr, size), pages(c, addr, size)
                row["copied"][caller(frames)] += 4096 * sum(1 for va, fr in cp.items()
                                                            if va in pp and pp[va] != fr)
        return row
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def kib(v):
    return "%.0f" % (v / 1024.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="domains")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--build", help="mod_acme build dir (default $MOD_ACME_BUILD_DIR)")
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds after the first answer before the sample")
    ap.add_argument("--top", type=int, default=15, help="callers shown")
    args = ap.parse_args()
    benchlib.exit_on_sigterm()
    if os.geteuid() != 0:
        ap.error("run as root (pagemap)")
    variants = [v for v in args.variants.split(",") if v]
    module = benchlib.module_path(args.build)
    work = tempfile.mkdtemp(prefix="mod_acme-bench-memory-")
    os.chmod(work, 0o755)
    benchlib.print_machine(benchlib.machine_info())
    names = bench_config.domain_names(args.n)
    cert = bench_config.wildcard_cert(work)
    # nothing is due in mod_acme-valid: the CA is only named (a closed port)
    ca = ("https://127.0.0.1:%d/dir" % util.free_port(), cert[0])
    try:
        preload = build_preload(work)
        rows = []
        for v in variants:
            say("== %s, N=%d" % (v, args.n))
            rows.append(measure(v, args.n, work, names, cert, ca, module, preload, args.settle))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0]
    say("")
    say(benchlib.table(
        ["variant", "N", "PSS KiB", "PSS over %s" % base["variant"], "parent's APR blocks KiB",
         "child's own KiB", "copied by the child KiB"],
        [[r["variant"], str(args.n), kib(r["pss"] * 1024), "%+.0f" % (r["pss"] - base["pss"]),
          kib(sum(r["parent"].values())), kib(sum(r["child_own"].values())),
          kib(sum(r["copied"].values()))] for r in rows]))
    last = rows[-1]
    for r in rows:  # httpd's and mod_ssl's blocks: the same work in every variant, but
        # static gets more of them from blocks freed before, so only their sum says anything
        other = sum(v for k, v in r["parent"].items() if not k.startswith("mod_acme.so:"))
        r["parent"] = collections.Counter({k: v for k, v in r["parent"].items()
                                           if k.startswith("mod_acme.so:")})
        r["parent"]["httpd, mod_ssl and the libraries"] = other
    keys = sorted(set().union(*(r["parent"] for r in rows)),
                  key=lambda k: -(last["parent"][k] - base["parent"][k]))[:args.top]
    if "httpd, mod_ssl and the libraries" not in keys:
        keys.append("httpd, mod_ssl and the libraries")
    say("")
    say("the parent's APR blocks by caller, KiB (the largest differences from %s)" % base["variant"])
    say(benchlib.table(["caller"] + [r["variant"] for r in rows] + ["difference"],
                       [[k] + [kib(r["parent"][k]) for r in rows]
                        + ["%+.0f" % ((last["parent"][k] - base["parent"][k]) / 1024.0)]
                        for k in keys]))
    say("")
    say("%s: the child's own blocks and its copies of the parent's, by caller, KiB" % last["variant"])
    ck = sorted(set(last["child_own"]) | set(last["copied"]),
                key=lambda k: -(last["child_own"][k] + last["copied"][k]))[:args.top]
    say(benchlib.table(["caller", "own", "copied"],
                       [[k, kib(last["child_own"][k]), kib(last["copied"][k])] for k in ck]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
