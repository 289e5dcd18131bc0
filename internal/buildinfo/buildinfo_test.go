package buildinfo

import (
	"runtime"
	"testing"
)

// TestBuildInfo checks that the commit is never empty and that the peak
// resident size is read on Linux.
func TestBuildInfo(t *testing.T) {
	if Commit() == "" {
		t.Error("empty commit")
	}
	if runtime.GOOS == "linux" && !(PeakRSSMB() > 0) {
		t.Errorf("peak RSS %v MB", PeakRSSMB())
	}
}
