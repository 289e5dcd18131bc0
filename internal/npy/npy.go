// Package npy reads and writes NumPy .npy files (little-endian, C order)
// and .npz archives of them: the format in which the project exchanges
// embeddings, maps and random draws with Python tools. It reads and writes
// float32, float64, int64, uint8 and unicode-string arrays (format version
// 1.0 when writing), and never reads pickled object arrays.
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
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

var magic = []byte("\x93NUMPY")

// Array is a decoded .npy array. Exactly one of the data fields is set,
// according to DType. Data is row-major over Shape.
type Array struct {
	Shape []int
	DType string
	// F32 holds a "<f4" array.
	F32 []float32
	// U8 holds a "|u1" array.
	U8 []uint8
	// I64 holds an "<i8" array.
	I64 []int64
	// F64 holds an "<f8" array.
	F64 []float64
	// Str holds a "<U<n>" array (fixed width n, stored as UTF-32), each
	// string without the NULs that pad it to the width.
	Str []string
}

// ErrUnsupportedDType is wrapped by Read's error for a dtype it does not
// read, object arrays ("|O", pickled Python objects) included.
var ErrUnsupportedDType = errors.New("unsupported dtype")

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

// Read decodes a .npy stream in C order: float32 ("<f4"), float64 ("<f8"),
// int64 ("<i8"), uint8 ("|u1") or unicode strings ("<U<n>").
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
	hdr, err := readRaw(r, hlen)
	if err != nil {
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
	size, kind := elemSize(a.DType)
	if size == 0 {
		if a.DType == "|O" {
			return nil, fmt.Errorf("npy: %w %q: an object array holds pickled Python objects (allow_pickle), which are not read", ErrUnsupportedDType, a.DType)
		}
		return nil, fmt.Errorf("npy: %w %q (want <f4, <f8, <i8, |u1 or <U<n>)", ErrUnsupportedDType, a.DType)
	}
	n := 1
	for _, v := range a.Shape {
		if v > 0 && n > math.MaxInt/size/v {
			return nil, fmt.Errorf("npy: shape %v is too large", a.Shape)
		}
		n *= v
	}
	raw, err := readRaw(r, n*size)
	if err != nil {
		return nil, fmt.Errorf("npy: reading %d %s values: %w", n, kind, err)
	}
	le := binary.LittleEndian
	switch a.DType {
	case "<f4":
		a.F32 = make([]float32, n)
		for i := range a.F32 {
			a.F32[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case "|u1", "<u1":
		a.U8 = raw
	case "<i8":
		a.I64 = make([]int64, n)
		for i := range a.I64 {
			a.I64[i] = int64(le.Uint64(raw[8*i:]))
		}
	case "<f8":
		a.F64 = make([]float64, n)
		for i := range a.F64 {
			a.F64[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	default: // "<U<width>"
		a.Str = make([]string, n)
		for i := range a.Str {
			if a.Str[i], err = utf32(raw[i*size : (i+1)*size]); err != nil {
				return nil, fmt.Errorf("npy: string %d: %w", i, err)
			}
		}
	}
	return a, nil
}

// elemSize is the byte size of one element of a dtype that Read decodes,
// and the name its errors give the elements; 0 for any other dtype.
func elemSize(dtype string) (int, string) {
	switch dtype {
	case "<f4":
		return 4, "float32"
	case "<f8":
		return 8, "float64"
	case "<i8":
		return 8, "int64"
	case "|u1", "<u1":
		return 1, "uint8"
	}
	if w, ok := strings.CutPrefix(dtype, "<U"); ok {
		if n, err := strconv.Atoi(w); err == nil && n > 0 && n <= math.MaxInt32/4 {
			return 4 * n, dtype
		}
	}
	return 0, ""
}

// maxPrealloc bounds what readRaw allocates ahead of the data.
const maxPrealloc = 64 << 20

// readRaw reads exactly n bytes. Past maxPrealloc bytes its buffer grows
// only with data that has arrived (doubling), so a header that claims a
// huge shape over a short stream fails on the missing bytes, not on an
// allocation.
func readRaw(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, min(n, maxPrealloc))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	for len(b) < n {
		start := len(b)
		k := min(n-start, start)
		b = slices.Grow(b, k)[:start+k]
		if _, err := io.ReadFull(r, b[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}

// utf32 decodes one fixed-width UTF-32LE string, dropping trailing NULs.
func utf32(b []byte) (string, error) {
	for len(b) >= 4 && binary.LittleEndian.Uint32(b[len(b)-4:]) == 0 {
		b = b[:len(b)-4]
	}
	out := make([]byte, 0, len(b)/4)
	for i := 0; i < len(b); i += 4 {
		c := binary.LittleEndian.Uint32(b[i:])
		if !utf8.ValidRune(rune(c)) {
			return "", fmt.Errorf("invalid code point U+%X", c)
		}
		out = utf8.AppendRune(out, rune(c))
	}
	return string(out), nil
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
