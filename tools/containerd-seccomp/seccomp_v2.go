//go:build containerd2

// containerd 2.x (go-2.mod, -tags containerd2): the module
// github.com/containerd/containerd/v2. Keep in step with seccomp_v1.go.
package main

import (
	"context"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
)

const module = "github.com/containerd/containerd/v2"

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
