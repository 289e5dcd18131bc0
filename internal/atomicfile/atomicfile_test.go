package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/internal/npy"
)

func TestWriteFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.npy")
	boom := errors.New("boom")
	if err := WriteFile(path, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("error %v, want the writer's own", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed write left %v behind", entries)
	}
	if err := WriteFile(path, func(w io.Writer) error { return npy.WriteFloat32(w, []int{2}, []float32{1, 2}) }); err != nil {
		t.Fatal(err)
	}
	a, err := npy.ReadFile(path)
	if err != nil || a.Len() != 2 || a.F32[1] != 2 {
		t.Fatalf("read back %v, %v", a, err)
	}
}

// TestCheckWritable checks that a writable path passes and leaves nothing
// behind, and that a path in a missing folder fails naming it.
func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	if err := CheckWritable(filepath.Join(dir, "out.json")); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left %v", left)
	}
	bad := filepath.Join(dir, "no", "out.json")
	if err := CheckWritable(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("missing folder: %v", err)
	}
}
