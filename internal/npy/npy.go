// Package npy reads and writes NumPy .npy files (format version 1.0,
// little-endian, C order) of float32 and uint8 arrays: the format in
// which the project exchanges embeddings and maps with Python tools.
package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var magic = []byte("\x93NUMPY")

// Array is a decoded .npy array. Exactly one of F32 and U8 is set,
// according to DType ("<f4" or "|u1"). Data is row-major over Shape.
type Array struct {
	Shape []int
	DType string
	F32   []float32
	U8    []uint8
}

// Len is the number of elements the shape holds.
func (a *Array) Len() int { return count(a.Shape) }

func count(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// WriteFloat32 writes data with the given shape as a .npy stream.
func WriteFloat32(w io.Writer, shape []int, data []float32) error {
	fw, err := NewFloat32Writer(w, shape)
	if err != nil {
		return err
	}
	if err := fw.Write(data); err != nil {
		return err
	}
	return fw.Close()
}

// Float32Writer streams a float32 array: the header first, then the data
// in any number of Write calls, row-major.
type Float32Writer struct {
	w       io.Writer
	buf     []byte // encoding scratch, reused across Write calls
	want    int
	written int
}

// NewFloat32Writer writes the header of a float32 array of the given shape.
func NewFloat32Writer(w io.Writer, shape []int) (*Float32Writer, error) {
	if err := writeHeader(w, "<f4", shape); err != nil {
		return nil, err
	}
	return &Float32Writer{w: w, want: count(shape)}, nil
}

// Write appends values to the array.
func (fw *Float32Writer) Write(data []float32) error {
	if fw.written+len(data) > fw.want {
		return fmt.Errorf("npy: writing %d more values past %d of %d", len(data), fw.written, fw.want)
	}
	fw.buf = fw.buf[:0]
	for _, v := range data {
		fw.buf = binary.LittleEndian.AppendUint32(fw.buf, math.Float32bits(v))
	}
	if _, err := fw.w.Write(fw.buf); err != nil {
		return err
	}
	fw.written += len(data)
	return nil
}

// Close checks that the shape was filled.
func (fw *Float32Writer) Close() error {
	if fw.written != fw.want {
		return fmt.Errorf("npy: wrote %d values, shape holds %d", fw.written, fw.want)
	}
	return nil
}

func writeHeader(w io.Writer, descr string, shape []int) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// Pad with spaces so that magic+version+length+header is a multiple of 64, ending in '\n'.
	total := len(magic) + 2 + 2 + len(h) + 1
	h += strings.Repeat(" ", (64-total%64)%64) + "\n"
	buf := append([]byte{}, magic...)
	buf = append(buf, 1, 0)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(h)))
	buf = append(buf, h...)
	_, err := w.Write(buf)
	return err
}

var (
	descrRe = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	orderRe = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	shapeRe = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// Read decodes a .npy stream of float32 ("<f4") or uint8 ("|u1") data in C order.
func Read(r io.Reader) (*Array, error) {
	pre := make([]byte, 10)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, fmt.Errorf("npy: reading header: %w", err)
	}
	if string(pre[:6]) != string(magic) {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	var hlen int
	switch pre[6] {
	case 1:
		hlen = int(binary.LittleEndian.Uint16(pre[8:10]))
	case 2, 3:
		more := make([]byte, 2)
		if _, err := io.ReadFull(r, more); err != nil {
			return nil, fmt.Errorf("npy: reading header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(append(pre[8:10:10], more...)))
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d", pre[6])
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("npy: reading header: %w", err)
	}
	d, o, s := descrRe.FindSubmatch(hdr), orderRe.FindSubmatch(hdr), shapeRe.FindSubmatch(hdr)
	if d == nil || o == nil || s == nil {
		return nil, fmt.Errorf("npy: malformed header %q", hdr)
	}
	if string(o[1]) == "True" {
		return nil, errors.New("npy: Fortran-order arrays are not supported")
	}
	a := &Array{DType: string(d[1])}
	for _, f := range strings.Split(string(s[1]), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("npy: bad shape %q", s[1])
		}
		a.Shape = append(a.Shape, v)
	}
	n := a.Len()
	switch a.DType {
	case "<f4":
		raw := make([]byte, 4*n)
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, fmt.Errorf("npy: reading %d float32 values: %w", n, err)
		}
		a.F32 = make([]float32, n)
		for i := range a.F32 {
			a.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "|u1", "<u1":
		a.U8 = make([]uint8, n)
		if _, err := io.ReadFull(r, a.U8); err != nil {
			return nil, fmt.Errorf("npy: reading %d uint8 values: %w", n, err)
		}
	default:
		return nil, fmt.Errorf("npy: unsupported dtype %q (want <f4 or |u1)", a.DType)
	}
	return a, nil
}

// ReadFile decodes a .npy file; errors name the file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}
