package detector

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/softpatch/softpatch/engine/compute"
)

// DefaultRidge is what PaDiM adds to the diagonal of every covariance
// (the published 0.01 * I).
const DefaultRidge = 0.01

// PaDiM is a fitted PaDiM detector: for each of Positions patch positions,
// the mean of the training features and the inverse Cholesky factor of
// their covariance.
//
// With S_p = cov_p + Ridge*I = L_p L_p^T (Cholesky), the model keeps
// W_p = L_p^-1, so the squared Mahalanobis distance of a feature x is
// (x-m)^T S_p^-1 (x-m) = |W_p (x-m)|^2. Keeping the factor instead of
// S_p^-1 halves the memory (a triangle) and keeps float32 scores within
// about 1e-6 of the float64 reference where a float32 S_p^-1 loses about
// 1e-4 (the quadratic form cancels; the sum of squares does not).
type PaDiM struct {
	// Positions is the number of patch positions (row-major grid) and Dim
	// the feature dimension (the channels kept).
	Positions, Dim int
	// Images is the number of training images fitted on.
	Images int
	// Ridge is the value added to every covariance's diagonal.
	Ridge float64
	// Mean is [Positions][Dim]: the training features' mean per position.
	Mean []float32
	// Factor is [Positions][Dim*(Dim+1)/2]: the lower triangle of W_p,
	// row by row (row i holds W_p[i][0..i]).
	Factor []float32
}

// triangle is the number of values in the lower triangle of a d x d matrix.
func triangle(d int) int { return d * (d + 1) / 2 }

// PaDiMBytes is a PaDiM model's size in memory: 4*Positions*(Dim + Dim*(Dim+1)/2)
// bytes (1.9 GB for 3136 positions of 550 channels, PaDiM at 224 px).
func PaDiMBytes(positions, dim int) int64 {
	return 4 * int64(positions) * int64(dim+triangle(dim))
}

// PaDiMFitter fits a PaDiM model from training features given a few images
// at a time, like Fitter: the features are kept in memory, or in a
// temporary file when they exceed FitterOptions.MaxMemory, until Fit reads
// them back position by position.
type PaDiMFitter struct {
	images, positions, dim, added int
	ridge                         float64
	store                         featureStore
	progress                      func(done, total int)
	closed                        bool
	failed                        error
}

// NewPaDiMFitter returns a PaDiMFitter for nImages (at least 2: a
// covariance divides by nImages-1) training images of positions features
// of dimension dim each. Close releases its temporary file on paths that
// do not reach Fit.
func NewPaDiMFitter(nImages, positions, dim int, opts FitterOptions) (*PaDiMFitter, error) {
	if nImages < 2 || positions <= 0 || dim <= 0 {
		return nil, fmt.Errorf("detector: padim needs at least 2 training images and positive sizes, got %d images x %d positions x %d dims", nImages, positions, dim)
	}
	n := nImages * positions
	return &PaDiMFitter{images: nImages, positions: positions, dim: dim, ridge: DefaultRidge, progress: opts.Progress,
		store: featureStore{dim: dim, dir: opts.TempDir, total: n, spill: opts.MaxMemory > 0 && int64(n)*int64(dim)*4 > opts.MaxMemory}}, nil
}

// Add takes the features [nImages][positions][dim] of the next nImages
// training images. It does not keep feats.
func (f *PaDiMFitter) Add(feats []float32, nImages int) error { return f.add(feats, nImages, true) }

// add is Add; with copyFeats false an in-memory store keeps feats itself
// (FitPaDiM's single call, which owns feats for the fit).
func (f *PaDiMFitter) add(feats []float32, nImages int, copyFeats bool) error {
	if f.failed != nil {
		return f.failed
	}
	if f.closed {
		return errors.New("detector: Add after Fit or Close")
	}
	if nImages <= 0 || len(feats) != nImages*f.positions*f.dim {
		return fmt.Errorf("detector: %d features for %d images x %d positions x %d dims", len(feats), nImages, f.positions, f.dim)
	}
	if f.added+nImages > f.images {
		return fmt.Errorf("detector: %d images added to a PaDiMFitter for %d", f.added+nImages, f.images)
	}
	if err := f.store.add(feats, !copyFeats); err != nil {
		f.failed = err
		return err
	}
	f.added += nImages
	return nil
}

// Spilled reports whether the features went to a temporary file.
func (f *PaDiMFitter) Spilled() bool { return f.store.spill }

// Close releases the features and the temporary file, if any. It is safe
// to call more than once.
func (f *PaDiMFitter) Close() error {
	f.closed = true
	return f.store.close()
}

// padimChunk is the number of positions a worker reads and fits at a time.
const padimChunk = 8

// Fit computes every position's mean and inverse Cholesky factor, in
// parallel over positions (compute.Threads() workers, each running
// single-threaded LAPACK), and returns the model; the PaDiMFitter is
// closed afterwards.
//
// Per position, as the published code (np.cov on the float32 features,
// in float64): mean m = sum(x)/N in float64 (stored as float32),
// S = sum((x-m)(x-m)^T)/(N-1) + Ridge*I in float64 (compute.Dsyrk),
// W = L^-1 (compute.InverseCholesky) rounded to float32.
func (f *PaDiMFitter) Fit() (*PaDiM, error) {
	defer f.Close()
	if f.failed != nil {
		return nil, f.failed
	}
	if f.closed {
		return nil, errors.New("detector: Fit after Fit or Close")
	}
	if f.added != f.images {
		return nil, fmt.Errorf("detector: %d of %d training images added", f.added, f.images)
	}
	n, p, d := f.images, f.positions, f.dim
	m := &PaDiM{Positions: p, Dim: d, Images: n, Ridge: f.ridge,
		Mean: make([]float32, p*d), Factor: make([]float32, p*triangle(d))}
	chunks := (p + padimChunk - 1) / padimChunk
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		done     int
		wg       sync.WaitGroup
	)
	for range min(compute.Threads(), chunks) {
		wg.Go(func() {
			buf := make([]float32, n*padimChunk*d)
			x := make([]float64, n*d)
			s := make([]float64, d*d)
			mean := make([]float64, d)
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				p0, p1 := c*padimChunk, min(p, (c+1)*padimChunk)
				err := f.store.positions(buf[:n*(p1-p0)*d], n, p, p0, p1)
				for q := p0; q < p1 && err == nil; q++ {
					err = m.fitPosition(q, buf, p1-p0, q-p0, x, s, mean)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					next.Store(int64(chunks)) // stop the others
				}
				for q := p0; q < p1 && firstErr == nil; q++ {
					done++
					if f.progress != nil {
						f.progress(done, p)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return m, nil
}

// fitPosition fits position q from buf [Images][span][Dim], where q is at
// offset k of the span; x, s and mean are scratch ([Images][Dim],
// [Dim][Dim] and [Dim] float64).
func (m *PaDiM) fitPosition(q int, buf []float32, span, k int, x, s, mean []float64) error {
	n, d := m.Images, m.Dim
	clear(mean)
	for i := 0; i < n; i++ {
		row := buf[(i*span+k)*d:][:d]
		xr := x[i*d : (i+1)*d]
		for c, v := range row {
			xr[c] = float64(v)
			mean[c] += float64(v)
		}
	}
	for c := range mean {
		mean[c] /= float64(n)
		m.Mean[q*d+c] = float32(mean[c])
	}
	for i := 0; i < n; i++ {
		xr := x[i*d : (i+1)*d]
		for c := range xr {
			xr[c] -= mean[c]
		}
	}
	compute.Dsyrk(d, n, 1/float64(n-1), x, d, 0, s, d)
	for c := 0; c < d; c++ {
		s[c*d+c] += m.Ridge
	}
	if err := compute.InverseCholesky(s, d); err != nil {
		return fmt.Errorf("detector: padim covariance at position %d: %w", q, err)
	}
	w := m.Factor[q*triangle(d):][:triangle(d)]
	for i := 0; i < d; i++ {
		row := w[triangle(i):][:i+1]
		for j := range row {
			row[j] = float32(s[i*d+j])
		}
		// LAPACK passes NaNs through: a non-finite (or overflowing)
		// training feature must not become a model of NaNs.
		if v := float64(row[i]); !(v > 0 && v <= math.MaxFloat32) {
			return fmt.Errorf("detector: padim covariance at position %d is not finite: a training feature there is NaN, infinite or huge", q)
		}
	}
	return nil
}

// FitPaDiM fits a PaDiM model on all the training features feats
// [nImages][positions][dim] at once (feats is read, not kept).
func FitPaDiM(feats []float32, nImages, positions, dim int) (*PaDiM, error) {
	f, err := NewPaDiMFitter(nImages, positions, dim, FitterOptions{})
	if err != nil {
		return nil, err
	}
	if err := f.add(feats, nImages, false); err != nil {
		f.Close()
		return nil, err
	}
	return f.Fit()
}

// check verifies the model's sizes.
func (m *PaDiM) check() error {
	if m.Positions <= 0 || m.Dim <= 0 || len(m.Mean) != m.Positions*m.Dim || len(m.Factor) != m.Positions*triangle(m.Dim) {
		return fmt.Errorf("detector: padim model has %d means and %d factor values for %d positions x %d dims",
			len(m.Mean), len(m.Factor), m.Positions, m.Dim)
	}
	return nil
}

// Score writes the Mahalanobis distances of the test features feats
// [nImages][positions][Dim] into dst [nImages][positions]:
// sqrt(|W_p (x - m_p)|^2), the difference in float32 (as the published code
// subtracts the float32 mean), the product in float32 (SGEMM), the sum of
// squares in float64. Positions are split across compute.Threads()
// goroutines (compute.ParallelFor); each position's triangle is expanded
// once per call, so a call with a few dozen images costs little more than
// the products.
func (m *PaDiM) Score(dst []float32, feats []float32, nImages, positions int) error {
	if err := m.check(); err != nil {
		return err
	}
	d := m.Dim
	if nImages < 0 || positions != m.Positions || len(feats) != nImages*positions*d || len(dst) < nImages*positions {
		return fmt.Errorf("detector: %d features and %d outputs for %d images x %d positions x %d dims (model: %d positions)",
			len(feats), len(dst), nImages, positions, d, m.Positions)
	}
	if nImages == 0 {
		return nil
	}
	compute.ParallelFor(positions, 1, func(lo, hi int) {
		w := make([]float32, d*d) // upper triangle stays 0
		diff := make([]float32, nImages*d)
		y := make([]float32, nImages*d)
		for q := lo; q < hi; q++ {
			tri := m.Factor[q*triangle(d):][:triangle(d)]
			for i := 0; i < d; i++ {
				copy(w[i*d:i*d+i+1], tri[triangle(i):triangle(i)+i+1])
			}
			mean := m.Mean[q*d : (q+1)*d]
			for i := 0; i < nImages; i++ {
				x := feats[(i*positions+q)*d:][:d]
				dr := diff[i*d : (i+1)*d]
				for c := range dr {
					dr[c] = x[c] - mean[c]
				}
			}
			compute.SgemmSerial(false, true, nImages, d, d, 1, diff, d, w, d, 0, y, d)
			for i := 0; i < nImages; i++ {
				s := 0.0
				for _, v := range y[i*d : (i+1)*d] {
					s += float64(v) * float64(v)
				}
				dst[i*positions+q] = float32(math.Sqrt(s))
			}
		}
	})
	return nil
}

// MapScore is PaDiM's image score: the maximum of the image's anomaly map
// (Map's output).
func MapScore(m []float32) float32 {
	v := float32(math.Inf(-1))
	for _, s := range m {
		v = max(v, s)
	}
	return v
}
