package detector

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"unsafe"

	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/denoise"
)

// FitterOptions bounds the memory of a Fitter.
type FitterOptions struct {
	// MaxMemory is the most bytes of full-dimensional training features a
	// Fitter keeps in memory: when all of them would take more, they are
	// written to a temporary file as they come and only the selected bank
	// entries are read back. 0 means no bound.
	MaxMemory int64
	// TempDir is the directory of that temporary file ("" means
	// os.TempDir()).
	TempDir string
	// Accelerator, when set, runs SoftPatch's noise discriminator and the
	// coreset's selection loop on another device (a GPU: cuda.Device).
	Accelerator Accelerator
	// Progress, when set, is called as the slow stage of fitting advances:
	// after every coreset selection (see coreset.Greedy.Progress), after
	// every PaDiM position.
	Progress func(done, total int)
	// Draws, when set, replays its set draws and receives the ones the
	// Fitter makes (see Draws).
	Draws *Draws
}

// Fitter fits a Model from training features given a few images at a time,
// so that a large class never needs all its features in memory at once
// (docs/method.md#4-patchcore and docs/method.md#5-softpatch). Add projects
// each batch to the 128 dimensions that the discriminator and the coreset
// selection work on and stores the full-dimensional features (in memory or
// in a temporary file, see FitterOptions); Fit gathers the selected entries
// afterwards.
//
// A Fitter holds, for nImages x positions patches: 1024 bytes a patch of
// projections for SoftPatch (one 128-d float32 projection each for the
// discriminator, released by Discriminate, and for the coreset), half that
// for PatchCore and none for PatchCore-random, plus 4*dim bytes a patch of
// full features when they fit in FitterOptions.MaxMemory. The selection is
// the same as Fit's on all the features at once.
type Fitter struct {
	cfg                   Config
	images, positions     int
	dim, added            int
	coreProj, discProj    []float32 // [dim][128]; nil when not drawn
	coreX, discX          []float32 // [images*positions][128]
	store                 featureStore
	progress              func(done, total int)
	accel                 Accelerator
	draws                 *Draws
	m                     *Model
	scores, weights       []float32
	discriminated, closed bool
	// failed is the first error of Add, Discriminate or Fit: the Fitter's
	// state is then unknown, and every later call returns it.
	failed error
}

// NewFitter checks cfg and returns a Fitter for nImages training images of
// positions patches of dimension dim each. Close releases its temporary
// file on paths that do not reach Fit.
func NewFitter(cfg Config, nImages, positions, dim int, opts FitterOptions) (*Fitter, error) {
	if nImages <= 0 || positions <= 0 || dim <= 0 {
		return nil, fmt.Errorf("detector: cannot fit %d images x %d positions x %d dims", nImages, positions, dim)
	}
	if !(cfg.Coreset > 0 && cfg.Coreset < 1) {
		return nil, fmt.Errorf("detector: coreset ratio %v not in (0, 1)", cfg.Coreset)
	}
	n := nImages * positions
	if opts.Draws == nil {
		opts.Draws = &Draws{}
	}
	f := &Fitter{cfg: cfg, images: nImages, positions: positions, dim: dim, progress: opts.Progress, accel: opts.Accelerator, draws: opts.Draws,
		m: &Model{Config: cfg, D: dim, CoresetSeed: cfg.Seed},
		store: featureStore{dim: dim, dir: opts.TempDir, total: n,
			spill: opts.MaxMemory > 0 && int64(n)*int64(dim)*4 > opts.MaxMemory}}
	if cfg.Random && cfg.softPatch() {
		return nil, fmt.Errorf("detector: a random bank (patchcore-random) takes no discriminator, got %s", cfg.Discriminator)
	}
	if cfg.softPatch() {
		if !(cfg.Threshold >= 0 && cfg.Threshold < 1) {
			return nil, fmt.Errorf("detector: threshold %v not in [0, 1)", cfg.Threshold)
		}
		if nImages < 2 {
			return nil, fmt.Errorf("detector: softpatch's discriminator compares images: it needs at least 2 training images, got %d", nImages)
		}
		if cfg.LOFK < 0 {
			return nil, fmt.Errorf("detector: LOF neighbours %d is negative", cfg.LOFK)
		}
		f.m.DiscriminatorSeed = discriminatorSeed(cfg.Seed)
		var err error
		if f.discProj, err = f.projection("discriminator_projection", &f.draws.DiscriminatorProjection, f.m.DiscriminatorSeed); err != nil {
			return nil, err
		}
		f.discX = make([]float32, n*projDim)
	}
	if !cfg.Random {
		var err error
		if f.coreProj, err = f.projection("coreset_projection", &f.draws.CoresetProjection, cfg.Seed); err != nil {
			return nil, err
		}
		f.coreX = make([]float32, n*coreset.DefaultDim)
	}
	return f, nil
}

// projection returns the [dim][128] projection of the features: the
// replayed weight *w when set, else one drawn from seed and recorded in
// *w; nil when the features have 128 dimensions.
func (f *Fitter) projection(key string, w *[]float32, seed uint64) ([]float32, error) {
	if *w != nil {
		return replayProjection(key, *w, f.dim, projDim)
	}
	if f.dim == projDim {
		return nil, nil
	}
	p := coreset.NewProjection(f.dim, projDim, seed)
	*w = transpose(p, f.dim, projDim)
	return p, nil
}

// Add takes the features [nImages][positions][dim] of the next nImages
// training images. It does not keep feats.
func (f *Fitter) Add(feats []float32, nImages int) error { return f.add(feats, nImages, true) }

// add is Add; with copyFeats false an in-memory store keeps feats itself
// (Fit's single call, which owns feats for the Fitter's lifetime).
func (f *Fitter) add(feats []float32, nImages int, copyFeats bool) error {
	if f.failed != nil {
		return f.failed
	}
	if f.closed || f.discriminated {
		return errors.New("detector: Add after Discriminate, Fit or Close")
	}
	if nImages <= 0 || len(feats) != nImages*f.positions*f.dim {
		return fmt.Errorf("detector: %d features for %d images x %d positions x %d dims", len(feats), nImages, f.positions, f.dim)
	}
	if f.added+nImages > f.images {
		return fmt.Errorf("detector: %d images added to a Fitter for %d", f.added+nImages, f.images)
	}
	lo, hi := f.added*f.positions, (f.added+nImages)*f.positions
	project(f.coreX, feats, lo, hi, f.dim, f.coreProj)
	project(f.discX, feats, lo, hi, f.dim, f.discProj)
	if err := f.store.add(feats, !copyFeats); err != nil {
		f.failed = err // a partial write leaves the spill file's layout unknown
		return err
	}
	f.added += nImages
	return nil
}

// project writes rows [lo, hi) of x (the projections, [rows][128]) from
// feats [hi-lo][dim]; a nil proj copies (dim is 128 then).
func project(x, feats []float32, lo, hi, dim int, proj []float32) {
	if x == nil {
		return
	}
	dst := x[lo*projDim : hi*projDim]
	if proj == nil {
		copy(dst, feats)
		return
	}
	coreset.Project(dst, feats, hi-lo, dim, proj, projDim)
}

// Discriminate runs SoftPatch's noise discriminator on all added images
// (docs/method.md#52-projection-and-position-groups to
// docs/method.md#54-threshold) and releases its projections; it does nothing
// for PatchCore. Fit calls it when it has not been called; calling it first
// lets a caller time the two stages apart.
func (f *Fitter) Discriminate() error {
	if f.failed != nil {
		return f.failed
	}
	if f.closed {
		return errors.New("detector: Discriminate after Fit or Close")
	}
	if f.discriminated {
		return nil
	}
	if f.added != f.images {
		return fmt.Errorf("detector: %d of %d training images added", f.added, f.images)
	}
	if !f.cfg.softPatch() {
		f.discriminated = true
		return nil
	}
	k := f.cfg.LOFK
	if k == 0 {
		k = denoise.DefaultK
	}
	var scores []float32
	var err error
	if f.accel != nil {
		scores, err = f.accel.NoiseScores(f.cfg.Discriminator, f.discX, f.images, f.positions, projDim, k)
	} else {
		scores, err = denoise.Scores(f.cfg.Discriminator, f.discX, f.images, f.positions, projDim, k)
	}
	if err == nil && len(scores) != f.images*f.positions {
		err = fmt.Errorf("detector: the discriminator returned %d scores for %d images x %d positions", len(scores), f.images, f.positions)
	}
	if err != nil {
		f.failed = err
		return err
	}
	f.discriminated = true
	f.discX = nil
	q := float32(Quantile(scores, 1-f.cfg.Threshold))
	f.m.ScoreThreshold = float64(q)
	f.weights = make([]float32, len(scores))
	for i, s := range scores {
		if s > q {
			f.m.Excluded++
		} else {
			f.weights[i] = 1
		}
	}
	f.scores = scores
	return nil
}

// Fit selects the memory bank, gathers its full-dimensional entries and
// returns the model; the Fitter is closed afterwards.
func (f *Fitter) Fit() (*Model, error) {
	defer f.Close()
	if err := f.Discriminate(); err != nil {
		return nil, err
	}
	m, cfg := f.m, f.cfg
	n := f.images * f.positions
	g := coreset.Greedy{Ratio: cfg.Coreset, Seed: cfg.Seed, Progress: f.progress}
	if f.accel != nil {
		g.Steps = f.accel.CoresetSteps
	}
	var err error
	d := f.draws
	switch {
	case cfg.Random:
		if d.RandomSubset == nil {
			d.RandomSubset = coreset.Random(n, g.Picks(n), cfg.Seed)
		} else if err := checkIndices("random_subset", d.RandomSubset, n, g.Picks(n)); err != nil {
			return nil, err
		}
		m.Indices = slices.Clone(d.RandomSubset) // the draws keep their own
	case !cfg.softPatch():
		if g.StartPoints, err = f.startPoints(coreset.PatchCoreStarts); err != nil {
			return nil, err
		}
		m.Indices, err = g.SelectProjected(f.coreX, n, coreset.DefaultDim)
	default:
		if g.StartPoints, err = f.startPoints(coreset.SoftPatchStarts); err != nil {
			return nil, err
		}
		g.Weights = f.weights
		g.StrictExclusion = cfg.StrictExclusion
		m.Indices, err = g.SelectProjected(f.coreX, n, coreset.DefaultDim)
		if err == nil && cfg.SoftWeight {
			m.Weights = make([]float32, len(m.Indices))
			for j, i := range m.Indices {
				m.Weights[j] = max(f.scores[i], 0) // torch clamp(min=0)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	f.coreX = nil
	if len(m.Indices) == 0 {
		return nil, fmt.Errorf("detector: a coreset of %v of %d patches is empty", cfg.Coreset, n)
	}
	m.N = len(m.Indices)
	m.Bank = make([]float32, m.N*f.dim)
	if err := f.store.gather(m.Bank, m.Indices); err != nil {
		return nil, err
	}
	return m, nil
}

// startPoints returns the coreset's start points: the replayed ones, or
// starts drawn from the seed (as coreset.Greedy draws them), recorded.
func (f *Fitter) startPoints(starts int) ([]int, error) {
	n := f.images * f.positions
	d := f.draws
	if d.CoresetStartPoints == nil {
		d.CoresetStartPoints = coreset.DrawStartPoints(n, starts, f.cfg.Seed)
		return d.CoresetStartPoints, nil
	}
	return d.CoresetStartPoints, checkIndices("coreset_start_points", d.CoresetStartPoints, n, -1)
}

// Close releases the Fitter's memory and removes its temporary file, if
// any. It is safe to call more than once.
func (f *Fitter) Close() error {
	f.closed = true
	f.coreX, f.discX, f.scores, f.weights = nil, nil, nil, nil
	return f.store.close()
}

// Spilled reports whether the full-dimensional features went to a
// temporary file.
func (f *Fitter) Spilled() bool { return f.store.spill }

// featureStore keeps full-dimensional rows of dim float32 values, in
// memory or, with spill set, in a temporary file in dir.
type featureStore struct {
	dim      int
	total    int // rows expected: the in-memory store is allocated once
	spill    bool
	dir      string
	mem      []float32
	file     *os.File
	unlinked bool
	rows     int
}

// add appends rows; with keep set, an empty in-memory store takes rows
// itself instead of a copy (its owner hands them over for good).
func (s *featureStore) add(rows []float32, keep bool) error {
	if keep && s.rows == 0 && !s.spill {
		s.mem, s.rows = rows, len(rows)/s.dim
		return nil
	}
	return s.append(rows)
}

func (s *featureStore) append(rows []float32) error {
	if !s.spill {
		if s.mem == nil {
			// One allocation: growing by append would copy the features
			// repeatedly, and the runtime cannot preempt those copies.
			s.mem = make([]float32, 0, s.total*s.dim)
		}
		// In pieces: one copy of a large batch cannot be preempted, and the
		// collector spins (signals, yields) until it ends.
		s.rows += len(rows) / s.dim
		for len(rows) > 0 {
			k := min(len(rows), 1<<18)
			s.mem = append(s.mem, rows[:k]...)
			rows = rows[k:]
		}
		return nil
	}
	if s.file == nil {
		if s.rows > 0 {
			return errors.New("detector: spill file closed")
		}
		f, err := os.CreateTemp(s.dir, "softpatch-features-*.f32")
		if err != nil {
			return fmt.Errorf("detector: spilling training features: %w", err)
		}
		// Unlinked at once where the system allows it (the open file stays
		// usable), so that not even a killed process leaves it behind.
		s.file, s.unlinked = f, os.Remove(f.Name()) == nil
	}
	if err := s.write(rows); err != nil {
		return err
	}
	s.rows += len(rows) / s.dim
	return nil
}

// write appends v to the temporary file in the machine's byte order (the
// file is read back only by this process).
func (s *featureStore) write(v []float32) error {
	if len(v) == 0 {
		return nil
	}
	if _, err := s.file.Write(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))); err != nil {
		return fmt.Errorf("detector: spilling training features to %s: %w", s.file.Name(), err)
	}
	return nil
}

// gather copies rows idx into dst [len(idx)][dim], reading the file in
// ascending row order.
func (s *featureStore) gather(dst []float32, idx []int) error {
	d := s.dim
	for _, i := range idx {
		if i < 0 || i >= s.rows {
			return fmt.Errorf("detector: feature row %d out of %d", i, s.rows)
		}
	}
	if !s.spill {
		for j, i := range idx {
			copy(dst[j*d:(j+1)*d], s.mem[i*d:(i+1)*d])
		}
		return nil
	}
	order := make([]int, len(idx))
	for j := range order {
		order[j] = j
	}
	slices.SortFunc(order, func(a, b int) int { return idx[a] - idx[b] })
	for _, j := range order {
		row := dst[j*d : (j+1)*d]
		b := unsafe.Slice((*byte)(unsafe.Pointer(&row[0])), 4*d)
		if _, err := s.file.ReadAt(b, int64(idx[j])*int64(4*d)); err != nil {
			return fmt.Errorf("detector: reading spilled features from %s: %w", s.file.Name(), err)
		}
	}
	return nil
}

// positions copies positions [p0, p1) of every one of images images
// (rows i*perImage+p0 .. i*perImage+p1-1) into dst
// [images][p1-p0][dim].
func (s *featureStore) positions(dst []float32, images, perImage, p0, p1 int) error {
	d, span := s.dim, p1-p0
	if images*perImage > s.rows || p0 < 0 || p1 > perImage || p0 >= p1 || len(dst) < images*span*d {
		return fmt.Errorf("detector: positions [%d, %d) of %d images x %d positions from a store of %d rows", p0, p1, images, perImage, s.rows)
	}
	for i := 0; i < images; i++ {
		out := dst[i*span*d : (i+1)*span*d]
		off := (i*perImage + p0) * d
		if !s.spill {
			copy(out, s.mem[off:off+span*d])
			continue
		}
		b := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*len(out))
		if _, err := s.file.ReadAt(b, int64(off)*4); err != nil {
			return fmt.Errorf("detector: reading spilled features from %s: %w", s.file.Name(), err)
		}
	}
	return nil
}

func (s *featureStore) close() error {
	s.mem = nil
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	if !s.unlinked {
		if rerr := os.Remove(name); err == nil {
			err = rerr
		}
	}
	s.file = nil
	return err
}
