package backbone

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// narrowArch is the network of testdata/golden/gen_model.py: the topology
// and key names of wide_resnet50_2 with 2 stem channels.
var narrowArch = Arch{Name: "narrow_wide_resnet50_2", Blocks: [4]int{3, 4, 6, 3}, StemWidth: 2, BaseWidth: 128, NumClasses: 10}

// tinyArch is the network of testdata/gen_bad.py's tiny_module_prefix.pth.
var tinyArch = Arch{Name: "tiny", Blocks: [4]int{1, 1, 1, 1}, StemWidth: 1, BaseWidth: 64, NumClasses: 2}

var goldenDir = filepath.Join("..", "..", "testdata", "golden")

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
	p := filepath.Join("testdata", "tiny_module_prefix.pth")
	raw, err := ReadCheckpoint(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["module.conv1.weight"]; !ok {
		t.Errorf("ReadCheckpoint should keep the module. prefix; keys include none")
	}
	got, err := LoadCheckpoint(p, tinyArch)
	if err != nil {
		t.Fatal(err)
	}
	if w := got["layer4.0.conv2.weight"]; !slices.Equal(w.Shape, []int{8, 8, 3, 3}) {
		t.Errorf("layer4.0.conv2.weight shape %v", w.Shape)
	}
	m, err := ReadCheckpoint(filepath.Join("testdata", "model_key_legacy.pth"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || !slices.Equal(m["conv1.weight"].Shape, []int{1, 3, 7, 7}) || !slices.Equal(m["bn1.bias"].Shape, []int{1}) {
		t.Errorf("model-wrapped checkpoint: %d entries %v", len(m), m)
	}
}

func TestReadCheckpointDtypesAndViews(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "dtypes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]struct {
		Shape  []int     `json:"shape"`
		Values []float64 `json:"values"`
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"dtypes.pth", "dtypes_legacy.pth"} {
		got, err := ReadCheckpoint(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d entries, want %d (num_batches_tracked dropped)", f, len(got), len(want))
		}
		for k, w := range want {
			g, ok := got[k]
			if !ok {
				t.Errorf("%s: missing %s", f, k)
				continue
			}
			if !slices.Equal(g.Shape, w.Shape) || len(g.Data) != len(w.Values) {
				t.Errorf("%s: %s shape %v (%d values), want %v", f, k, g.Shape, len(g.Data), w.Shape)
				continue
			}
			for i, v := range w.Values {
				if g.Data[i] != float32(v) {
					t.Errorf("%s: %s[%d] = %v, want %v", f, k, i, g.Data[i], float32(v))
				}
			}
		}
	}
}

// errCase checks that err names the file, wraps kind and says what.
func errCase(t *testing.T, err error, file string, kind error, what ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", file)
		return
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("%s: %v does not wrap %v", file, err, kind)
	}
	if !strings.HasPrefix(err.Error(), "weights: "+file+": ") {
		t.Errorf("%s: error %q does not start with \"weights: FILE: \"", file, err)
	}
	for _, w := range what {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q lacks %q", file, err, w)
		}
	}
}

func TestReadCheckpointBadFixtures(t *testing.T) {
	for _, c := range []struct {
		file string
		kind error
		what []string
	}{
		{"evil_system.pth", ErrUnsafePickle, []string{"refuses pickle global posix.system"}},
		// Protocol 2 writes Python 3's builtins as __builtin__.
		{"evil_eval_legacy.pth", ErrUnsafePickle, []string{"refuses pickle global __builtin__.eval"}},
		{"whole_module.pth", ErrUnsafePickle, []string{"refuses pickle global torch.nn.modules.linear.Linear"}},
		{"int32.pth", ErrUnsupportedDtype, []string{"entry w has unsupported dtype torch.int32"}},
		{"int64_param.pth", ErrUnsupportedDtype, []string{"entry step has unsupported dtype torch.int64"}},
		{"list.pth", ErrNotCheckpoint, []string{"holds a list, not a state_dict"}},
		{"not_tensor.pth", ErrNotCheckpoint, []string{"entry b is a float, not a tensor"}},
	} {
		p := filepath.Join("testdata", c.file)
		_, err := ReadCheckpoint(p)
		errCase(t, err, p, c.kind, c.what...)
		_, err = LoadCheckpoint(p, narrowArch)
		errCase(t, err, p, c.kind, c.what...)
	}
}

func TestReadCheckpointNotACheckpoint(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pth")
	_, err := ReadCheckpoint(missing)
	errCase(t, err, missing, fs.ErrNotExist, "not found")
	_, err = LoadCheckpoint(missing, narrowArch)
	errCase(t, err, missing, fs.ErrNotExist, "not found")

	png, err := os.ReadFile(filepath.Join(goldenDir, "img0_gray_80x80.png"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		what string
	}{
		{"image.pth", png, "PNG"},
		{"notes.pth", []byte("these are not weights\n"), "text"},
		{"empty.pth", nil, "empty file"},
		{"pickle.pth", []byte("\x80\x02]q\x00."), "not a torch checkpoint"},                 // pickle.dumps([], 2)
		{"zip.pth", zipWith(t, "a/b.txt", "hello"), "without exactly one ARCHIVE/data.pkl"}, // a zip, not torch's
		{"garbage.pth", []byte("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}.\x80\x02\xff"), "unknown pickle opcode"},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadCheckpoint(p)
		errCase(t, err, p, ErrNotCheckpoint, "not a torch checkpoint", c.what)
	}
	_, err = ReadCheckpoint(dir)
	errCase(t, err, dir, ErrNotCheckpoint, "directory")
}

// zipWith returns a zip archive holding one file.
func zipWith(t *testing.T, name, body string) []byte {
	t.Helper()
	// A stored zip record, written by hand to keep the test free of
	// archive/zip's writer defaults.
	var b bytes.Buffer
	crc := crc32IEEE([]byte(body))
	le := binary.LittleEndian
	w16 := func(v uint16) { binary.Write(&b, le, v) }
	w32 := func(v uint32) { binary.Write(&b, le, v) }
	b.WriteString("PK\x03\x04")
	w16(20)
	w16(0)
	w16(0)
	w16(0)
	w16(0)
	w32(crc)
	w32(uint32(len(body)))
	w32(uint32(len(body)))
	w16(uint16(len(name)))
	w16(0)
	b.WriteString(name)
	b.WriteString(body)
	cd := b.Len()
	b.WriteString("PK\x01\x02")
	w16(20)
	w16(20)
	w16(0)
	w16(0)
	w16(0)
	w16(0)
	w32(crc)
	w32(uint32(len(body)))
	w32(uint32(len(body)))
	w16(uint16(len(name)))
	w16(0)
	w16(0)
	w16(0)
	w16(0)
	w32(0)
	w32(0)
	b.WriteString(name)
	cdLen := b.Len() - cd
	b.WriteString("PK\x05\x06")
	w16(0)
	w16(0)
	w16(1)
	w16(1)
	w32(uint32(cdLen))
	w32(uint32(cd))
	w16(0)
	return b.Bytes()
}

func crc32IEEE(p []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range p {
		crc ^= uint32(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xedb88320
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func TestReadCheckpointTruncated(t *testing.T) {
	dir := t.TempDir()
	for _, src := range []string{goldenZip, goldenLegacy} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		n := len(data)
		// Cuts inside the magic number, the state_dict pickle, the storage
		// key list, the storage data, and the last byte.
		for _, cut := range []int{3, 20, 200, 2000, 38000, n / 2, n - 1000, n - 1} {
			p := filepath.Join(dir, filepath.Base(src))
			if err := os.WriteFile(p, data[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadCheckpoint(p)
			errCase(t, err, p, ErrTruncated, "truncated")
		}
	}
	// A flipped byte inside a stored record fails the zip's CRC check.
	data, err := os.ReadFile(goldenZip)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("narrow_wrn50_2_zip/data/0"))
	data = append([]byte{}, data...)
	data[i+200] ^= 0x55
	p := filepath.Join(dir, "flipped.pth")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadCheckpoint(p)
	errCase(t, err, p, ErrTruncated, "corrupt")
}

// pickleBuilder writes protocol-2 pickle opcodes for crafted files.
type pickleBuilder struct{ bytes.Buffer }

func (b *pickleBuilder) op(s string) *pickleBuilder { b.WriteString(s); return b }
func (b *pickleBuilder) str(s string) *pickleBuilder {
	b.WriteByte('X')
	binary.Write(&b.Buffer, binary.LittleEndian, uint32(len(s)))
	b.WriteString(s)
	return b
}
func (b *pickleBuilder) int(v int64) *pickleBuilder {
	b.WriteString("\x8a\x08")
	binary.Write(&b.Buffer, binary.LittleEndian, v)
	return b
}
func (b *pickleBuilder) global(mod, name string) *pickleBuilder {
	return b.op("c" + mod + "\n" + name + "\n")
}

// legacyFile returns a legacy checkpoint whose state_dict pickle is main.
func legacyFile(main []byte, rest ...[]byte) []byte {
	magic, _ := new(big.Int).SetString("1950a86a20f9469cfc6c", 16)
	mb := magic.Bytes() // big-endian
	le := make([]byte, len(mb))
	for i := range mb {
		le[i] = mb[len(mb)-1-i]
	}
	var b bytes.Buffer
	b.WriteString("\x80\x02\x8a")
	b.WriteByte(byte(len(le)))
	b.Write(le)
	b.WriteString(".\x80\x02M\xe9\x03.\x80\x02}.")
	b.Write(main)
	for _, r := range rest {
		b.Write(r)
	}
	return b.Bytes()
}

func TestReadCheckpointCraftedPickles(t *testing.T) {
	dir := t.TempDir()
	tensorDict := func(numel int64, size int64) []byte {
		var p pickleBuilder
		p.op("\x80\x02}(").str("w").global("torch._utils", "_rebuild_tensor_v2").op("((").
			str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(numel).op("NtQ").
			int(0).op("(").int(size).op("t(").int(1).op("t\x89").global("collections", "OrderedDict").op(")RtRu.")
		return p.Bytes()
	}
	keys := []byte("\x80\x02]X\x01\x00\x00\x000a.")
	okData := append(binary.LittleEndian.AppendUint64(nil, 2), 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40) // [1, 2]
	for _, c := range []struct {
		name string
		data []byte
		kind error
		what string
	}{
		// The brief's example: a GLOBAL of os.system, then a REDUCE.
		{"os_system.pth", legacyFile([]byte("\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")), ErrUnsafePickle, "refuses pickle global os.system"},
		{"stack_global.pth", legacyFile([]byte("\x80\x04\x8c\x08builtins\x8c\x04exec\x93X\x01\x00\x00\x000\x85R.")), ErrUnsafePickle, "refuses pickle global builtins.exec"},
		{"inst.pth", legacyFile([]byte("\x80\x02(X\x01\x00\x00\x00xisubprocess\nPopen\n.")), ErrUnsafePickle, "refuses pickle global subprocess.Popen"},
		// A 2 GiB string in a small file is rejected before any allocation.
		{"huge_string.pth", legacyFile([]byte("\x80\x02X\xff\xff\xff\x7fabc")), ErrTruncated, "truncated"},
		{"huge_frame.pth", legacyFile([]byte("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f.")), ErrTruncated, "truncated"},
		// LONG1 of length 0 makes gopickle v0.2.0 index out of range.
		{"long1_empty.pth", legacyFile([]byte("\x80\x02\x8a\x00.")), ErrNotCheckpoint, "malformed pickle"},
		// A storage claiming 2^40 floats.
		{"huge_storage.pth", legacyFile(tensorDict(1<<40, 4)), ErrNotCheckpoint, "more than the file can hold"},
		// A view reaching past its storage.
		{"big_view.pth", legacyFile(tensorDict(2, 3), keys, okData), ErrNotCheckpoint, "more elements than its storage"},
		// A storage whose data is missing.
		{"no_data.pth", legacyFile(tensorDict(2, 2), keys), ErrTruncated, "truncated"},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadCheckpoint(p)
		errCase(t, err, p, c.kind, c.what)
	}
	// The same builder with consistent sizes gives a valid checkpoint.
	p := filepath.Join(dir, "ok.pth")
	if err := os.WriteFile(p, legacyFile(tensorDict(2, 2), keys, okData), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCheckpoint(p)
	if err != nil {
		t.Fatal(err)
	}
	if w := got["w"]; len(got) != 1 || !slices.Equal(w.Shape, []int{2}) || w.Data[0] != 1 || w.Data[1] != 2 {
		t.Errorf("crafted checkpoint: %v", got)
	}
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
	errCase(t, err, missing, fs.ErrNotExist, "not found")
}
