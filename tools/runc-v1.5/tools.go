//go:build tools

// Package tools pins runc for the seccomp-tracer tests; see ../README.md.
package tools

import _ "github.com/opencontainers/runc"
