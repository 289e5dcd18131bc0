package npy

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"unicode/utf8"
)

// Write writes a as a .npy stream: float32, float64, int64, uint8 or
// unicode strings (UTF-32, as wide as the longest string, at least 1),
// whichever field a.DType names.
func Write(w io.Writer, a *Array) error {
	n := count(a.Shape)
	descr := a.DType
	var got, width int
	switch a.DType {
	case "<f4":
		got = len(a.F32)
	case "<f8":
		got = len(a.F64)
	case "<i8":
		got = len(a.I64)
	case "|u1":
		got = len(a.U8)
	case "<U":
		got = len(a.Str)
		width = 1
		for _, s := range a.Str {
			width = max(width, utf8.RuneCountInString(s))
		}
		descr = fmt.Sprintf("<U%d", width)
	default:
		return fmt.Errorf("npy: %w %q (write <f4, <f8, <i8, |u1 or <U)", ErrUnsupportedDType, a.DType)
	}
	if got != n {
		return fmt.Errorf("npy: %d values for shape %v", got, a.Shape)
	}
	if err := writeHeader(w, descr, a.Shape); err != nil {
		return err
	}
	le := binary.LittleEndian
	var b []byte
	switch a.DType {
	case "<f4":
		for _, v := range a.F32 {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	case "<f8":
		for _, v := range a.F64 {
			b = le.AppendUint64(b, math.Float64bits(v))
		}
	case "<i8":
		for _, v := range a.I64 {
			b = le.AppendUint64(b, uint64(v))
		}
	case "|u1":
		b = a.U8
	default:
		for _, s := range a.Str {
			k := 0
			for _, r := range s {
				b = le.AppendUint32(b, uint32(r))
				k++
			}
			b = append(b, make([]byte, 4*(width-k))...)
		}
	}
	_, err := w.Write(b)
	return err
}

// Entry is one named array of an .npz file.
type Entry struct {
	Name  string
	Array *Array
}

// WriteNPZ writes entries to w as an uncompressed .npz archive (what
// numpy.savez writes: a zip of NAME.npy members, readable by numpy.load
// without pickles), in the given order.
func WriteNPZ(w io.Writer, entries []Entry) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		var buf bytes.Buffer
		if err := Write(&buf, e.Array); err != nil {
			return fmt.Errorf("npy: %s: %w", e.Name, err)
		}
		f, err := zw.CreateHeader(&zip.FileHeader{Name: e.Name + ".npy", Method: zip.Store})
		if err != nil {
			return err
		}
		if _, err := f.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return zw.Close()
}

// ErrNotNPZ is wrapped by ReadNPZ's error for a file that is not a whole
// zip archive (truncated, or another format).
var ErrNotNPZ = errors.New("not an .npz file (a zip of .npy arrays)")

// ReadNPZ reads every array of an .npz file (numpy.savez or
// savez_compressed), by name without ".npy". Errors name the file and the
// member: a truncated archive, a member that is not a .npy array, and an
// object array (pickled Python objects, never read).
func ReadNPZ(path string) (map[string]*Array, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecodeNPZ(b, path)
}

// DecodeNPZ is ReadNPZ on the bytes of an .npz file read from path.
func DecodeNPZ(b []byte, path string) (map[string]*Array, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w: %v", path, ErrNotNPZ, err)
	}
	out := map[string]*Array{}
	for _, f := range zr.File {
		name, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok || f.FileInfo().IsDir() {
			return nil, fmt.Errorf("npy: %s: member %q is not a .npy array", path, f.Name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("npy: %s: member %q twice", path, f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("npy: %s: member %q: %w", path, f.Name, err)
		}
		a, err := Read(rc)
		if err == nil {
			// Read stops at the data's end: the rest must be empty, and
			// reading it checks the member's CRC.
			var rest int64
			rest, err = io.Copy(io.Discard, rc)
			if err == nil && rest > 0 {
				err = fmt.Errorf("%d bytes after the array", rest)
			}
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("npy: %s: member %q: %w", path, f.Name, err)
		}
		out[name] = a
	}
	return out, nil
}
