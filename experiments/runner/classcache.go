package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
)

// classSources serves each pipeline's features of a class from its
// classFeatures, and computes those of other pipelines.
type classSources map[*Pipeline]*classFeatures

func (cs classSources) source(p *Pipeline, label string, items []datasets.Item, batch int, fn func(lo, hi int, f detector.Features) error) error {
	if cf, ok := cs[p]; ok {
		return cf.source(label, items, batch, fn)
	}
	return p.each(label, items, batch, fn)
}

// classFeatures computes the features of a class's images once and serves
// them to every cell of the class: the training normals and every test
// image (noisy training sets draw from the test images). With a disk cache
// each image's features are looked up there first (by the image file's
// contents and the pipeline) and stored after computing, so later runs
// reuse them. They are kept in memory when they fit in max bytes; beyond
// that they are read back from the disk cache batch by batch, or computed
// per cell without one. Augmented images are always computed per cell.
// When a class's cells use two pipelines (PatchCore's and PaDiM's), each
// gets half of the bound. A cell's fitter may hold its own copy of its
// training features (up to the same bound), so a sweep can use about twice
// run.feature_memory_mib for features, plus a PaDiM model (1.9 GB at
// 224 px, detector.PaDiMBytes).
type classFeatures struct {
	p         *Pipeline
	class     *datasets.Class
	batch     int
	max       int64
	disk      *experiments.FeatureCache // nil: no disk cache
	pipeKey   string
	keys      map[string]string    // image path -> disk cache key
	feats     map[string][]float32 // image path -> features, when in memory
	positions int
}

func newClassFeatures(p *Pipeline, class *datasets.Class, batch int, max int64, disk *experiments.FeatureCache) *classFeatures {
	return &classFeatures{p: p, class: class, batch: batch, max: max, disk: disk, pipeKey: p.key}
}

// fillState is one pipeline's part of fillClass.
type fillState struct {
	cf       *classFeatures
	items    int // the class's images
	feats    map[string][]float32
	missing  map[string]bool
	inMemory bool
}

// begin looks every item up in the disk cache and returns the state with
// the items still to compute.
func (cf *classFeatures) begin(items []datasets.Item) (*fillState, []datasets.Item, error) {
	st := &fillState{cf: cf, items: len(items), feats: map[string][]float32{}, missing: map[string]bool{}, inMemory: true}
	cf.keys = map[string]string{}
	var missing []datasets.Item
	for _, it := range items {
		if cf.disk == nil {
			missing = append(missing, it)
			continue
		}
		b, err := os.ReadFile(it.Path)
		if err != nil {
			return nil, nil, err
		}
		h := sha256.Sum256(append(b, cf.pipeKey...))
		key := hex.EncodeToString(h[:])
		cf.keys[it.Path] = key
		f, pos, _, ok := cf.disk.Get(key)
		if !ok {
			missing = append(missing, it)
			continue
		}
		cf.positions = pos
		if st.inMemory && int64(len(f))*4*int64(len(items)) <= cf.max {
			st.feats[it.Path] = f
		} else {
			st.inMemory = false
		}
	}
	for _, it := range missing {
		st.missing[it.Path] = true
	}
	return st, missing, nil
}

// put stores one computed item's features [positions][dim].
func (st *fillState) put(it datasets.Item, one []float32, pos int) error {
	cf := st.cf
	cf.positions = pos
	if cf.disk != nil {
		if err := cf.disk.Put(cf.keys[it.Path], one, pos, len(one)/pos); err != nil {
			return err
		}
	}
	if st.inMemory && int64(len(one))*4*int64(st.items) <= cf.max {
		st.feats[it.Path] = append([]float32(nil), one...)
	} else {
		st.inMemory = false
	}
	return nil
}

// useless reports whether computing more features serves this pipeline
// nothing: they are neither kept nor cached.
func (st *fillState) useless() bool { return !st.inMemory && st.cf.disk == nil }

// finish trims the disk cache and keeps the features in memory when they
// all fit.
func (st *fillState) finish() error {
	cf := st.cf
	if cf.disk != nil {
		if err := cf.disk.Trim(); err != nil {
			return err
		}
	}
	if st.inMemory {
		cf.feats = st.feats
	} else {
		slog.Info("class features exceed their share of run.feature_memory_mib: read per cell", "class", cf.class.Name,
			"layers", cf.p.spec.Layers, "disk cache", cf.disk != nil)
	}
	return nil
}

// fillClass computes (or finds in the disk cache) every image's features
// of the class once for each of cfs (pipelines on one backbone: one
// forward pass per image serves them all).
func fillClass(cfs []*classFeatures) error {
	if len(cfs) == 0 {
		return nil
	}
	class := cfs[0].class
	items := append(append([]datasets.Item{}, class.Train...), class.Test...)
	states := make([]*fillState, len(cfs))
	pipes := make([]*Pipeline, len(cfs))
	var union []datasets.Item
	seen := map[string]bool{}
	for i, cf := range cfs {
		st, missing, err := cf.begin(items)
		if err != nil {
			return err
		}
		states[i], pipes[i] = st, cf.p
		for _, it := range missing {
			if !seen[it.Path] {
				seen[it.Path] = true
				union = append(union, it)
			}
		}
	}
	if len(union) > 0 {
		slog.Info("class features", "class", class.Name, "computed", len(union), "of", len(items), "pipelines", len(cfs))
	}
	err := eachOf(pipes, "features "+class.Name, union, cfs[0].batch, func(lo, hi int, f []detector.Features) error {
		stop := true
		for i, st := range states {
			per := f[i].Positions * f[i].Dim
			for j, it := range union[lo:hi] {
				if st.missing[it.Path] {
					if err := st.put(it, f[i].Data[j*per:(j+1)*per], f[i].Positions); err != nil {
						return err
					}
				}
			}
			stop = stop && st.useless()
		}
		if stop {
			return errTooBig
		}
		return nil
	})
	if err != nil && err != errTooBig {
		return err
	}
	for _, st := range states {
		if err := st.finish(); err != nil {
			return err
		}
	}
	return nil
}

var errTooBig = errors.New("class features too big to keep")

// source is a featureSource serving the class's features from memory or
// from the disk cache, and computing them when those do not have them all.
// Augmented images (the published noise augmentation, resampled noise
// copies) are computed for the call, before the batches are served, and
// the others come from the class's features.
func (cf *classFeatures) source(label string, items []datasets.Item, batch int, fn func(lo, hi int, f detector.Features) error) error {
	if !cf.servesAll(items) {
		return cf.p.each(label, items, batch, fn)
	}
	var aug []datasets.Item
	var at []int // aug's indices in items
	for i, it := range items {
		if it.Augment != nil {
			aug, at = append(aug, it), append(at, i)
		}
	}
	augFeats := make(map[int][]float32, len(aug))
	if len(aug) > 0 {
		err := cf.p.each(label+" (augmented)", aug, batch, func(lo, hi int, f detector.Features) error {
			per := f.Positions * f.Dim
			for j := lo; j < hi; j++ {
				augFeats[at[j]] = slices.Clone(f.Data[(j-lo)*per : (j-lo+1)*per])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return serve(len(items), batch, cf.positions, func(i int) ([]float32, error) {
		if f, ok := augFeats[i]; ok {
			return f, nil
		}
		if f, ok := cf.feats[items[i].Path]; ok {
			return f, nil
		}
		if f, _, _, ok := cf.disk.Get(cf.keys[items[i].Path]); ok {
			return f, nil
		}
		// Gone from the disk cache since fill (trimmed or damaged by
		// another run): compute this one again.
		return cf.computeOne(items[i])
	}, fn)
}

// serve calls fn with the features of n held images, batch at a time,
// each image's [positions][dim] features from get.
func serve(n, batch, positions int, get func(i int) ([]float32, error), fn func(lo, hi int, f detector.Features) error) error {
	var buf []float32
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		buf = buf[:0]
		for i := lo; i < hi; i++ {
			f, err := get(i)
			if err != nil {
				return err
			}
			buf = append(buf, f...)
		}
		if err := fn(lo, hi, detector.Features{Data: buf, N: hi - lo, Positions: positions, Dim: len(buf) / ((hi - lo) * positions)}); err != nil {
			return err
		}
	}
	return nil
}

// servesAll reports whether every item that is not augmented is served
// without computing: in memory or, when the class is not kept in memory,
// known to the disk cache.
func (cf *classFeatures) servesAll(items []datasets.Item) bool {
	for _, it := range items {
		if it.Augment != nil {
			continue
		}
		if cf.feats != nil {
			if _, ok := cf.feats[it.Path]; !ok {
				return false
			}
		} else if _, ok := cf.keys[it.Path]; !ok || cf.disk == nil {
			return false
		}
	}
	return true
}

// computeOne computes one image's features and stores them in the disk
// cache.
func (cf *classFeatures) computeOne(it datasets.Item) ([]float32, error) {
	var out []float32
	err := cf.p.each("features "+filepath.Base(it.Path), []datasets.Item{it}, 1, func(_, _ int, f detector.Features) error {
		out = append([]float32(nil), f.Data...)
		return cf.disk.Put(cf.keys[it.Path], out, f.Positions, f.Dim)
	})
	return out, err
}
