"""Helpers shared by the tests: paths, the CLI as a user runs it, live-test prerequisites,
the real CRI node's fixtures, and small workloads and inputs that several test modules use.
No test module imports another test module; what two of them share lives here."""
