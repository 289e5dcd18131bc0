// Package buildinfo says which build is running (Version, Commit) and
// what it used (PeakRSSMB), for results and benchmarks.
package buildinfo

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Version is the release of this build.
const Version = "0.1.0-dev"

// commitHash is set by the Makefile (-ldflags "-X
// github.com/softpatch/softpatch/internal/buildinfo.commitHash=...")
// for builds where Go's own VCS stamping is off (GOFLAGS=-buildvcs=false).
var commitHash string

// Commit returns the VCS revision the binary was built from, with
// "+dirty" for uncommitted changes, or "unknown".
func Commit() string {
	if commitHash != "" {
		return commitHash
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	return rev + dirty
}

// PeakRSSMB reads the process's peak resident set size (VmHWM) on Linux, 0 elsewhere.
func PeakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
