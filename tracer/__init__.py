"""seccomp-tracer: record a container's syscalls and capability checks, emit least-privilege policy."""

__version__ = "0.1.0"
