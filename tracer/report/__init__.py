"""`tracer report`: one self-contained page a reviewer reads and attaches to a change request.

model.py gathers the facts (profile, trace, manifest, ATT&CK, runtime default); html.py and
markdown.py lay them out; chart.py draws the syscall chart as inline SVG; arguments.py puts
argument conditions into words.
"""

# A syscall seen fewer times than this in the whole recording is marked rare: a reviewer should
# ask whether the load test exercised it enough, and a longer recording should confirm it.
RARE_BELOW = 10
