package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestFloat32RoundTrip(t *testing.T) {
	for _, shape := range [][]int{{5}, {2, 3}, {2, 1, 4}, {}} {
		n := count(shape)
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i)*0.5 - 1
		}
		var buf bytes.Buffer
		if err := WriteFloat32(&buf, shape, data); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != 128+4*n && buf.Len() != 64+4*n {
			t.Errorf("shape %v: %d bytes; header not padded to 64", shape, buf.Len())
		}
		a, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Shape) != len(shape) || a.Len() != n || a.DType != "<f4" {
			t.Fatalf("shape %v: read back %v %s", shape, a.Shape, a.DType)
		}
		for i := range data {
			if a.F32[i] != data[i] {
				t.Fatalf("value %d: %v != %v", i, a.F32[i], data[i])
			}
		}
	}
}

func TestReadRejectsBadInput(t *testing.T) {
	for name, in := range map[string][]byte{
		"not npy":   []byte("PNG....."),
		"truncated": []byte("\x93NUMPY\x01\x00\x40\x00{'descr'"),
	} {
		if _, err := Read(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// stream is a .npy stream of the given header fields and raw data.
func stream(t *testing.T, descr string, shape []int, data []byte) *bytes.Reader {
	t.Helper()
	var b bytes.Buffer
	if err := writeHeader(&b, descr, shape); err != nil {
		t.Fatal(err)
	}
	b.Write(data)
	return bytes.NewReader(b.Bytes())
}

func TestReadInt64Float64Strings(t *testing.T) {
	le := binary.LittleEndian
	var i64 []byte
	for _, v := range []int64{0, -1, 1 << 40, math.MinInt64} {
		i64 = le.AppendUint64(i64, uint64(v))
	}
	a, err := Read(stream(t, "<i8", []int{2, 2}, i64))
	if err != nil || !slices.Equal(a.I64, []int64{0, -1, 1 << 40, math.MinInt64}) || a.F32 != nil || a.U8 != nil {
		t.Errorf("<i8: %+v, %v", a, err)
	}
	var f64 []byte
	for _, v := range []float64{0.1, -1e300, math.Inf(1)} {
		f64 = le.AppendUint64(f64, math.Float64bits(v))
	}
	a, err = Read(stream(t, "<f8", []int{3}, f64))
	if err != nil || !slices.Equal(a.F64, []float64{0.1, -1e300, math.Inf(1)}) {
		t.Errorf("<f8: %+v, %v", a, err)
	}
	// Width 3: trailing NULs pad, an inner NUL stays.
	var u []byte
	for _, s := range []string{"ab\x00", "日\x00x", "\x00\x00\x00", "xyz"} {
		for _, r := range s {
			u = le.AppendUint32(u, uint32(r))
		}
	}
	a, err = Read(stream(t, "<U3", []int{4}, u))
	if err != nil || !slices.Equal(a.Str, []string{"ab", "日\x00x", "", "xyz"}) {
		t.Errorf("<U3: %q, %v", a.Str, err)
	}
	bad := le.AppendUint32(nil, 0xD800) // a lone surrogate
	if _, err := Read(stream(t, "<U1", []int{1}, bad)); err == nil || !strings.Contains(err.Error(), "invalid code point") {
		t.Errorf("<U1 surrogate: %v", err)
	}
}

func TestReadRefusesUnsupportedDTypes(t *testing.T) {
	for _, descr := range []string{"|O", "|b1", ">f4", "<U0", "<i4"} {
		_, err := Read(stream(t, descr, []int{1}, make([]byte, 8)))
		if !errors.Is(err, ErrUnsupportedDType) || !strings.Contains(err.Error(), descr) {
			t.Errorf("%s: %v, want ErrUnsupportedDType naming it", descr, err)
		}
	}
	_, err := Read(stream(t, "|O", []int{1}, nil))
	if err == nil || !strings.Contains(err.Error(), "allow_pickle") {
		t.Errorf("object array: %v", err)
	}
}

// A header claiming far more data than follows fails on the missing bytes,
// and a shape whose size overflows is refused.
func TestReadHugeShape(t *testing.T) {
	if _, err := Read(stream(t, "<f4", []int{1 << 40}, make([]byte, 16))); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("2^40 floats over 16 bytes: %v", err)
	}
	if _, err := Read(stream(t, "<f8", []int{1 << 31, 1 << 31, 1 << 31}, nil)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("overflowing shape: %v", err)
	}
}
