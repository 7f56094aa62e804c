// Command containerd-seccomp prints containerd's built-in seccomp profile (its
// RuntimeDefault), as containerd's own contrib/seccomp.DefaultProfile computes it
// for a container with the given bounding capabilities. It is an oracle for
// scripts/gen-runtime-defaults; see ../containerd-seccomp.md.
//
// One source for every pinned containerd version: go-<line>.mod/.sum pin the
// version (go build -modfile=go-<line>.mod), and a build tag picks the file that
// imports containerd, seccomp_v1.go (1.x) or seccomp_v2.go (-tags containerd2).
//
// The architecture is the one this binary was compiled for (DefaultProfile
// switches on runtime.GOARCH), the kernel version the one uname reports.
//
//	containerd-seccomp profile CAP_A,CAP_B   one profile ("" or "-": no capabilities)
//	containerd-seccomp profiles              one profile per stdin line (a cap list), JSON lines
//	containerd-seccomp decompose             the base and the profile for each known capability
//	containerd-seccomp info                  GOARCH, Go, containerd module, known and default caps
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

func profile(caps []string) *specs.LinuxSeccomp {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	return defaultProfile(spec)
}

func parseCaps(arg string) []string {
	caps := []string{}
	for _, c := range strings.Split(strings.TrimSpace(arg), ",") {
		if c = strings.TrimSpace(c); c != "" && c != "-" {
			caps = append(caps, c)
		}
	}
	return caps
}

func moduleInfo() map[string]string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fail(fmt.Errorf("no build info"))
	}
	for _, dep := range info.Deps {
		if dep.Path == module {
			return map[string]string{"path": dep.Path, "version": dep.Version, "sum": dep.Sum}
		}
	}
	fail(fmt.Errorf("%s is not in the build info", module))
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "containerd-seccomp:", err)
	os.Exit(1)
}

func main() {
	out := json.NewEncoder(os.Stdout)
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: %s profile CAPS | profiles | decompose | info", os.Args[0]))
	}
	var err error
	switch os.Args[1] {
	case "profile":
		arg := ""
		if len(os.Args) > 2 {
			arg = os.Args[2]
		}
		err = out.Encode(profile(parseCaps(arg)))
	case "profiles":
		in := bufio.NewScanner(os.Stdin)
		in.Buffer(make([]byte, 1<<20), 1<<20)
		for err == nil && in.Scan() {
			err = out.Encode(profile(parseCaps(in.Text())))
		}
		if err == nil {
			err = in.Err()
		}
	case "decompose":
		each := map[string]*specs.LinuxSeccomp{}
		for _, c := range knownCaps() {
			each[c] = profile([]string{c})
		}
		err = out.Encode(map[string]any{"known": knownCaps(), "base": profile(nil), "caps": each})
	case "info":
		err = out.Encode(map[string]any{
			"goarch":       runtime.GOARCH,
			"go":           runtime.Version(),
			"module":       moduleInfo(),
			"function":     module + "/contrib/seccomp.DefaultProfile",
			"known":        knownCaps(),
			"default_caps": defaultCaps(),
		})
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}
