package detector

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	goreflect "reflect"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/denoise"
	"github.com/softpatch/softpatch/engine/knn"
)

func savedModel(t *testing.T) (*Model, Meta, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 12))
	const nImg, pos, dim = 6, 16, 24
	m, err := Fit(Config{Coreset: 0.25, Threshold: 0.15, Discriminator: denoise.LOF, LOFK: 5, SoftWeight: true, Seed: 3},
		randFeats(r, nImg*pos*dim), nImg, pos, dim)
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{
		Backbone: backbone.Identity{Arch: "wide_resnet50_2", RandomInit: true, Seed: 0, BNPass: "published"},
		Layers:   []string{"layer2", "layer3"}, Resize: 72, ImageSize: 64, ResizeMode: "shorter", GridH: 4, GridW: 4,
		Method: "softpatch-lof", Created: "2025-01-01T00:00:00Z", SoftpatchVersion: "test",
	}
	var buf bytes.Buffer
	if err := m.Save(&buf, meta); err != nil {
		t.Fatal(err)
	}
	return m, meta, buf.Bytes()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m, meta, b := savedModel(t)
	got, gotMeta, err := LoadModel(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Bank, m.Bank) || !slices.Equal(got.Weights, m.Weights) || !slices.Equal(got.Indices, m.Indices) {
		t.Error("bank, weights or indices differ after loading")
	}
	if got.Config != m.Config || got.N != m.N || got.D != m.D || got.CoresetSeed != m.CoresetSeed ||
		got.DiscriminatorSeed != m.DiscriminatorSeed || got.ScoreThreshold != m.ScoreThreshold || got.Excluded != m.Excluded {
		t.Errorf("fields differ: got %+v %d %d, want %+v %d %d", got.Config, got.N, got.D, m.Config, m.N, m.D)
	}
	if !goreflect.DeepEqual(gotMeta, meta) {
		t.Errorf("meta %+v, want %+v", gotMeta, meta)
	}
	sameScores(t, m, got, 13)

	// Without soft weights, and through the file functions.
	m.Weights = nil
	path := filepath.Join(t.TempDir(), "m.model")
	if err := m.SaveFile(path, meta); err != nil {
		t.Fatal(err)
	}
	got, _, err = LoadModelFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Weights != nil || !slices.Equal(got.Bank, m.Bank) {
		t.Error("file round trip without weights differs")
	}
	if _, _, err := LoadModelFile(filepath.Join(t.TempDir(), "none.model")); err == nil || !strings.Contains(err.Error(), "none.model") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	_, _, b := savedModel(t)
	bad := func(name string, data []byte, want string) {
		t.Helper()
		m, _, err := LoadModel(bytes.NewReader(data))
		if err == nil || m != nil {
			t.Errorf("%s: accepted", name)
			return
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not say %q", name, err, want)
		}
	}
	bad("empty", nil, "bad magic")
	bad("magic", append([]byte("NOT-A-MODEL-FILE"), b[16:]...), "bad magic")
	v := slices.Clone(b)
	binary.LittleEndian.PutUint32(v[16:], 99)
	bad("version", v, "version 99")
	h := slices.Clone(b)
	binary.LittleEndian.PutUint32(h[20:], 1<<30)
	bad("header length", h, "header length")
	for _, cut := range []int{18, 30, len(b) / 2, len(b) - 1} {
		bad("truncated", b[:cut], "truncated")
	}
	bad("trailing", append(slices.Clone(b), 0), "after the indices")
	hl := int(binary.LittleEndian.Uint32(b[20:]))
	j := slices.Clone(b)
	copy(j[24:24+hl], bytes.Repeat([]byte{'x'}, hl))
	bad("header json", j, "header")
	// A header claiming a huge bank fails as truncated without allocating it.
	var fh fileHeader
	if err := json.Unmarshal(b[24:24+hl], &fh); err != nil {
		t.Fatal(err)
	}
	fh.N = 1 << 24
	huge, _ := json.Marshal(fh)
	big := append(append(slices.Clone(b[:20]), make([]byte, 4)...), huge...)
	binary.LittleEndian.PutUint32(big[20:], uint32(len(huge)))
	big = append(big, b[24+hl:]...)
	bad("huge", big, "truncated")
	// Random corruption never panics.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		c := slices.Clone(b[:min(len(b), 24+hl+64)])
		c[r.IntN(len(c))] = byte(r.IntN(256))
		LoadModel(bytes.NewReader(c))
	}
}

// A model whose search prunes stores its principal coordinates (format
// version 2) and scores the same after loading; version 1 files (without
// them) still load, and a corrupt principal section is refused.
func TestSavePrincipal(t *testing.T) {
	m, meta, v1 := savedModel(t)
	m.Config.Search = knn.Pruned
	if err := m.PrepareSearch(); err != nil {
		t.Fatal(err)
	}
	if m.Principal == nil {
		t.Fatal("no principal coordinates after PrepareSearch in mode exact")
	}
	var buf bytes.Buffer
	if err := m.Save(&buf, meta); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	got, _, err := LoadModel(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !goreflect.DeepEqual(got.Principal, m.Principal) || got.Config.Search != knn.Pruned {
		t.Fatal("principal coordinates or search mode differ after loading")
	}
	sameScores(t, m, got, 15)
	if s, st := got.SearchStats(); s != "exact" || st.Pairs != 3*16*int64(m.N) {
		t.Errorf("search stats %s %+v", s, st)
	}
	old := slices.Clone(v1)
	binary.LittleEndian.PutUint32(old[16:], 1)
	if _, _, err := LoadModel(bytes.NewReader(old)); err != nil {
		t.Errorf("version 1 file: %v", err)
	}
	p := m.Principal
	tail := 4*(p.N*p.P+2*p.N) + 8*p.D*p.P
	c := slices.Clone(b)
	c[len(c)-tail+8*3+7] ^= 0x40 // a basis value's exponent
	if _, _, err := LoadModel(bytes.NewReader(c)); err == nil || !strings.Contains(err.Error(), "principal") {
		t.Errorf("corrupt basis: %v", err)
	}
	if _, _, err := LoadModel(bytes.NewReader(b[:len(b)-5])); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated principal coordinates: %v", err)
	}
}

// sameScores fails unless models a and b give the same scores to seeded
// random test features (3 images of 16 positions).
func sameScores(t *testing.T, a, b *Model, seed uint64) {
	t.Helper()
	test := randFeats(rand.New(rand.NewPCG(seed, seed+1)), 3*16*a.D)
	want, have := make([]float32, 3*16), make([]float32, 3*16)
	if err := a.Score(want, test, 3, 16); err != nil {
		t.Fatal(err)
	}
	if err := b.Score(have, test, 3, 16); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(want, have) {
		t.Error("loaded model scores differently")
	}
}
