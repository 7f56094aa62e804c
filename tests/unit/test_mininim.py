"""The mini-NIM workload, its OCI bundle, netns plumbing and the load tester.

The server runs in-process here; tests/live/test_mininim_container.py runs it for real as a
runc container in its own network namespace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from support.paths import REPO
from tracer import loadtest, runc
from tracer.cli import main as tracer_main
from tracer.embedded.bundle import Bind, make_bundle, mininim_bundle
from tracer.embedded.mininim import server as mininim
from tracer.embedded.mininim.model import MODEL_NAME, write_model
from tracer.errors import InputError
from tracer.network.observe import free_port
from tracer.oci import check_bundle, stop_signal

# --- the model and the server, in-process ---------------------------------------------


def test_model_build_is_deterministic(tmp_path):
    first, second = write_model(tmp_path / "a"), write_model(tmp_path / "b")
    assert (first / "config.json").read_text() == (second / "config.json").read_text()
    with np.load(first / "model.npz") as a, np.load(second / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files) and a.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])


def start_server(tmp_path, monkeypatch, *, load: bool = True):
    monkeypatch.setattr(mininim, "MODEL_DIR", write_model(tmp_path / "model"))
    monkeypatch.setattr(mininim, "SCRATCH_DIR", tmp_path / "scratch")
    server = mininim.MiniNimServer(("127.0.0.1", 0))
    if load:
        server.load_model()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def mininim_url(tmp_path, monkeypatch):
    server, url = start_server(tmp_path, monkeypatch)
    yield url
    server.shutdown()
    server.server_close()


def http_json(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_ready_only_once_the_model_is_loaded(tmp_path, monkeypatch):
    server, url = start_server(tmp_path, monkeypatch, load=False)
    try:
        assert http_json(url + "/v1/health/live")[0] == 200
        assert http_json(url + "/v1/health/ready")[0] == 503
        assert http_json(url + "/v1/completions", {"prompt": "x"})[0] == 503
        server.load_model()
        assert http_json(url + "/v1/health/ready")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_models_and_completions_have_the_openai_shape(mininim_url, tmp_path):
    status, models = http_json(mininim_url + "/v1/models")
    assert status == 200 and models["object"] == "list"
    assert models["data"][0]["id"] == MODEL_NAME

    request = {"model": MODEL_NAME, "prompt": "the model", "max_tokens": 12, "temperature": 0}
    status, completion = http_json(mininim_url + "/v1/completions", request)
    assert status == 200 and completion["object"] == "text_completion"
    assert len(completion["choices"][0]["text"]) == 12
    assert completion["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    assert http_json(mininim_url + "/v1/completions", request)[1]["choices"] == completion["choices"]  # greedy
    assert (tmp_path / "scratch" / "requests.log").read_text().count("\n") == 2


@pytest.mark.parametrize(
    "body", [{"prompt": 3}, {"max_tokens": -1}, {"max_tokens": 10_000}, {"temperature": "hot"}, {"model": "other"}]
)
def test_bad_completion_requests_get_400(mininim_url, body):
    status, answer = http_json(mininim_url + "/v1/completions", body)
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"


# --- the load tester -------------------------------------------------------------------


def test_load_test_against_the_in_process_server(mininim_url, capsys):
    assert loadtest.main(["--url", mininim_url, "--requests", "60", "--concurrency", "4", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == 60 and report["errors"] == 0 and report["model"] == MODEL_NAME
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["p99"]
    assert report["requests_per_s"] > 0


class FlakyHandler(BaseHTTPRequestHandler):
    """Ready, one model, and every third completion answered with HTTP 500."""

    protocol_version = "HTTP/1.1"
    calls = 0
    lock = threading.Lock()

    def do_GET(self):
        self.reply(200, {"object": "list", "data": [{"id": "flaky"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            FlakyHandler.calls += 1
            fail = FlakyHandler.calls % 3 == 0
        self.reply(500, {"error": {}}) if fail else self.reply(200, {"choices": [{"text": "ok"}]})

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_errors_are_counted_and_exit_1(capsys):
    FlakyHandler.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert loadtest.main(["--url", url, "--requests", "30", "--concurrency", "3", "--format", "json"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 10 and report["ok"] == 20 and report["error_kinds"] == {"HTTP 500": 10}


def test_percentiles_are_numpy_linear_percentiles():
    summary = loadtest.latency_summary_ms([ms / 1000 for ms in range(1, 101)])
    assert summary == {"p50": 50.5, "p95": 95.05, "p99": 99.01, "mean": 50.5, "max": 100.0}
    assert loadtest.latency_summary_ms([]) is None


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("0.0.0.0", False),
    ],
)
def test_loopback_detection(host, loopback):
    assert loadtest.is_loopback(host) is loopback


def test_refuses_a_non_loopback_url_unless_allowed(capsys):
    assert loadtest.main(["--url", "http://192.0.2.1:8000", "--requests", "1"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    options = loadtest.LoadOptions(url="http://192.0.2.1:8000", allow_remote=True)
    assert loadtest.parse_endpoint(options) == loadtest.Endpoint("http", "192.0.2.1", 8000, "")


@pytest.mark.parametrize(
    "argv",
    [
        ["--concurrency", "0"],
        ["--requests", "2000000"],
        ["--url", "ftp://x"],
        ["--no-such-option"],
        ["--requests", "many"],
    ],
)
def test_usage_errors_exit_2(argv):
    assert loadtest.main(argv) == 2


def test_endpoint_never_ready_exits_1(capsys):
    port = free_port()
    assert loadtest.main(["--url", f"http://127.0.0.1:{port}", "--ready-timeout", "0.2"]) == 1
    assert "not ready after 0.2s" in capsys.readouterr().err


def test_requests_past_the_time_limit_are_not_sent():
    dispenser = loadtest.Dispenser(5, deadline=time.monotonic() - 1)
    assert dispenser.take() is False and dispenser.remaining == 5


def test_tracer_load_takes_the_scripts_options(capsys):
    assert tracer_main(["load", "--help"]) == 0
    assert "--concurrency" in capsys.readouterr().out
    assert tracer_main(["load", "--url", "http://10.1.2.3"]) == 2


def test_script_runs_with_plain_python(mininim_url):
    script = REPO / "scripts" / "loadtest.py"
    done = subprocess.run(
        ["/usr/bin/python3", str(script), "--url", mininim_url, "--requests", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "5/5 ok" in done.stdout


# --- bundles ---------------------------------------------------------------------------


def test_make_bundle_writes_a_read_only_non_root_config(tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    bundle = make_bundle(
        tmp_path / "b", ["/usr/bin/true"], mounts=[Bind(source, "/opt/data")], netns_path=tmp_path, stop_signal="SIGINT"
    )
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["user"] == {"uid": 1000, "gid": 1000}
    assert config["process"]["noNewPrivileges"] is True and config["process"]["terminal"] is False
    assert config["root"] == {"path": "rootfs", "readonly": True}
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts["/usr"]["source"] == "/usr" and "ro" in mounts["/usr"]["options"]
    assert mounts["/opt/data"]["source"] == str(source) and "ro" in mounts["/opt/data"]["options"]
    assert mounts["/tmp"]["type"] == "tmpfs"
    assert {"type": "network", "path": str(tmp_path)} in config["linux"]["namespaces"]
    rootfs = bundle / "rootfs"
    assert os.readlink(rootfs / "lib64") == "usr/lib64" and (rootfs / "opt/data").is_dir()
    assert "nim:x:1000:1000:" in (rootfs / "etc/passwd").read_text()
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777  # runc copies it onto the tmpfs
    assert stop_signal(bundle) == signal.SIGINT


def test_bundle_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        make_bundle(tmp_path / "b", ["x"], mounts=[(tmp_path / "missing", "/m")])
    with pytest.raises(InputError, match="empty"):
        make_bundle(tmp_path / "b", [])
    with pytest.raises(InputError, match="not an OCI bundle"):
        check_bundle(tmp_path)
    with pytest.raises(InputError, match="invalid container id"):
        runc.check_container_id("a/b")


def test_mininim_bundle_defaults_to_sigterm(tmp_path):
    bundle = mininim_bundle(tmp_path / "nim", port=8123)
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/usr/bin/python3", "-u", "/opt/nim/server.py"]
    assert "NIM_SERVER_PORT=8123" in config["process"]["env"]
    assert (bundle / "model" / "model.npz").is_file() and (bundle / "server.py").is_file()
    assert stop_signal(bundle) == signal.SIGTERM
