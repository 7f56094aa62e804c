"""The mini-NIM: a tiny NIM-shaped inference server used as the default traced workload.

`server.py` runs inside the container on the host's /usr/bin/python3 (stdlib + Debian's
numpy only), so it never imports from `tracer`. `model.py` builds its model files.
"""

from pathlib import Path

SERVER_PATH = Path(__file__).with_name("server.py")
