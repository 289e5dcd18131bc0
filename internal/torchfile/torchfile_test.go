package torchfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goldenDir holds the repository's golden checkpoints of a narrow
// wide_resnet50_2 (testdata/golden/gen_model.py), in both serialisations.
var goldenDir = filepath.Join("..", "..", "testdata", "golden")

var (
	goldenZip    = filepath.Join(goldenDir, "narrow_wrn50_2_zip.pth")
	goldenLegacy = filepath.Join(goldenDir, "narrow_wrn50_2_legacy.pth")
)

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

// TestReadCheckpointWrapped: a state_dict wrapped under "state_dict" or
// "model" is unwrapped, and keys keep a DataParallel "module." prefix.
func TestReadCheckpointWrapped(t *testing.T) {
	p := filepath.Join("testdata", "tiny_module_prefix.pth")
	raw, err := ReadCheckpoint(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["module.conv1.weight"]; !ok {
		t.Errorf("ReadCheckpoint should keep the module. prefix; keys include none")
	}
	m, err := ReadCheckpoint(filepath.Join("testdata", "model_key_legacy.pth"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || !slices.Equal(m["conv1.weight"].Shape, []int{1, 3, 7, 7}) || !slices.Equal(m["bn1.bias"].Shape, []int{1}) {
		t.Errorf("model-wrapped checkpoint: %d entries %v", len(m), m)
	}
}

// errCase checks that err is op's error about file ("OP: FILE: ..."),
// wraps kind and says what.
func errCase(t *testing.T, op string, err error, file string, kind error, what ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", file)
		return
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("%s: %v does not wrap %v", file, err, kind)
	}
	if !strings.HasPrefix(err.Error(), op+": "+file+": ") {
		t.Errorf("%s: error %q does not start with %q", file, err, op+": FILE: ")
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
		errCase(t, "weights", err, p, c.kind, c.what...)
	}
}

func TestReadCheckpointNotACheckpoint(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pth")
	_, err := ReadCheckpoint(missing)
	errCase(t, "weights", err, missing, fs.ErrNotExist, "not found")

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
		errCase(t, "weights", err, p, ErrNotCheckpoint, "not a torch checkpoint", c.what)
	}
	_, err = ReadCheckpoint(dir)
	errCase(t, "weights", err, dir, ErrNotCheckpoint, "directory")
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
			errCase(t, "weights", err, p, ErrTruncated, "truncated")
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
	errCase(t, "weights", err, p, ErrTruncated, "corrupt")
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
		// The classic exploit: a GLOBAL of os.system, then a REDUCE.
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
		errCase(t, "weights", err, p, c.kind, c.what)
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
