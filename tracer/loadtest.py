"""Load-test an OpenAI-compatible completions endpoint (a real NIM or the mini-NIM).

Waits for GET /v1/health/ready to answer 200, then sends N POST /v1/completions at
concurrency C from C threads (one keep-alive connection each) and reports requests/s,
latency percentiles and errors. Bounded in count and time, and loopback-only unless
--allow-remote: our CI machines may send traffic only to loopback addresses.

Standard library + numpy only (pyroute2 just for --netns), so `python3
scripts/loadtest.py` works with Debian's python3 (argparse, `main`); `tracer load` is a
typer command with the same options, defaults and help (`OPTION_HELP`), and both run
`run_and_report`. Exit status: 0 all requests succeeded, 1 any error, 2 usage error.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

import numpy as np

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
MAX_REQUESTS, MAX_CONCURRENCY, MAX_TIME_LIMIT_S = 1_000_000, 256, 3600.0
READY_POLL_S, READY_REQUEST_TIMEOUT_S = 0.05, 5.0
DEFAULT_PROMPT = "the server sends the answer"


class UsageError(ValueError):
    """Bad options: exit 2."""


class LoadError(RuntimeError):
    """The endpoint never became usable (not ready, no model): exit 1."""


@dataclass(frozen=True)
class LoadOptions:
    url: str = "http://127.0.0.1:8000"
    requests: int = 100
    concurrency: int = 4
    model: str | None = None  # None: the first model /v1/models lists
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = 16
    temperature: float = 0.7
    ready_timeout: float = 120.0
    request_timeout: float = 60.0
    time_limit: float = 600.0  # requests not sent by then count as errors
    allow_remote: bool = False
    netns: str | None = None


class Endpoint(NamedTuple):
    scheme: str
    host: str
    port: int
    base_path: str

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=timeout)


@dataclass
class LoadReport:
    url: str
    model: str
    requests: int
    concurrency: int
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    duration_s: float = 0.0
    ready_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list, repr=False)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "model": self.model,
            "requests": self.requests,
            "concurrency": self.concurrency,
            "ok": self.ok,
            "errors": self.error_count,
            "error_kinds": dict(self.errors),
            "duration_s": round(self.duration_s, 4),
            "ready_s": round(self.ready_s, 4),
            "requests_per_s": round(self.requests_per_s, 2),
            "latency_ms": latency_summary_ms(self.latencies_s),
        }


def latency_summary_ms(latencies_s: list[float]) -> dict | None:
    """p50/p95/p99/mean/max in milliseconds, None when nothing succeeded."""
    if not latencies_s:
        return None
    ms = np.asarray(latencies_s) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "mean": round(float(ms.mean()), 3),
        "max": round(float(ms.max()), 3),
    }


def run_load(options: LoadOptions) -> LoadReport:
    """Check the options, wait for readiness, send the requests; raise LoadError if never ready."""
    endpoint = parse_endpoint(options)
    check_bounds(options)
    if options.netns is None:
        return load(endpoint, options)
    return call_in_netns(options.netns, load, endpoint, options)


def load(endpoint: Endpoint, options: LoadOptions) -> LoadReport:
    ready_s = wait_ready(endpoint, options.ready_timeout)
    model = options.model or first_model(endpoint, options.request_timeout)
    report = LoadReport(options.url, model, options.requests, options.concurrency, ready_s=ready_s)
    send_completions(endpoint, options, report)
    return report


def parse_endpoint(options: LoadOptions) -> Endpoint:
    parts = urlsplit(options.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {options.url!r}: expected http://HOST[:PORT]")
    if not options.allow_remote and not is_loopback(parts.hostname):
        raise UsageError(
            f"--url {options.url!r}: {parts.hostname} is not a loopback address "
            "(pass --allow-remote to load a remote endpoint)"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise UsageError(f"--url {options.url!r}: {err}") from None
    return Endpoint(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost could resolve anywhere


def check_bounds(options: LoadOptions) -> None:
    bounds = [
        ("--requests", options.requests, 1, MAX_REQUESTS),
        ("--concurrency", options.concurrency, 1, MAX_CONCURRENCY),
        ("--time-limit", options.time_limit, 0.001, MAX_TIME_LIMIT_S),
        ("--ready-timeout", options.ready_timeout, 0, MAX_TIME_LIMIT_S),
        ("--request-timeout", options.request_timeout, 0.001, MAX_TIME_LIMIT_S),
        ("--max-tokens", options.max_tokens, 0, 100_000),
    ]
    for name, value, low, high in bounds:
        if not low <= value <= high:
            raise UsageError(f"{name} {value}: must be between {low} and {high}")


def call_in_netns(name: str, function, *args):
    """function(*args) in a thread inside netns `name`; the threads it starts are inside too."""
    try:
        from tracer.network.netns import call_in  # noqa: PLC0415 (pyroute2 only for --netns: the script runs on the standard library and numpy)
    except ImportError as err:
        raise UsageError(f"--netns needs pyroute2 and the tracer package ({err})") from None
    return call_in(name, function, *args)


def wait_ready(endpoint: Endpoint, timeout: float) -> float:
    """Poll /v1/health/ready until it answers 200; return the seconds that took."""
    started = time.monotonic()
    last = "no answer"
    while True:
        try:
            status, _ = get_json(endpoint, "/v1/health/ready", READY_REQUEST_TIMEOUT_S)
            if status == 200:
                return time.monotonic() - started
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as err:
            last = describe(err)
        if time.monotonic() - started > timeout:
            raise LoadError(f"{endpoint.host}:{endpoint.port} not ready after {timeout:g}s (last: {last})")
        time.sleep(READY_POLL_S)


def first_model(endpoint: Endpoint, timeout: float) -> str:
    try:
        status, body = get_json(endpoint, "/v1/models", timeout)
        return body["data"][0]["id"]
    except (OSError, http.client.HTTPException, ValueError, LookupError, TypeError) as err:
        raise LoadError(f"cannot read a model id from /v1/models: {describe(err)}") from None


def get_json(endpoint: Endpoint, path: str, timeout: float) -> tuple[int, object]:
    connection = endpoint.connect(timeout)
    try:
        connection.request("GET", endpoint.base_path + path)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if response.status == 200 else None
    finally:
        connection.close()


class Dispenser:
    """Hands out request slots until `count` are taken or the deadline passes."""

    def __init__(self, count: int, deadline: float):
        self.remaining, self.deadline, self.lock = count, deadline, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.remaining == 0 or time.monotonic() > self.deadline:
                return False
            self.remaining -= 1
            return True


def send_completions(endpoint: Endpoint, options: LoadOptions, report: LoadReport) -> None:
    """Send options.requests completions from options.concurrency threads into `report`."""
    body = json.dumps(
        {
            "model": report.model,
            "prompt": options.prompt,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
        }
    ).encode()
    started = time.monotonic()
    dispenser = Dispenser(options.requests, started + options.time_limit)
    lock = threading.Lock()

    def worker() -> None:
        connection = endpoint.connect(options.request_timeout)
        try:
            while dispenser.take():
                latency, error = post_completion(connection, endpoint.base_path, body)
                if error:
                    connection.close()  # a fresh connection after any failure
                    connection = endpoint.connect(options.request_timeout)
                with lock:
                    if error:
                        report.errors[error] += 1
                    else:
                        report.ok += 1
                        report.latencies_s.append(latency)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, name=f"load-{i}") for i in range(options.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.duration_s = time.monotonic() - started
    if dispenser.remaining:
        report.errors[f"not sent: time limit {options.time_limit:g}s"] += dispenser.remaining


def post_completion(connection: http.client.HTTPConnection, base_path: str, body: bytes) -> tuple[float, str | None]:
    """One completion request: (latency seconds, None) or (latency, error kind)."""
    started = time.monotonic()
    try:
        connection.request(
            "POST", base_path + "/v1/completions", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as err:
        return time.monotonic() - started, describe(err)
    latency = time.monotonic() - started
    if response.status != 200:
        return latency, f"HTTP {response.status}"
    try:
        text = json.loads(data)["choices"][0]["text"]
    except (ValueError, LookupError, TypeError):
        return latency, "bad response: no choices[0].text"
    return latency, None if isinstance(text, str) else "bad response: text is not a string"


def describe(err: BaseException) -> str:
    return type(err).__name__ if not str(err) else f"{type(err).__name__}: {err}"


def format_text(report: LoadReport) -> str:
    latency = latency_summary_ms(report.latencies_s)
    lines = [
        f"endpoint     {report.url} (model {report.model}), ready after {report.ready_s:.3f}s",
        f"requests     {report.ok}/{report.requests} ok at concurrency {report.concurrency} "
        f"in {report.duration_s:.3f}s: {report.requests_per_s:.1f} requests/s",
        "latency ms   "
        + (
            "no successful request"
            if latency is None
            else f"p50 {latency['p50']:.2f}  p95 {latency['p95']:.2f}  p99 {latency['p99']:.2f}  "
            f"max {latency['max']:.2f}"
        ),
        f"errors       {report.error_count}",
    ]
    lines += [f"  {count:>8}  {kind}" for kind, count in report.errors.most_common()]
    return "\n".join(lines)


# One help text per option, for both parsers: `tracer load` (typer) and this module's own
# argparse parser, which `python3 scripts/loadtest.py` uses where only the standard library is.
OPTION_HELP = {
    "url": "Base URL of the endpoint; a loopback address unless --allow-remote.",
    "requests": "Number of completions to send.",
    "concurrency": "Parallel connections, one thread each.",
    "model": "Model id; default: the first one /v1/models lists.",
    "prompt": "Prompt of every completion.",
    "max_tokens": "max_tokens of every completion.",
    "temperature": "temperature of every completion.",
    "ready_timeout": "Seconds to wait for /v1/health/ready to answer 200.",
    "request_timeout": "Seconds each request may take.",
    "time_limit": "Stop sending after this many seconds; requests not sent by then count as errors.",
    "allow_remote": "Allow a host that is not a loopback address.",
    "netns": "Run inside this named network namespace (ip netns; needs root).",
    "format": "text for people, json for programs (one document on stdout).",
}
DESCRIPTION = (
    "Load-test an OpenAI-compatible completions endpoint (NIM or mini-NIM): requests/s, latency "
    "percentiles, errors. Exit status: 0 no errors, 1 any error, 2 usage error."
)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser of `python3 scripts/loadtest.py` (standard library only)."""
    defaults = LoadOptions()
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)

    def option(name: str, **kwargs) -> None:
        default = getattr(defaults, name, None)
        shown = "" if default is None or isinstance(default, bool) else f" (default: {default})"
        parser.add_argument("--" + name.replace("_", "-"), help=OPTION_HELP[name] + shown, **kwargs)

    option("url", default=defaults.url)
    option("requests", type=int, default=defaults.requests)
    option("concurrency", type=int, default=defaults.concurrency)
    option("model", default=None)
    option("prompt", default=defaults.prompt)
    option("max_tokens", type=int, default=defaults.max_tokens)
    option("temperature", type=float, default=defaults.temperature)
    option("ready_timeout", type=float, default=defaults.ready_timeout)
    option("request_timeout", type=float, default=defaults.request_timeout)
    option("time_limit", type=float, default=defaults.time_limit)
    option("allow_remote", action="store_true")
    option("netns", default=None)
    option("format", choices=("text", "json"), default="text")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python3 scripts/loadtest.py ARGS`: parse with argparse, then run_and_report."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # argparse already printed usage or help
        return int(done.code or 0)
    output_format = vars(args).pop("format")
    return run_and_report(LoadOptions(**vars(args)), output_format)


def run_and_report(options: LoadOptions, output_format: str = "text") -> int:
    """Run the load test and print its report; the exit status (0 ok, 1 errors, 2 usage)."""
    try:
        report = run_load(options)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except LoadError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERRORS
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True) if output_format == "json" else format_text(report))
    return EXIT_ERRORS if report.error_count else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
