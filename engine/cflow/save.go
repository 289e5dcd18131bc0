package cflow

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/softpatch/softpatch/engine/detector"
)

// Model file layout (integers little-endian):
//
//	magic    "SOFTPATCH-CFLOW\n" (16 bytes)
//	version  uint32 (1)
//	hlen     uint32, then hlen bytes of JSON (fileHeader)
//	per decoder, per block: W1, B1, W2, B2, Scale, Offset, Rot as float32
//
// and nothing after. The Adam state is not kept: a loaded model scores,
// it does not train on.
const (
	magic       = "SOFTPATCH-CFLOW\n"
	fileVersion = 1
	maxHeader   = 1 << 20
	// maxChannels bounds a decoder's channels and condition dims, so that
	// a corrupt header cannot ask for absurd allocations.
	maxChannels = 1 << 14
)

// fileHeader is a model file's JSON header.
type fileHeader struct {
	Meta    detector.Meta `json:"meta"`
	Options *Options      `json:"options"`
	Layout  []Layer       `json:"layout"`
	Width   int           `json:"width"`
}

// Save writes the model and meta to w.
func (m *Model) Save(w io.Writer, meta detector.Meta) error {
	h, err := json.Marshal(fileHeader{Meta: meta, Options: m.Options, Layout: m.Layout, Width: m.Width})
	if err != nil {
		return fmt.Errorf("cflow: save: %w", err)
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(magic)
	binary.Write(bw, binary.LittleEndian, [2]uint32{fileVersion, uint32(len(h))})
	bw.Write(h)
	var b [4]byte
	for _, d := range m.Decoders {
		for _, blk := range d.Blocks {
			for _, v := range blockParams(&blk) {
				for _, x := range *v {
					binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
					bw.Write(b[:])
				}
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cflow: save: %w", err)
	}
	return nil
}

// blockParams lists a block's parameters in the file's order.
func blockParams(b *Block) []*[]float32 {
	return []*[]float32{&b.W1, &b.B1, &b.W2, &b.B2, &b.Scale, &b.Offset, &b.Rot}
}

// load reads a model file (detector.RegisterFormat).
func load(r io.Reader) (detector.Detector, detector.Meta, error) {
	m, meta, err := Load(r)
	if err != nil {
		return nil, meta, err
	}
	f := Fibers{Layers: m.Options.Layers, Width: m.Width}
	for _, l := range m.Layout {
		f.Channels = append(f.Channels, l.C)
	}
	return &cflowDetector{opts: m.Options, m: m, fibers: f}, meta, nil
}

// Load reads a model written by Save.
func Load(r io.Reader) (*Model, detector.Meta, error) {
	br := bufio.NewReader(r)
	var pre [len(magic) + 8]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil || string(pre[:len(magic)]) != magic {
		return nil, detector.Meta{}, errors.New("cflow: load: not a CFLOW model file (bad magic or truncated)")
	}
	if v := binary.LittleEndian.Uint32(pre[len(magic):]); v != fileVersion {
		return nil, detector.Meta{}, fmt.Errorf("cflow: load: model file version %d, this build reads %d", v, fileVersion)
	}
	hlen := binary.LittleEndian.Uint32(pre[len(magic)+4:])
	if hlen > maxHeader {
		return nil, detector.Meta{}, fmt.Errorf("cflow: load: a header of %d bytes (corrupt file?)", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, detector.Meta{}, fmt.Errorf("cflow: load: header: %w", err)
	}
	var h fileHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, detector.Meta{}, fmt.Errorf("cflow: load: header: %w", err)
	}
	if h.Options == nil {
		return nil, h.Meta, errors.New("cflow: load: the header has no options")
	}
	if err := h.Options.Check(); err != nil {
		return nil, h.Meta, fmt.Errorf("cflow: load: %w", err)
	}
	if h.Meta.Embedding != embedding || !slices.Equal(h.Meta.Layers, h.Options.Layers) || len(h.Layout) != len(h.Options.Layers) {
		return nil, h.Meta, fmt.Errorf("cflow: load: the model records embedding %q of layers %v and %d decoders for layers %v",
			h.Meta.Embedding, h.Meta.Layers, len(h.Layout), h.Options.Layers)
	}
	m := &Model{Options: h.Options, Layout: h.Layout, Width: h.Width}
	for i, l := range h.Layout {
		if l.Name != h.Options.Layers[i] || l.C < 2 || l.C > maxChannels || l.H < 1 || l.W < 1 || l.H*l.W > maxChannels*maxChannels ||
			h.Width < 1 || l.C%h.Width != 0 || h.Options.ConditionDim > maxChannels || h.Options.CouplingBlocks > 1024 {
			return nil, h.Meta, fmt.Errorf("cflow: load: layer %d of the layout is %+v, stored %d wide", i, l, h.Width)
		}
		d := &Decoder{C: l.C, P: h.Options.ConditionDim, Blocks: make([]Block, h.Options.CouplingBlocks)}
		c1, c2 := d.Split()
		in, hid := c1+d.P, d.Hidden()
		for k := range d.Blocks {
			for j, n := range []int{hid * in, hid, 2 * c2 * hid, 2 * c2, d.C, d.C, d.C * d.C} {
				v, err := readFloats(br, n)
				if err != nil {
					return nil, h.Meta, fmt.Errorf("cflow: load: %s block %d: %w", l.Name, k, err)
				}
				*blockParams(&d.Blocks[k])[j] = v
			}
		}
		m.Decoders = append(m.Decoders, d)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, h.Meta, errors.New("cflow: load: data after the last decoder (corrupt file?)")
	}
	return m, h.Meta, nil
}

// readFloats reads n little-endian float32 values, in chunks, so that a
// truncated file fails before a huge allocation.
func readFloats(r io.Reader, n int) ([]float32, error) {
	out := make([]float32, 0, min(n, 1<<18))
	var b [4 << 10]byte
	for len(out) < n {
		k := min(n-len(out), len(b)/4)
		if _, err := io.ReadFull(r, b[:4*k]); err != nil {
			return nil, fmt.Errorf("truncated after %d of %d values", len(out), n)
		}
		for j := range k {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:])))
		}
	}
	return out, nil
}
