package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/internal/npy"
)

// TestReadNPZGolden compares the fixtures of gen_npz.py with what numpy
// read back from them (npz.json), value for value.
func TestReadNPZGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "npz.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]map[string]struct {
		DType  string          `json:"dtype"`
		Shape  []int           `json:"shape"`
		Values json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != 2 {
		t.Fatalf("npz.json describes %d files, want 2", len(want))
	}
	for file, arrays := range want {
		got, err := ReadNPZ(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(arrays) {
			t.Errorf("%s: %d arrays, want %d", file, len(got), len(arrays))
		}
		for key, w := range arrays {
			g, ok := got[key]
			if !ok {
				t.Errorf("%s: missing %s", file, key)
				continue
			}
			if g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) {
				t.Errorf("%s: %s is %s %v, want %s %v", file, key, g.DType, g.Shape, w.DType, w.Shape)
				continue
			}
			set := 0
			for _, n := range []int{len(g.F32), len(g.F64), len(g.I64), len(g.U8), len(g.Str)} {
				if n > 0 {
					set++
				}
			}
			if set != 1 {
				t.Errorf("%s: %s has %d data fields set, want 1", file, key, set)
			}
			switch w.DType {
			case "<f4":
				var v []float64
				mustJSON(t, w.Values, &v)
				if !slices.EqualFunc(g.F32, v, func(a float32, b float64) bool { return a == float32(b) }) {
					t.Errorf("%s: %s = %v, want %v", file, key, g.F32, v)
				}
			case "<f8":
				var v []float64
				mustJSON(t, w.Values, &v)
				if !slices.EqualFunc(g.F64, v, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }) {
					t.Errorf("%s: %s = %v, want %v", file, key, g.F64, v)
				}
			case "<i8":
				var v []int64
				mustJSON(t, w.Values, &v)
				if !slices.Equal(g.I64, v) {
					t.Errorf("%s: %s = %v, want %v", file, key, g.I64, v)
				}
			case "|u1":
				var v []int
				mustJSON(t, w.Values, &v)
				if !slices.EqualFunc(g.U8, v, func(a uint8, b int) bool { return int(a) == b }) {
					t.Errorf("%s: %s = %v, want %v", file, key, g.U8, v)
				}
			default:
				var v []string
				mustJSON(t, w.Values, &v)
				if !strings.HasPrefix(w.DType, "<U") || !slices.Equal(g.Str, v) {
					t.Errorf("%s: %s = %q (%s), want %q", file, key, g.Str, w.DType, v)
				}
			}
		}
	}
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

func TestReadNPZObjectArray(t *testing.T) {
	p := filepath.Join("testdata", "object.npz")
	_, err := ReadNPZ(p)
	errCase(t, "npz", err, p, ErrUnsupportedDtype, "member obj.npy", "allow_pickle")
}

func TestReadNPZTruncated(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"arrays.npz", "compressed.npz"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		n := len(data)
		for _, cut := range []int{3, 20, 200, n / 2, n - 1} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadNPZ(p)
			errCase(t, "npz", err, p, ErrTruncated, "truncated")
		}
	}
	// A flipped byte inside a member's data, stored or deflated, is caught
	// (by the zip's CRC or the inflater) and blamed on that member.
	// at is counted from the member's name in its local header, past the
	// zip64 extra field that numpy writes: inside the int64 values of
	// i64.npy, and halfway through the 110 deflated bytes of big.npy.
	for _, c := range []struct {
		file, member string
		at           int
	}{{"arrays.npz", "i64.npy", 160}, {"compressed.npz", "big.npy", 82}} {
		data, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(data, []byte(c.member))
		if i < 0 {
			t.Fatalf("%s: no %s", c.file, c.member)
		}
		data = append([]byte{}, data...)
		data[i+c.at] ^= 0x55
		p := filepath.Join(dir, "flipped_"+c.file)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = ReadNPZ(p)
		errCase(t, "npz", err, p, ErrTruncated, "member "+c.member, "corrupt")
	}
}

// npyBytes is a float32 .npy stream.
func npyBytes(t *testing.T, shape []int, data []float32) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := npy.WriteFloat32(&b, shape, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeZip writes a zip of the given members, in order, stored.
func writeZip(t *testing.T, path string, members ...[2]string) {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, m := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m[0], Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadNPZBadArchives(t *testing.T) {
	dir := t.TempDir()
	ok := string(npyBytes(t, []int{2}, []float32{1, 2}))
	hdr := func(descr, shape string) string {
		h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }"
		h += strings.Repeat(" ", 63-(10+len(h))%64) + "\n"
		return "\x93NUMPY\x01\x00" + string([]byte{byte(len(h)), byte(len(h) >> 8)}) + h
	}
	for _, c := range []struct {
		name    string
		members [][2]string
		kind    error
		what    []string
	}{
		{"text_member.npz", [][2]string{{"a.npy", ok}, {"notes.txt", "hi"}}, ErrNotNPZ, []string{"member notes.txt is not a .npy array"}},
		{"duplicate.npz", [][2]string{{"a.npy", ok}, {"a.npy", ok}}, ErrNotNPZ, []string{"member a.npy appears twice"}},
		{"bad_magic.npz", [][2]string{{"a.npy", "hello, world"}}, ErrNotNPZ, []string{"member a.npy", "bad magic"}},
		{"bad_header.npz", [][2]string{{"a.npy", "\x93NUMPY\x01\x00\x10\x00{'shape': ()}  \n"}}, ErrNotNPZ, []string{"member a.npy", "malformed header"}},
		{"bool.npz", [][2]string{{"b.npy", hdr("|b1", "2,") + "\x00\x01"}}, ErrUnsupportedDtype, []string{"member b.npy", "unsupported dtype \"|b1\""}},
		{"short.npz", [][2]string{{"s.npy", hdr("<f4", "100,") + "12345678"}}, ErrTruncated, []string{"member s.npy", "truncated"}},
		// A header claiming 8 TiB of data over none fails on the missing
		// bytes, not on allocating for them.
		{"huge.npz", [][2]string{{"h.npy", hdr("<f8", "1099511627776,")}}, ErrTruncated, []string{"member h.npy", "truncated"}},
	} {
		p := filepath.Join(dir, c.name)
		writeZip(t, p, c.members...)
		_, err := ReadNPZ(p)
		errCase(t, "npz", err, p, c.kind, c.what...)
	}

	missing := filepath.Join(dir, "missing.npz")
	_, err := ReadNPZ(missing)
	errCase(t, "npz", err, missing, fs.ErrNotExist, "not found")
	_, err = ReadNPZ(dir)
	errCase(t, "npz", err, dir, ErrNotNPZ, "directory")
	for _, c := range []struct {
		name string
		data []byte
		what string
	}{
		{"empty.npz", nil, "empty file"},
		{"notes.npz", []byte("these are not arrays\n"), "text"},
		{"single.npz", []byte(ok), "a NumPy .npy signature"},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadNPZ(p)
		errCase(t, "npz", err, p, ErrNotNPZ, c.what)
	}
}

// TestReadNPZKeys: keys are the member names without ".npy"; an archive
// without members (np.savez with no arrays) is an empty map.
func TestReadNPZKeys(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys.npz")
	writeZip(t, p, [2]string{"a/b.npy", string(npyBytes(t, []int{1, 2}, []float32{3, 4}))}, [2]string{"c.npy", string(npyBytes(t, nil, []float32{5}))})
	got, err := ReadNPZ(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Equal(got["a/b"].F32, []float32{3, 4}) || !slices.Equal(got["a/b"].Shape, []int{1, 2}) ||
		len(got["c"].Shape) != 0 || !slices.Equal(got["c"].F32, []float32{5}) {
		t.Errorf("ReadNPZ = %v", got)
	}
	empty := filepath.Join(dir, "empty.npz")
	writeZip(t, empty)
	if got, err := ReadNPZ(empty); err != nil || len(got) != 0 {
		t.Errorf("empty archive: %v, %v", got, err)
	}
}
