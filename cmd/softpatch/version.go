package main

import (
	"fmt"
	"runtime"

	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/experiments/runner/device"
	"github.com/softpatch/softpatch/internal/buildinfo"
)

func runVersion(args []string) error {
	fs := newFlags("version", "version", "softpatch version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Printf("softpatch %s\ncommit    %s\ngo        %s %s/%s\nblas      %s\nthreads   %d\ngpu       %s\n",
		buildinfo.Version, buildinfo.Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH, compute.BLASInfo(), compute.Threads(), device.Info())
	return nil
}
