//go:build tools

// Package tools pins etcd v3.7 for the seccomp-tracer tests; see ../README.md.
package tools

import _ "go.etcd.io/etcd/server/v3"
