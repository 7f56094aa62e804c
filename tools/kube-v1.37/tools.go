//go:build tools

// Package tools pins Kubernetes v1.37 for the seccomp-tracer tests; see ../README.md.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
