package runner

import (
	"slices"
	"testing"
)

// TestUniqueStems checks the output names predict gives images: distinct,
// from as few parent folders as needed.
func TestUniqueStems(t *testing.T) {
	got := uniqueStems([]string{"a/crack/000.png", "a/good/000.png", "b/001.jpg"})
	if !slices.Equal(got, []string{"crack_000", "good_000", "b_001"}) {
		t.Errorf("stems %v", got)
	}
	got = uniqueStems([]string{"x/000.png", "x/000.png"})
	if got[0] == got[1] {
		t.Errorf("stems %v", got)
	}
}
