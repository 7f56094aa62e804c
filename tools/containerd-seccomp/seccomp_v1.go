//go:build !containerd2

// containerd 1.x (go-1.6.20.mod, go-1.6.mod, go-1.7.mod): the module
// github.com/containerd/containerd. Keep in step with seccomp_v2.go.
package main

import (
	"context"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/contrib/seccomp"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/pkg/cap"
	"github.com/opencontainers/runtime-spec/specs-go"
)

const module = "github.com/containerd/containerd"

func defaultProfile(spec *specs.Spec) *specs.LinuxSeccomp { return seccomp.DefaultProfile(spec) }

func knownCaps() []string { return cap.Known() }

// defaultCaps: the bounding set of containerd's default spec (oci.GenerateSpec).
func defaultCaps() []string {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "oracle"})
	if err != nil {
		fail(err)
	}
	return s.Process.Capabilities.Bounding
}
