"""Workloads the tracer can run and record out of the box."""
