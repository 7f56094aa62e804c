"""`python -m tracer`: the same command line as the installed `tracer`."""

import sys

from tracer.cli import main

sys.exit(main())
