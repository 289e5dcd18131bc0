package cflow

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// store holds the training features of n images, per values each: in
// memory up to a bound, beyond it in a temporary file. Training reads
// them back an image at a time, in any order, once per sub-epoch.
type store struct {
	n, per int
	added  int
	mem    []float32
	file   *os.File
	buf    []byte
}

// newStore returns a store for n images of per values, in memory when
// they fit in maxMemory bytes (0: no bound), else in a temporary file in
// dir ("" for os.TempDir()).
func newStore(n, per int, maxMemory int64, dir string) (*store, error) {
	s := &store{n: n, per: per}
	if maxMemory == 0 || int64(n)*int64(per)*4 <= maxMemory {
		s.mem = make([]float32, 0, n*per)
		return s, nil
	}
	f, err := os.CreateTemp(dir, "softpatch-cflow-*.f32")
	if err != nil {
		return nil, fmt.Errorf("cflow: training features: %w", err)
	}
	s.file = f
	return s, nil
}

// Add takes the features [nImages][per] of the next images.
func (s *store) Add(feats []float32, nImages int) error {
	if len(feats) != nImages*s.per || s.added+nImages > s.n {
		return fmt.Errorf("cflow: %d values of %d images after %d of %d images of %d values", len(feats), nImages, s.added, s.n, s.per)
	}
	s.added += nImages
	if s.file == nil {
		s.mem = append(s.mem, feats...)
		return nil
	}
	s.buf = s.buf[:0]
	for _, v := range feats {
		s.buf = binary.LittleEndian.AppendUint32(s.buf, math.Float32bits(v))
	}
	if _, err := s.file.Write(s.buf); err != nil {
		return fmt.Errorf("cflow: spilling training features to %s: %w", s.file.Name(), err)
	}
	return nil
}

// Spilled reports whether the features went to a temporary file.
func (s *store) Spilled() bool { return s.file != nil }

// image copies image i's values into dst [per].
func (s *store) image(dst []float32, i int) error {
	if s.file == nil {
		copy(dst, s.mem[i*s.per:(i+1)*s.per])
		return nil
	}
	if cap(s.buf) < 4*s.per {
		s.buf = make([]byte, 4*s.per)
	}
	b := s.buf[:4*s.per]
	if n, err := s.file.ReadAt(b, int64(i)*int64(len(b))); n < len(b) {
		return fmt.Errorf("cflow: reading training image %d back from %s: %w", i, s.file.Name(), cmp.Or(err, io.ErrUnexpectedEOF))
	}
	for j := range dst[:s.per] {
		dst[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
	}
	return nil
}

// Close frees the memory and removes the temporary file.
func (s *store) Close() error {
	s.mem = nil
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	if e := os.Remove(name); err == nil {
		err = e
	}
	s.file = nil
	return err
}
