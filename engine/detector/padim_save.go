package detector

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/softpatch/softpatch/internal/atomicfile"
)

// PaDiM model file layout (all integers little-endian):
//
//	magic    "SOFTPATCH-PADIM\n" (16 bytes)
//	version  uint32 (FormatVersion)
//	hlen     uint32, then hlen bytes of JSON (padimHeader)
//	mean     Positions*Dim float32
//	factor   Positions*Dim*(Dim+1)/2 float32
//
// and nothing after.
const padimMagic = "SOFTPATCH-PADIM\n"

// padimHeader is the JSON header of a PaDiM model file.
type padimHeader struct {
	Positions int     `json:"positions"`
	Dim       int     `json:"dim"`
	Images    int     `json:"images"`
	Ridge     float64 `json:"ridge"`
	Meta      Meta    `json:"meta"`
}

// Save writes the model and meta to w in the PaDiM model file format.
func (m *PaDiM) Save(w io.Writer, meta Meta) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("detector: save: %w", err)
	}
	h, err := json.Marshal(padimHeader{Positions: m.Positions, Dim: m.Dim, Images: m.Images, Ridge: m.Ridge, Meta: meta})
	if err != nil {
		return fmt.Errorf("detector: save: header: %w", err)
	}
	if len(h) > maxHeader {
		return fmt.Errorf("detector: save: header of %d bytes over %d", len(h), maxHeader)
	}
	bw := writePreamble(w, padimMagic, 1, h)
	writeFloats(bw, m.Mean)
	writeFloats(bw, m.Factor)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("detector: save: %w", err)
	}
	return nil
}

// writeFloats writes v little-endian, a chunk at a time (errors surface at
// the writer's Flush).
func writeFloats(bw *bufio.Writer, v []float32) {
	buf := make([]byte, 4*min(len(v), readChunk))
	for len(v) > 0 {
		k := min(len(v), readChunk)
		for i, f := range v[:k] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(f))
		}
		bw.Write(buf[:4*k])
		v = v[k:]
	}
}

// SaveFile writes the model to path atomically.
func (m *PaDiM) SaveFile(path string, meta Meta) error {
	if err := atomicfile.WriteFile(path, func(w io.Writer) error { return m.Save(w, meta) }); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadPaDiM reads a model written by PaDiM.Save, checking the magic string,
// the version and every size; it fails (never panics) on a corrupt or
// truncated file, allocating no more than it has read unless r is a
// regular file (it has a Stat method) of exactly the size the header
// claims.
func LoadPaDiM(r io.Reader) (*PaDiM, Meta, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var h padimHeader
	pre, err := readHeader(br, padimMagic, "softpatch PaDiM model", &h)
	if err != nil {
		return nil, Meta{}, err
	}
	if h.Positions <= 0 || h.Dim <= 0 || h.Dim > 1<<14 || h.Positions > maxValues/(h.Dim+triangle(h.Dim)) || h.Images < 2 {
		return nil, Meta{}, fmt.Errorf("detector: load: bad PaDiM sizes: %d positions x %d dims from %d images", h.Positions, h.Dim, h.Images)
	}
	// From a file of exactly the size the header claims, the arrays are
	// allocated at once; from anything else they grow as they are read.
	capacity := readChunk
	if st, ok := r.(interface{ Stat() (os.FileInfo, error) }); ok {
		want := pre + PaDiMBytes(h.Positions, h.Dim)
		if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() {
			if fi.Size() != want {
				return nil, Meta{}, fmt.Errorf("detector: load: the file has %d bytes, its header's sizes need %d", fi.Size(), want)
			}
			capacity = math.MaxInt
		}
	}
	m := &PaDiM{Positions: h.Positions, Dim: h.Dim, Images: h.Images, Ridge: h.Ridge}
	if m.Mean, err = readN(br, h.Positions*h.Dim, capacity, "means", math.Float32frombits); err != nil {
		return nil, Meta{}, err
	}
	if m.Factor, err = readN(br, h.Positions*triangle(h.Dim), capacity, "factors", math.Float32frombits); err != nil {
		return nil, Meta{}, err
	}
	if err := expectEOF(br, "factors"); err != nil {
		return nil, Meta{}, err
	}
	return m, h.Meta, nil
}

// LoadPaDiMFile reads the PaDiM model file at path; its errors name the
// file.
func LoadPaDiMFile(path string) (*PaDiM, Meta, error) { return loadFile(path, LoadPaDiM) }
