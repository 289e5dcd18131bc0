package runner

import (
	"runtime/debug"

	"github.com/softpatch/softpatch/cuda"
)

// Version is the release of this build.
const Version = "0.1.0-dev"

// commitHash is set by the Makefile (-ldflags "-X
// github.com/softpatch/softpatch/experiments/runner.commitHash=...")
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

// GPUInfo describes GPU 0 as the cuda package finds it, or why there is
// none.
func GPUInfo() string {
	d, err := cuda.Open(0)
	if err != nil {
		return "none: " + err.Error()
	}
	defer d.Close()
	s := "0: " + d.String()
	if d.BLASError != nil {
		s += "; " + d.BLASError.Error()
	}
	return s
}
