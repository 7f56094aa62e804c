"""`tracer load`: the load tester of tracer.loadtest as a typer command.

`python3 scripts/loadtest.py` parses the same options with argparse (standard library only);
both take their defaults from LoadOptions and their help from loadtest.OPTION_HELP.
"""

from __future__ import annotations

import typer

from tracer import loadtest
from tracer.cli.app import FORMAT_OPTION, OutputFormat, app

DEFAULTS = loadtest.LoadOptions()
HELP = loadtest.OPTION_HELP


@app.command("load")
def load(
    url: str = typer.Option(DEFAULTS.url, "--url", metavar="URL", help=HELP["url"]),
    requests: int = typer.Option(DEFAULTS.requests, "--requests", metavar="N", help=HELP["requests"]),
    concurrency: int = typer.Option(DEFAULTS.concurrency, "--concurrency", metavar="N", help=HELP["concurrency"]),
    model: str = typer.Option(None, "--model", metavar="ID", help=HELP["model"]),
    prompt: str = typer.Option(DEFAULTS.prompt, "--prompt", metavar="TEXT", help=HELP["prompt"]),
    max_tokens: int = typer.Option(DEFAULTS.max_tokens, "--max-tokens", metavar="N", help=HELP["max_tokens"]),
    temperature: float = typer.Option(DEFAULTS.temperature, "--temperature", metavar="T", help=HELP["temperature"]),
    ready_timeout: float = typer.Option(
        DEFAULTS.ready_timeout, "--ready-timeout", metavar="S", help=HELP["ready_timeout"]
    ),
    request_timeout: float = typer.Option(
        DEFAULTS.request_timeout, "--request-timeout", metavar="S", help=HELP["request_timeout"]
    ),
    time_limit: float = typer.Option(DEFAULTS.time_limit, "--time-limit", metavar="S", help=HELP["time_limit"]),
    allow_remote: bool = typer.Option(False, "--allow-remote", help=HELP["allow_remote"]),
    netns: str = typer.Option(None, "--netns", metavar="NAME", help=HELP["netns"]),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Load-test an OpenAI-compatible endpoint (a NIM or the mini-NIM).

    Waits for GET /v1/health/ready to answer 200, then sends N POST /v1/completions at
    concurrency C from C threads (one keep-alive connection each) and reports requests/s,
    latency percentiles (p50, p95, p99) and errors by kind. Bounded in count and time;
    loopback only unless --allow-remote. `python3 scripts/loadtest.py` takes the same
    options where only the standard library and numpy are installed.

    Exit status: 0 every request succeeded, 1 any error (or the endpoint never became
    ready), 2 usage error.

    Examples:

    \b
      tracer load --url http://127.0.0.1:8000 --requests 400 --concurrency 8
      tracer load --url http://10.0.0.7:8000 --allow-remote --time-limit 60 -f json
      tracer record --runc-bundle ./bundle --ready-url http://127.0.0.1:8000/v1/health/ready \\
          --load 'tracer load --requests 400' --out nim.trace.json
    """
    options = loadtest.LoadOptions(
        url=url,
        requests=requests,
        concurrency=concurrency,
        model=model,
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=temperature,
        ready_timeout=ready_timeout,
        request_timeout=request_timeout,
        time_limit=time_limit,
        allow_remote=allow_remote,
        netns=netns,
    )
    raise typer.Exit(loadtest.run_and_report(options, fmt.value))
