package backbone

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// narrowArch is the network of testdata/golden/gen_model.py: the topology
// and key names of wide_resnet50_2 with 2 stem channels.
var narrowArch = Arch{Name: "narrow_wide_resnet50_2", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 2, BaseWidth: 128, NumClasses: 10}

// tinyArch is the network of tiny_module_prefix.pth, written by
// internal/torchfile/testdata/gen_bad.py.
var tinyArch = Arch{Name: "tiny", Blocks: [4]int{1, 1, 1, 1}, StemWidth: 1, BaseWidth: 64, NumClasses: 2}

var goldenDir = filepath.Join("..", "..", "testdata", "golden")

// readerData holds the torch.save fixtures of internal/torchfile's tests;
// LoadCheckpoint's tests read some of them too.
var readerData = filepath.Join("..", "..", "internal", "torchfile", "testdata")

var (
	goldenZip    = filepath.Join(goldenDir, "narrow_wrn50_2_zip.pth")
	goldenLegacy = filepath.Join(goldenDir, "narrow_wrn50_2_legacy.pth")
)

type goldenManifest struct {
	Files map[string]struct {
		SHA256 string `json:"sha256"`
	} `json:"files"`
	StateDict map[string]struct {
		Shape  []int  `json:"shape"`
		Dtype  string `json:"dtype"`
		SHA256 string `json:"sha256"`
	} `json:"state_dict"`
}

func readManifest(t *testing.T) goldenManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m goldenManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// float32SHA256 hashes data as little-endian float32, as gen_model.py does.
func float32SHA256(data []float32) string {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestGoldenCheckpointsLoad(t *testing.T) {
	m := readManifest(t)
	var maps []map[string]Tensor
	for _, p := range []string{goldenZip, goldenLegacy} {
		got, err := LoadCheckpoint(p, narrowArch)
		if err != nil {
			t.Fatal(err)
		}
		nbt := 0
		for k, rec := range m.StateDict {
			tn, ok := got[k]
			if strings.HasSuffix(k, "num_batches_tracked") {
				nbt++
				if ok {
					t.Errorf("%s: %s should have been dropped", p, k)
				}
				continue
			}
			if !ok {
				t.Errorf("%s: missing %s", p, k)
				continue
			}
			if !slices.Equal(tn.Shape, rec.Shape) || rec.Dtype != "float32" {
				t.Errorf("%s: %s has shape %v, torch saved %v %s", p, k, tn.Shape, rec.Shape, rec.Dtype)
			}
			if h := float32SHA256(tn.Data); h != rec.SHA256 {
				t.Errorf("%s: %s data differs from what torch saved", p, k)
			}
		}
		if len(got) != len(m.StateDict)-nbt {
			t.Errorf("%s: %d entries, want %d", p, len(got), len(m.StateDict)-nbt)
		}
		maps = append(maps, got)
	}
	if len(maps[0]) != len(maps[1]) {
		t.Fatalf("zip has %d entries, legacy %d", len(maps[0]), len(maps[1]))
	}
	for k, a := range maps[0] {
		b := maps[1][k]
		if !slices.Equal(a.Shape, b.Shape) || len(a.Data) != len(b.Data) {
			t.Fatalf("%s: zip %v, legacy %v", k, a.Shape, b.Shape)
		}
		for i := range a.Data {
			if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
				t.Fatalf("%s[%d]: zip %v, legacy %v", k, i, a.Data[i], b.Data[i])
			}
		}
	}
	// The values are not trivially initialised: BatchNorm was randomised.
	if v := maps[0]["layer2.1.bn2.running_var"].Data; v[0] == 1 || v[0] < 0.5 || v[0] > 2 {
		t.Errorf("layer2.1.bn2.running_var[0] = %v, want a value in (0.5, 2)", v[0])
	}
}

func TestReadCheckpointGolden(t *testing.T) {
	for _, p := range []string{goldenZip, goldenLegacy} {
		got, err := ReadCheckpoint(p)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, q := range narrowArch.Params() {
			if !q.Optional {
				want++
			}
		}
		if len(got) != want {
			t.Errorf("%s: %d entries, want %d", p, len(got), want)
		}
		if w := got["conv1.weight"]; !slices.Equal(w.Shape, []int{2, 3, 7, 7}) || len(w.Data) != 294 {
			t.Errorf("%s: conv1.weight %v with %d values", p, w.Shape, len(w.Data))
		}
		if _, err := MatchArch(got); !errors.Is(err, ErrArchMismatch) || !strings.Contains(err.Error(), "closest is") {
			t.Errorf("%s: MatchArch of the narrow net: %v, want a mismatch naming the closest", p, err)
		}
	}
}

func TestHashFile(t *testing.T) {
	m := readManifest(t)
	got, err := HashFile(goldenZip)
	if err != nil {
		t.Fatal(err)
	}
	if want := m.Files["narrow_wrn50_2_zip.pth"].SHA256; got != want {
		t.Errorf("HashFile = %s, manifest %s", got, want)
	}
	if _, err := HashFile(filepath.Join(t.TempDir(), "none.pth")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("HashFile of a missing file: %v", err)
	}
}

// shapesOnly is a state_dict of the right keys and shapes and no data.
func shapesOnly(a Arch) map[string]Tensor {
	m := map[string]Tensor{}
	for _, p := range a.Params() {
		if !p.Optional {
			m[p.Name] = Tensor{Shape: p.Shape}
		}
	}
	return m
}

func TestMatchArch(t *testing.T) {
	for _, a := range Archs {
		got, err := MatchArch(shapesOnly(a))
		if err != nil || got.Name != a.Name {
			t.Errorf("MatchArch(%s shapes) = %s, %v", a.Name, got.Name, err)
		}
	}
	prefixed := map[string]Tensor{}
	for k, v := range shapesOnly(WideResNet101_2) {
		prefixed["module."+k] = v
	}
	if got, err := MatchArch(prefixed); err != nil || got.Name != WideResNet101_2.Name {
		t.Errorf("MatchArch with module. prefix = %q, %v", got.Name, err)
	}
	// With num_batches_tracked entries (optional) it still matches.
	withNBT := shapesOnly(ResNet50)
	withNBT["bn1.num_batches_tracked"] = Tensor{Shape: []int{}, Data: []float32{0}}
	if got, err := MatchArch(withNBT); err != nil || got.Name != "resnet50" {
		t.Errorf("MatchArch with num_batches_tracked = %q, %v", got.Name, err)
	}
	// One changed shape: the error names the closest architecture and the entry.
	bad := shapesOnly(WideResNet50_2)
	bad["layer3.2.conv2.weight"] = Tensor{Shape: []int{512, 512, 1, 1}}
	_, err := MatchArch(bad)
	if !errors.Is(err, ErrArchMismatch) ||
		!strings.Contains(err.Error(), "closest is wide_resnet50_2 with 1 differences") ||
		!strings.Contains(err.Error(), "layer3.2.conv2.weight has shape [512 512 1 1], want [512 512 3 3]") {
		t.Errorf("MatchArch(one wrong shape): %v", err)
	}
}

func TestMatchArchRandomInit(t *testing.T) {
	full := wrn50Random(t)
	if got, err := MatchArch(full); err != nil || got.Name != WideResNet50_2.Name {
		t.Errorf("MatchArch(RandomInit(wide_resnet50_2)) = %q, %v", got.Name, err)
	}
}

func TestLoadCheckpointMismatch(t *testing.T) {
	for _, c := range []struct {
		arch Arch
		want []string
	}{
		{Arch{Name: "n11", Blocks: narrowArch.Blocks, StemWidth: 2, BaseWidth: 128, NumClasses: 11},
			[]string{"fc.weight has shape [10 64], want [11 64]", "fc.bias has shape [10], want [11]"}},
		{Arch{Name: "n3", Blocks: [4]int{3, 4, 6, 2}, StemWidth: 2, BaseWidth: 128, NumClasses: 10},
			[]string{"unexpected key layer4.2.bn1.bias"}},
		{Arch{Name: "n5", Blocks: [4]int{3, 4, 6, 4}, StemWidth: 2, BaseWidth: 128, NumClasses: 10},
			[]string{"missing key layer4.3.conv1.weight"}},
		{WideResNet50_2, []string{"does not match wide_resnet50_2", "conv1.weight has shape [2 3 7 7], want [64 3 7 7]", "more"}},
	} {
		for _, p := range []string{goldenZip, goldenLegacy} {
			_, err := LoadCheckpoint(p, c.arch)
			if !errors.Is(err, ErrArchMismatch) {
				t.Errorf("%s as %s: %v, want ErrArchMismatch", p, c.arch.Name, err)
				continue
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "weights: "+p+": ") {
				t.Errorf("error does not start with weights: FILE: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s as %s: %q lacks %q", p, c.arch.Name, msg, w)
				}
			}
		}
	}
}

func TestLoadCheckpointWrappedAndPrefixed(t *testing.T) {
	p := filepath.Join(readerData, "tiny_module_prefix.pth")
	got, err := LoadCheckpoint(p, tinyArch)
	if err != nil {
		t.Fatal(err)
	}
	if w := got["layer4.0.conv2.weight"]; !slices.Equal(w.Shape, []int{8, 8, 3, 3}) {
		t.Errorf("layer4.0.conv2.weight shape %v", w.Shape)
	}
}

// wantErr checks that err wraps kind and names file and what.
func wantErr(t *testing.T, err error, file string, kind error, what string) {
	t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), what) {
		t.Errorf("%s: error %v, want one wrapping %v that names the file and says %q", file, err, kind, what)
	}
}

// TestLoadCheckpointReadErrors: LoadCheckpoint passes internal/torchfile's
// errors on (whose tests cover every bad fixture), and they match
// backbone's names for its sentinels.
func TestLoadCheckpointReadErrors(t *testing.T) {
	for file, kind := range map[string]error{
		"evil_system.pth": ErrUnsafePickle,
		"int32.pth":       ErrUnsupportedDtype,
		"not_tensor.pth":  ErrNotCheckpoint,
	} {
		p := filepath.Join(readerData, file)
		_, err := LoadCheckpoint(p, narrowArch)
		wantErr(t, err, p, kind, "weights: ")
	}
	missing := filepath.Join(t.TempDir(), "missing.pth")
	_, err := LoadCheckpoint(missing, narrowArch)
	wantErr(t, err, missing, fs.ErrNotExist, "not found")
}

func TestFindWeights(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	torchHome := filepath.Join(root, "torch")
	xdg := filepath.Join(root, "xdg")
	t.Setenv("HOME", home)
	t.Setenv("SOFTPATCH_WEIGHTS", "")
	t.Setenv("TORCH_HOME", torchHome)
	t.Setenv("XDG_CACHE_HOME", xdg)
	touch := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Nothing anywhere: ErrNoWeights, listing the places searched.
	_, err := FindWeights("", WideResNet50_2)
	if !errors.Is(err, ErrNoWeights) {
		t.Fatalf("empty search: %v, want ErrNoWeights", err)
	}
	for _, w := range []string{"$SOFTPATCH_WEIGHTS (unset)", filepath.Join(torchHome, "hub", "checkpoints"),
		filepath.Join(xdg, "torch", "hub", "checkpoints"), filepath.Join(home, ".cache", "torch", "hub", "checkpoints"),
		"wide_resnet50_2-95faca4d.pth"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("ErrNoWeights text %q lacks %q", err, w)
		}
	}

	// The home cache, then XDG, then TORCH_HOME take precedence in reverse.
	h := touch(filepath.Join(home, ".cache", "torch", "hub", "checkpoints", "wide_resnet50_2-9ba9bcbe.pth"))
	if got, err := FindWeights("", WideResNet50_2); err != nil || got != h {
		t.Errorf("home cache: %q, %v; want %q", got, err, h)
	}
	x := touch(filepath.Join(xdg, "torch", "hub", "checkpoints", "wide_resnet50_2-9ba9bcbe.pth"))
	if got, err := FindWeights("", WideResNet50_2); err != nil || got != x {
		t.Errorf("XDG cache: %q, %v; want %q", got, err, x)
	}
	v2 := touch(filepath.Join(torchHome, "hub", "checkpoints", "wide_resnet50_2-9ba9bcbe.pth"))
	if got, err := FindWeights("", WideResNet50_2); err != nil || got != v2 {
		t.Errorf("TORCH_HOME: %q, %v; want %q", got, err, v2)
	}
	// The V1 weights (PatchCore's) are preferred over V2 in the same folder.
	v1 := touch(filepath.Join(torchHome, "hub", "checkpoints", "wide_resnet50_2-95faca4d.pth"))
	if got, err := FindWeights("", WideResNet50_2); err != nil || got != v1 {
		t.Errorf("V1 preference: %q, %v; want %q", got, err, v1)
	}
	// Other architectures' names are not confused.
	if _, err := FindWeights("", ResNet50); !errors.Is(err, ErrNoWeights) {
		t.Errorf("resnet50 with only wide_resnet50_2 files: %v", err)
	}
	r50 := touch(filepath.Join(torchHome, "hub", "checkpoints", "resnet50-19c8e357.pth"))
	if got, err := FindWeights("", ResNet50); err != nil || got != r50 {
		t.Errorf("resnet50: %q, %v", got, err)
	}
	// An unnamed architecture is found only through an explicit path.
	if _, err := FindWeights("", narrowArch); !errors.Is(err, ErrNoWeights) {
		t.Errorf("narrow arch: %v, want ErrNoWeights", err)
	}

	// $SOFTPATCH_WEIGHTS: a file, or a folder with torchvision names.
	env := touch(filepath.Join(root, "env", "mine.pth"))
	t.Setenv("SOFTPATCH_WEIGHTS", env)
	if got, err := FindWeights("", WideResNet50_2); err != nil || got != env {
		t.Errorf("$SOFTPATCH_WEIGHTS file: %q, %v", got, err)
	}
	envDir := filepath.Join(root, "envdir")
	ed := touch(filepath.Join(envDir, "wide_resnet50_2-95faca4d.pth"))
	t.Setenv("SOFTPATCH_WEIGHTS", envDir)
	if got, err := FindWeights("", WideResNet50_2); err != nil || got != ed {
		t.Errorf("$SOFTPATCH_WEIGHTS folder: %q, %v", got, err)
	}
	t.Setenv("SOFTPATCH_WEIGHTS", filepath.Join(root, "nope.pth"))
	if _, err := FindWeights("", WideResNet50_2); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNoWeights) {
		t.Errorf("$SOFTPATCH_WEIGHTS missing: %v, want fs.ErrNotExist", err)
	}

	// An explicit path wins and must exist.
	if got, err := FindWeights(goldenZip, narrowArch); err != nil || got != goldenZip {
		t.Errorf("explicit: %q, %v", got, err)
	}
	missing := filepath.Join(root, "missing.pth")
	_, err = FindWeights(missing, WideResNet50_2)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNoWeights) {
		t.Errorf("explicit missing: %v, want fs.ErrNotExist and not ErrNoWeights", err)
	}
	wantErr(t, err, missing, fs.ErrNotExist, "not found")
}
