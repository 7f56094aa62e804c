#!/usr/bin/env python3
"""Load-test an OpenAI-compatible endpoint: the same program as `tracer load`.

Usage: python3 scripts/loadtest.py --url http://127.0.0.1:8000 --requests 200 --concurrency 8
Needs only the standard library and numpy (pyroute2 for --netns); see tracer/loadtest.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracer.loadtest import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
