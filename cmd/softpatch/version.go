package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/softpatch/softpatch/cuda"
	"github.com/softpatch/softpatch/engine/compute"
)

// version is the release of this build.
const version = "0.1.0-dev"

// commitHash is set by the Makefile (-ldflags "-X main.commitHash=...")
// for builds where Go's own VCS stamping is off (GOFLAGS=-buildvcs=false).
var commitHash string

// commit returns the VCS revision the binary was built from, with
// "+dirty" for uncommitted changes, or "unknown".
func commit() string {
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

func runVersion(args []string) error {
	fs := newFlags("version", "version", "softpatch version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Printf("softpatch %s\ncommit    %s\ngo        %s %s/%s\nblas      %s\nthreads   %d\ngpu       %s\n",
		version, commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH, compute.BLASInfo(), compute.Threads(), gpuInfo())
	return nil
}

// gpuInfo describes GPU 0 as the cuda package finds it, or why there is
// none.
func gpuInfo() string {
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
