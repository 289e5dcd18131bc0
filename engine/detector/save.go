package detector

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/knn"
	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Model file layout (all integers little-endian):
//
//	magic    "SOFTPATCH-MODEL\n" (16 bytes)
//	version  uint32 (FormatVersion)
//	hlen     uint32, then hlen bytes of JSON (fileHeader)
//	bank     N*D float32
//	weights  N float32, present only when the header's HasWeights is set
//	indices  N int32
//	principal coordinates, present only when the header's principal_dims
//	P is set (version 2; knn.Principal):
//	  mean   D float64
//	  basis  D*P float64
//	  coords N*P float32
//	  resid  N*2 float32
//
// and nothing after. Version 1 files (no principal coordinates) are read
// too.
const (
	modelMagic = "SOFTPATCH-MODEL\n"
	// FormatVersion is the newest version of the model file format: Save
	// writes it when the model has principal coordinates and version 1
	// otherwise (as PaDiM's files); Load reads both.
	FormatVersion = 2
	// maxHeader bounds the JSON header Load accepts.
	maxHeader = 1 << 20
	// maxValues bounds N*D, so that a corrupt header cannot overflow.
	maxValues = 1 << 40
	// readChunk is the number of values read at a time: a truncated file
	// fails before a bank of the header's claimed size is allocated.
	readChunk = 1 << 18
)

// Meta describes how the features a model was fitted on were computed,
// so that a later run can compute the same features; it travels in the
// model file's JSON header.
type Meta struct {
	// Backbone is the network that produced the training features.
	Backbone backbone.Identity `json:"backbone"`
	// Layers are the embedded backbone layers, the first sets the grid.
	Layers []string `json:"layers"`
	// Resize, ImageSize and ResizeMode are the preprocessing
	// (datasets.Preprocess; ResizeMode is "shorter" or "square").
	Resize     int    `json:"resize"`
	ImageSize  int    `json:"imagesize"`
	ResizeMode string `json:"resize_mode"`
	// Embedding is how the layers become features: "" for PatchCore's
	// patch embedding (engine/embed.Config), "padim" for PaDiM's channel
	// selection, whose Channels (indices into the layers' concatenated
	// channels) it records.
	Embedding string `json:"embedding,omitempty"`
	Channels  []int  `json:"channels,omitempty"`
	// GridH x GridW is the patch grid of one image (positions).
	GridH int `json:"grid_h"`
	GridW int `json:"grid_w"`
	// Method is the CLI method name (e.g. "softpatch-lof"); Class, Data,
	// Train and NoiseFiles say what the model was fitted on.
	Method     string   `json:"method,omitempty"`
	Data       string   `json:"data,omitempty"`
	Class      string   `json:"class,omitempty"`
	Train      int      `json:"train_images,omitempty"`
	NoiseFiles []string `json:"noise_files,omitempty"`
	// Decision, when set, is the model's yes/no rule (predict applies it).
	Decision *Decision `json:"decision,omitempty"`
	// Created is the fitting time (RFC 3339); SoftpatchVersion and Commit
	// the build that fitted the model.
	Created          string `json:"created,omitempty"`
	SoftpatchVersion string `json:"softpatch_version,omitempty"`
	Commit           string `json:"commit,omitempty"`
}

// fileHeader is the JSON header of a model file.
type fileHeader struct {
	Config            Config  `json:"config"`
	N                 int     `json:"n"`
	D                 int     `json:"d"`
	HasWeights        bool    `json:"has_weights"`
	CoresetSeed       uint64  `json:"coreset_seed"`
	DiscriminatorSeed uint64  `json:"discriminator_seed"`
	ScoreThreshold    float64 `json:"score_threshold"`
	Excluded          int     `json:"excluded"`
	PrincipalDims     int     `json:"principal_dims,omitempty"`
	Meta              Meta    `json:"meta"`
}

// Save writes the model and meta to w in the model file format.
func (m *Model) Save(w io.Writer, meta Meta) error {
	if m.N <= 0 || m.D <= 0 || len(m.Bank) != m.N*m.D || len(m.Indices) != m.N {
		return fmt.Errorf("detector: save: bank has %d values and %d indices for N=%d D=%d", len(m.Bank), len(m.Indices), m.N, m.D)
	}
	if m.Weights != nil && len(m.Weights) != m.N {
		return fmt.Errorf("detector: save: %d soft weights for %d bank entries", len(m.Weights), m.N)
	}
	for _, i := range m.Indices {
		if i < 0 || i > math.MaxInt32 {
			return fmt.Errorf("detector: save: patch index %d does not fit the file's int32", i)
		}
	}
	pr := m.Principal
	if pr != nil {
		if err := pr.Check(m.N, m.D); err != nil {
			return fmt.Errorf("detector: save: %w", err)
		}
	}
	hd := fileHeader{
		Config: m.Config, N: m.N, D: m.D, HasWeights: m.Weights != nil,
		CoresetSeed: m.CoresetSeed, DiscriminatorSeed: m.DiscriminatorSeed,
		ScoreThreshold: m.ScoreThreshold, Excluded: m.Excluded, Meta: meta,
	}
	if pr != nil {
		hd.PrincipalDims = pr.P
	}
	h, err := json.Marshal(hd)
	if err != nil {
		return fmt.Errorf("detector: save: header: %w", err)
	}
	if len(h) > maxHeader {
		return fmt.Errorf("detector: save: header of %d bytes over %d", len(h), maxHeader)
	}
	version := uint32(1) // readable by builds before the principal section
	if pr != nil {
		version = FormatVersion
	}
	bw := writePreamble(w, modelMagic, version, h)
	var u [4]byte
	for _, v := range m.Bank {
		binary.LittleEndian.PutUint32(u[:], math.Float32bits(v))
		bw.Write(u[:])
	}
	for _, v := range m.Weights {
		binary.LittleEndian.PutUint32(u[:], math.Float32bits(v))
		bw.Write(u[:])
	}
	for _, i := range m.Indices {
		binary.LittleEndian.PutUint32(u[:], uint32(int32(i)))
		bw.Write(u[:])
	}
	if pr != nil {
		var u8 [8]byte
		for _, part := range [][]float64{pr.Mean, pr.Basis} {
			for _, v := range part {
				binary.LittleEndian.PutUint64(u8[:], math.Float64bits(v))
				bw.Write(u8[:])
			}
		}
		for _, part := range [][]float32{pr.Coords, pr.Resid} {
			for _, v := range part {
				binary.LittleEndian.PutUint32(u[:], math.Float32bits(v))
				bw.Write(u[:])
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("detector: save: %w", err)
	}
	return nil
}

// SaveFile writes the model to path atomically (a reader never sees a
// partial file).
func (m *Model) SaveFile(path string, meta Meta) error {
	err := atomicfile.WriteFile(path, func(w io.Writer) error { return m.Save(w, meta) })
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writePreamble returns a buffered writer on w that has the preamble of a
// model file written: magic, FormatVersion, the header's length and the
// header h (errors surface at the writer's Flush).
func writePreamble(w io.Writer, magic string, version uint32, h []byte) *bufio.Writer {
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString(magic)
	var u [4]byte
	binary.LittleEndian.PutUint32(u[:], version)
	bw.Write(u[:])
	binary.LittleEndian.PutUint32(u[:], uint32(len(h)))
	bw.Write(u[:])
	bw.Write(h)
	return bw
}

// readHeader reads and checks the preamble writePreamble wrote (kind names
// the file kind in errors), decodes its JSON header into h and returns the
// preamble's length in bytes.
func readHeader(br *bufio.Reader, magic, kind string, h any) (int64, error) {
	pre := make([]byte, len(magic)+8)
	n, err := io.ReadFull(br, pre)
	if n < len(magic) || !bytes.Equal(pre[:len(magic)], []byte(magic)) {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("detector: load: %w", err)
		}
		return 0, fmt.Errorf("detector: load: not a %s file (bad magic)", kind)
	}
	if err != nil {
		return 0, fmt.Errorf("detector: load: %w while reading the preamble", errTruncated)
	}
	if v := binary.LittleEndian.Uint32(pre[len(magic):]); v < 1 || v > FormatVersion {
		return 0, fmt.Errorf("detector: load: model format version %d, this build reads versions 1 to %d", v, FormatVersion)
	}
	hlen := binary.LittleEndian.Uint32(pre[len(magic)+4:])
	if hlen == 0 || hlen > maxHeader {
		return 0, fmt.Errorf("detector: load: header length %d not in [1, %d]", hlen, maxHeader)
	}
	hb := make([]byte, hlen)
	if err := readFull(br, hb, "header"); err != nil {
		return 0, err
	}
	if err := json.Unmarshal(hb, h); err != nil {
		return 0, fmt.Errorf("detector: load: header: %w", err)
	}
	return int64(len(magic) + 8 + len(hb)), nil
}

// errTruncated reports a file that ends early.
var errTruncated = errors.New("file is truncated")

// readFull is io.ReadFull with a truncated file named as such.
func readFull(r io.Reader, b []byte, what string) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("detector: load: %w while reading the %s", errTruncated, what)
		}
		return fmt.Errorf("detector: load: reading the %s: %w", what, err)
	}
	return nil
}

// readN reads n little-endian 32-bit values from r a chunk at a time,
// each converted by conv, into a slice of capacity capacity at first (n
// when the caller knows the data is there; otherwise it grows with what is
// read, so that a stream cut short fails before a header's claimed size is
// allocated).
func readN[T any](r io.Reader, n, capacity int, what string, conv func(uint32) T) ([]T, error) {
	out := make([]T, 0, max(min(n, capacity), 0))
	buf := make([]byte, 4*min(n, readChunk))
	for len(out) < n {
		k := min(n-len(out), readChunk)
		if err := readFull(r, buf[:4*k], what); err != nil {
			return nil, err
		}
		for i := 0; i < k; i++ {
			out = append(out, conv(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	}
	return out, nil
}

// expectEOF checks that br has nothing left after the part named after.
func expectEOF(br *bufio.Reader, after string) error {
	if _, err := br.ReadByte(); err == nil {
		return fmt.Errorf("detector: load: unexpected data after the %s", after)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("detector: load: %w", err)
	}
	return nil
}

// LoadModel reads a model written by Save. It checks the magic string, the
// format version and every size, and fails (never panics) on a corrupt
// or truncated file.
func LoadModel(r io.Reader) (*Model, Meta, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var h fileHeader
	_, err := readHeader(br, modelMagic, "softpatch model", &h)
	if err != nil {
		return nil, Meta{}, err
	}
	if h.N <= 0 || h.D <= 0 || h.N > maxValues/h.D || h.N > math.MaxInt32 {
		return nil, Meta{}, fmt.Errorf("detector: load: bad bank size N=%d D=%d", h.N, h.D)
	}
	m := &Model{
		Config: h.Config, N: h.N, D: h.D, CoresetSeed: h.CoresetSeed, DiscriminatorSeed: h.DiscriminatorSeed,
		ScoreThreshold: h.ScoreThreshold, Excluded: h.Excluded,
	}
	if m.Bank, err = readN(br, h.N*h.D, readChunk, "memory bank", math.Float32frombits); err != nil {
		return nil, Meta{}, err
	}
	if h.HasWeights {
		if m.Weights, err = readN(br, h.N, readChunk, "soft weights", math.Float32frombits); err != nil {
			return nil, Meta{}, err
		}
	}
	if m.Indices, err = readN(br, h.N, readChunk, "indices", func(v uint32) int { return int(int32(v)) }); err != nil {
		return nil, Meta{}, err
	}
	for _, v := range m.Indices {
		if v < 0 {
			return nil, Meta{}, fmt.Errorf("detector: load: negative patch index %d", v)
		}
	}
	after := "indices"
	if p := h.PrincipalDims; p != 0 {
		if p < 0 || p > h.D {
			return nil, Meta{}, fmt.Errorf("detector: load: %d principal dimensions for dimension %d", p, h.D)
		}
		pr := &knn.Principal{N: h.N, D: h.D, P: p}
		f64 := func(v [2]uint32) float64 { return math.Float64frombits(uint64(v[0]) | uint64(v[1])<<32) }
		for _, part := range []struct {
			dst  *[]float64
			n    int
			what string
		}{{&pr.Mean, h.D, "principal mean"}, {&pr.Basis, h.D * p, "principal basis"}} {
			raw, err := readN(br, 2*part.n, readChunk, part.what, func(v uint32) uint32 { return v })
			if err != nil {
				return nil, Meta{}, err
			}
			*part.dst = make([]float64, part.n)
			for i := range *part.dst {
				(*part.dst)[i] = f64([2]uint32{raw[2*i], raw[2*i+1]})
			}
		}
		if pr.Coords, err = readN(br, h.N*p, readChunk, "principal coordinates", math.Float32frombits); err != nil {
			return nil, Meta{}, err
		}
		if pr.Resid, err = readN(br, h.N*2, readChunk, "residual norms", math.Float32frombits); err != nil {
			return nil, Meta{}, err
		}
		if err := pr.Check(h.N, h.D); err != nil {
			return nil, Meta{}, fmt.Errorf("detector: load: %w", err)
		}
		m.Principal = pr
		after = "principal coordinates"
	}
	if err := expectEOF(br, after); err != nil {
		return nil, Meta{}, err
	}
	return m, h.Meta, nil
}

// LoadModelFile reads the model file at path; its errors name the file.
func LoadModelFile(path string) (*Model, Meta, error) { return loadFile(path, LoadModel) }

// loadFile opens path and reads it with load; its errors name the file.
func loadFile[T any](path string, load func(io.Reader) (T, Meta, error)) (T, Meta, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, Meta{}, fmt.Errorf("detector: %w", err)
	}
	defer f.Close()
	m, meta, err := load(f)
	if err != nil {
		return zero, Meta{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, meta, nil
}
