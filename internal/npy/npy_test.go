package npy

import (
	"bytes"
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
