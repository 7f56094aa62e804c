"""The trace: the one file every stage after the recorder reads, live or replayed.

`format`: the versioned file (reading, validating, writing; `data/trace.schema.json`);
`series`: the bounded checkpoint series; `arguments`: the recorded values of the arguments
that decide danger; `summary`: what a trace says, per phase, for `tracer show` and the report.
"""
