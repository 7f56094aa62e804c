"""Workloads that several live test modules run as real runc containers."""

from __future__ import annotations

import json
import subprocess
import uuid

from tracer import runc
from tracer.embedded.bundle import make_bundle
from tracer.trace.summary import trace_summary

# Runs as root with a few capabilities: it needs CHOWN and never uses NET_RAW or KILL.
WORKLOAD = """
import os
with open('/tmp/f', 'w') as f:
    f.write('x')
os.chown('/tmp/f', 1234, 1234)
print('owner', os.stat('/tmp/f').st_uid, flush=True)
if os.environ.get('PROBE'):
    try:
        os.getpriority(os.PRIO_PROCESS, 0)
        print('probe allowed')
    except OSError as err:
        print('probe errno', err.errno)
"""


RECORDING_CAPS = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"]


RUNC_SETUP = {"mount", "umount2", "pivot_root", "sethostname", "keyctl"}


def chown_bundle(directory, **kwargs):
    return make_bundle(
        directory, ["/usr/bin/python3", "-c", WORKLOAD], uid=0, gid=0, capabilities=RECORDING_CAPS, **kwargs
    )


def run_container(bundle, env=None) -> tuple[int, str]:
    if env:
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["env"] += [f"{k}={v}" for k, v in env.items()]
        (bundle / "config.json").write_text(json.dumps(config))
    out = bundle.parent / f"out-{uuid.uuid4().hex[:6]}"
    with open(out, "w") as stdout:
        status = runc.run_to_completion(
            bundle, f"t-{uuid.uuid4().hex[:8]}", stdout=stdout, stderr=subprocess.STDOUT, timeout=60
        )
    return status, out.read_text()


def trace_names(trace, phase):
    return trace_summary(trace)["phases"][phase]


# A threaded server's start as uid 1000: it needs no capability. runc's init, already uid
# 1000, checks CAP_DAC_OVERRIDE reopening /proc/self/fd before the exec: the runtime's, not this.
THREADED_UID_1000 = """
import threading, socket
def serve(listener):
    conn, _ = listener.accept()
    conn.close()
listener = socket.socket()
listener.bind(('127.0.0.1', 0))
listener.listen()
worker = threading.Thread(target=serve, args=(listener,))
worker.start()
socket.create_connection(listener.getsockname()).close()
worker.join()
print('served', flush=True)
"""
