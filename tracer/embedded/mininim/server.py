"""mini-NIM: a tiny inference server shaped like an NVIDIA NIM (OpenAI-compatible API).

Runs inside the container on the host's /usr/bin/python3 with stdlib + numpy only (it
must not import `tracer`). The model is read from a read-only volume (NIM_MODEL_DIR,
default /opt/nim/model); scratch goes to the tmpfs at /tmp. SIGTERM stops it with exit 0.

Endpoints: GET /v1/health/live, GET /v1/health/ready (503 until the model is loaded),
GET /v1/models, POST /v1/completions.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

MODEL_DIR = Path(os.environ.get("NIM_MODEL_DIR", "/opt/nim/model"))
SCRATCH_DIR = Path(os.environ.get("NIM_SCRATCH_DIR", "/tmp/mininim"))
HOST = os.environ.get("NIM_SERVER_HOST", "127.0.0.1")
PORT = int(os.environ.get("NIM_SERVER_PORT", "8000"))
DEFAULT_MAX_TOKENS = 16


class Model:
    """Character-level next-token model: embedding -> 2-layer MLP + bigram table."""

    def __init__(self, model_dir: Path):
        self.config = json.loads((model_dir / "config.json").read_text())
        with np.load(model_dir / "model.npz", allow_pickle=False) as arrays:
            self.weights = {name: arrays[name] for name in arrays.files}
        self.name = self.config["model_name"]
        self.vocab = self.config["vocab"]
        self.context = int(self.config["context"])
        self.max_tokens_limit = int(self.config["max_tokens_limit"])
        self.index = {ch: i for i, ch in enumerate(self.vocab)}

    def encode(self, text: str) -> list[int]:
        space = self.index[" "]
        return [self.index.get(ch, space) for ch in text.lower()]

    def next_token_logits(self, tokens: list[int]) -> np.ndarray:
        w = self.weights
        window = ([0] * self.context + tokens)[-self.context :]
        hidden = np.tanh(w["embed"][window].reshape(-1) @ w["w1"] + w["b1"])
        return hidden @ w["w2"] + w["b2"] + w["bigram"][window[-1]]

    def complete(self, prompt: str, max_tokens: int, temperature: float, seed: int) -> tuple[str, int]:
        """Generate `max_tokens` characters after `prompt`; return (text, prompt_tokens)."""
        tokens = self.encode(prompt)
        prompt_tokens = len(tokens)
        rng = np.random.default_rng(seed)
        for _ in range(max_tokens):
            logits = self.next_token_logits(tokens)
            tokens.append(sample(logits, temperature, rng))
        return "".join(self.vocab[t] for t in tokens[prompt_tokens:]), prompt_tokens


def sample(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    scaled = (logits - logits.max()) / temperature
    probs = np.exp(scaled)
    return int(rng.choice(len(probs), p=probs / probs.sum()))


class RequestLog:
    """Appends one line per completion to a scratch file on the /tmp tmpfs."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "requests.log"
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        with self.lock, self.path.open("a") as handle:
            handle.write(line + "\n")


class BadRequest(Exception):
    """A client error, answered with HTTP 400 in the OpenAI error shape."""


def parse_completion_request(body: dict, model: Model) -> tuple[str, int, float]:
    """Validate a /v1/completions body; return (prompt, max_tokens, temperature)."""
    if body.get("model", model.name) != model.name:
        raise BadRequest(f"model {body.get('model')!r} not found; serving {model.name!r}")
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or not 0 <= max_tokens <= model.max_tokens_limit:
        raise BadRequest(f"max_tokens must be an integer in 0..{model.max_tokens_limit}")
    temperature = body.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise BadRequest("temperature must be a number >= 0")
    return prompt, max_tokens, float(temperature)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a load test reuses its connections
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK
    # would add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: "MiniNimServer"

    def do_GET(self) -> None:
        routes = {
            "/v1/health/live": self.live,
            "/v1/health/ready": self.ready,
            "/v1/models": self.models,
        }
        route = routes.get(self.path.split("?")[0])
        if route is None:
            self.send_error_json(404, f"no route {self.path}")
        else:
            route()

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/v1/completions":
            self.send_error_json(404, f"no route {self.path}")
            return
        self.completions()

    def live(self) -> None:
        self.send_json(200, {"object": "health.response", "message": "live"})

    def ready(self) -> None:
        if self.server.model is None:
            self.send_json(503, {"object": "health.response", "message": "loading"})
        else:
            self.send_json(200, {"object": "health.response", "message": "ready"})

    def models(self) -> None:
        model = self.require_model()
        if model:
            card = {"id": model.name, "object": "model", "created": self.server.started, "owned_by": "mininim"}
            self.send_json(200, {"object": "list", "data": [card]})

    def completions(self) -> None:
        body = self.read_json_body()
        model = self.require_model()
        if body is None or model is None:
            return
        try:
            prompt, max_tokens, temperature = parse_completion_request(body, model)
        except BadRequest as err:
            self.send_error_json(400, str(err))
            return
        seed = body.get("seed") if isinstance(body.get("seed"), int) else None
        text, prompt_tokens = model.complete(prompt, max_tokens, temperature, seed)
        self.server.request_log.write(f"{time.time():.3f} prompt={prompt_tokens} completion={max_tokens}")
        self.send_json(
            200,
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model.name,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": max_tokens,
                    "total_tokens": prompt_tokens + max_tokens,
                },
            },
        )

    def require_model(self) -> Model | None:
        if self.server.model is None:
            self.send_error_json(503, "model is loading")
        return self.server.model

    def read_json_body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send_error_json(400, "body must be a JSON object")
            return None
        return body

    def send_error_json(self, status: int, message: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self.send_json(status, {"error": {"message": message, "type": kind, "code": status}})

    def send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        pass  # one stderr line per request would dominate a load test; see requests.log


class MiniNimServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops SYNs (1 s retry) when many clients connect at once

    def __init__(self, address: tuple[str, int]):
        super().__init__(address, Handler)
        self.model: Model | None = None
        self.request_log = RequestLog(SCRATCH_DIR)
        self.started = int(time.time())
        self.load_failed = False

    def load_model(self) -> None:
        started = time.monotonic()
        try:
            self.model = Model(MODEL_DIR)
        except Exception as err:  # noqa: BLE001 (a NIM whose model cannot load exits instead of staying unready)
            print(f"mininim: cannot load model from {MODEL_DIR}: {err!r}", file=sys.stderr, flush=True)
            self.load_failed = True
            self.shutdown()
            return
        print(
            f"mininim: loaded {self.model.name} from {MODEL_DIR} in {time.monotonic() - started:.3f}s",
            file=sys.stderr,
            flush=True,
        )


def stop_on_signals(server: MiniNimServer) -> None:
    """SIGTERM/SIGINT stop serve_forever; shutdown() must run off the serving thread."""

    def handle(signum, _frame) -> None:
        print(f"mininim: {signal.Signals(signum).name}, shutting down", file=sys.stderr, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main() -> int:
    server = MiniNimServer((HOST, PORT))
    stop_on_signals(server)
    print(f"mininim: listening on {HOST}:{PORT} as uid {os.getuid()}", file=sys.stderr, flush=True)
    # Load in the background so /v1/health/ready can answer 503 meanwhile, as a NIM does.
    threading.Thread(target=server.load_model, daemon=True).start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    print("mininim: stopped", file=sys.stderr, flush=True)
    return 1 if server.load_failed else 0


if __name__ == "__main__":
    sys.exit(main())
