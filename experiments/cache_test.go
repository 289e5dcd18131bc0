package experiments

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestFeatureCache(t *testing.T) {
	c := &FeatureCache{Dir: t.TempDir()}
	f := []float32{1, 2, 3, 4, 5, 6}
	if _, _, _, ok := c.Get("abcdef"); ok {
		t.Fatal("hit in an empty cache")
	}
	if err := c.Put("abcdef", f, 2, 3); err != nil {
		t.Fatal(err)
	}
	got, pos, dim, ok := c.Get("abcdef")
	if !ok || pos != 2 || dim != 3 || !slices.Equal(got, f) {
		t.Fatalf("got %v %d %d %v", got, pos, dim, ok)
	}
	// Corruption: a flipped payload byte, a cut file, a wrong magic are all
	// misses, and a Put repairs the entry.
	p := c.path("abcdef")
	b, _ := os.ReadFile(p)
	for _, damage := range [][]byte{
		append(append([]byte{}, b[:len(b)-1]...), b[len(b)-1]^1),
		b[:len(b)-3],
		append([]byte("XXXXXXXX"), b[8:]...),
	} {
		os.WriteFile(p, damage, 0o644)
		if _, _, _, ok := c.Get("abcdef"); ok {
			t.Fatal("damaged entry returned")
		}
	}
	if err := c.Put("abcdef", f, 2, 3); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := c.Get("abcdef"); !ok {
		t.Fatal("entry not repaired")
	}
	if err := c.Put("ab", f, 2, 3); err == nil {
		t.Error("short key accepted")
	}
	if err := c.Put("abcdeg", f, 4, 3); err == nil {
		t.Error("wrong shape accepted")
	}

	// The size bound removes the least recently used entries.
	size := int64(len(b))
	os.Remove(c.path("abcdef"))
	c.MaxBytes = 2 * size
	old := time.Now().Add(-time.Hour)
	for i, k := range []string{"k1aaaa", "k2bbbb", "k3cccc"} {
		if err := c.Put(k, f, 2, 3); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(c.path(k), old.Add(time.Duration(i)*time.Minute), old.Add(time.Duration(i)*time.Minute))
	}
	c.Get("k1aaaa") // used now: the newest
	stale := filepath.Join(c.Dir, "k1", ".tmp-123")
	os.WriteFile(stale, []byte("cut"), 0o644)
	os.Chtimes(stale, old, old)
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(c.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, filepath.Base(p))
		}
		return nil
	})
	slices.Sort(left)
	if !slices.Equal(left, []string{"k1aaaa.f32", "k3cccc.f32"}) {
		t.Errorf("after trimming to 2 entries: %v", left)
	}
}

// TestPCA2 checks the leading directions on points spread along two known
// orthogonal axes (variance 100 and 4) with small noise elsewhere.
func TestPCA2(t *testing.T) {
	const n, d = 500, 6
	x := make([]float32, n*d)
	for i := 0; i < n; i++ {
		a, b := float32(i%50-25)/2.5, float32(i%7-3)/1.5
		x[i*d+1] = a + 10 // axis 1: large spread
		x[i*d+4] = b      // axis 4: small spread
		x[i*d+2] = float32(i%3) * 0.01
	}
	xs, ys := PCA2(x, n, d)
	corr := func(u []float32, col int) float64 {
		var su, sv, suu, svv, suv float64
		for i := 0; i < n; i++ {
			p, q := float64(u[i]), float64(x[i*d+col])
			su, sv, suu, svv, suv = su+p, sv+q, suu+p*p, svv+q*q, suv+p*q
		}
		cov := suv/n - su/n*sv/n
		return cov / math.Sqrt((suu/n-su*su/n/n)*(svv/n-sv*sv/n/n))
	}
	if c := math.Abs(corr(xs, 1)); c < 0.999 {
		t.Errorf("first coordinate correlates %v with the large axis", c)
	}
	if c := math.Abs(corr(ys, 4)); c < 0.99 {
		t.Errorf("second coordinate correlates %v with the small axis", c)
	}
}
