// Package buildinfo names the build of a Regent binary: the version the
// link stamped (make build: -ldflags "-X main.version=$(git describe)"), or,
// for a plain `go build` or `go install`, what the Go toolchain recorded in
// the binary (the module's version, the VCS revision and whether the tree
// was modified).
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Unstamped is the version of a binary linked without -X main.version.
const Unstamped = "dev"

// Version returns stamped when the link set it, and otherwise the version
// the toolchain recorded: the module's version when it is a release
// ("v1.2.0"), or "dev+" and the first 12 digits of the VCS revision, with
// "-dirty" when the tree had changes ("dev+1a2b3c4d5e6f-dirty"); "dev"
// when nothing was recorded (go run, go test).
func Version(stamped string) string {
	if stamped != "" && stamped != Unstamped {
		return stamped
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Unstamped
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	return fromBuild(bi.Main.Version, settings)
}

// fromBuild is Version's choice among what the toolchain recorded.
func fromBuild(module string, settings map[string]string) string {
	if module != "" && module != "(devel)" && !strings.Contains(module, "+dirty") {
		return module
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		return Unstamped
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := Unstamped + "+" + rev
	if settings["vcs.modified"] == "true" {
		v += "-dirty"
	}
	return v
}
