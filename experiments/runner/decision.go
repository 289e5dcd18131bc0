package runner

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
)

// decisionSource resolves the cell's decision source: "" when it sets no
// threshold, "validation" for auto when the class has a validation split
// of normal images, else "holdout".
func (c *Cell) decisionSource() string {
	switch s := c.Decision.Source; s {
	case "", "none":
		return ""
	case "auto":
		if len(c.Class.Validation) > 0 {
			return "validation"
		}
		return "holdout"
	default:
		return s
	}
}

// holdoutParts cuts train into parts of a seeded permutation of its
// indices (seeded by the class and the noise fold, so that every method of
// a setting holds out the same images), each sorted.
func (c *Cell) holdoutParts(n int) [][]int {
	k := c.Decision.Parts()
	key := "softpatch-decision-v1\x00" + c.Class.Name + "\x00" + strconv.Itoa(c.Noise.Fold)
	sum := sha256.Sum256([]byte(key))
	r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	perm := r.Perm(n)
	parts := make([][]int, k)
	for j := range parts {
		parts[j] = slices.Clone(perm[j*n/k : (j+1)*n/k])
		slices.Sort(parts[j])
	}
	return parts
}

// holdoutDecision sets the decision threshold from training images held
// out of fits of the cell's detector: the training set train is cut into
// Decision.Parts() parts and, for each of the first Decision.HeldOut() parts,
// the detector is fitted on the other parts and scores the held-out one
// (docs/method.md#11-decision-threshold). Its stages are prefixed
// "decision ". With fill (no class cache behind src), the training
// features are computed first as the cell's fit will read them and kept
// in memory (trainMemo) for the holdout fits and that fit; the source to
// fit with is returned (src itself without fill). Under source auto, a
// training set too small to cut gives no threshold, with a warning.
func (c *Cell) holdoutDecision(b *Backbone, o CellOptions, src source, st stages, train []datasets.Item, fill bool) (*detector.Decision, source, error) {
	k := c.Decision.Parts()
	if len(train) < k && c.Decision.Source == "auto" {
		slog.Warn("no decision threshold: too few training images to hold some out", "images", len(train), "parts", k)
		return nil, src, nil
	}
	if len(train) < k {
		return nil, src, fmt.Errorf("decision threshold: holdout %v needs at least %d training images, the cell has %d (set decision.source none, or a larger decision.holdout)",
			c.Decision.Holdout, k, len(train))
	}
	if fill {
		p, err := b.Pipeline(c.Method)
		if err != nil {
			return nil, src, err
		}
		m := &trainMemo{max: o.FeatureMemoryMiB << 20}
		t0 := time.Now()
		if err := m.fill(p, "features train", train, o.Batch); err != nil {
			return nil, src, err
		}
		st.done("features", t0)
		src = m.source
	}
	parts := c.holdoutParts(len(train))
	var scores []float32
	rounds := c.Decision.HeldOut()
	for r := range rounds {
		var fitItems, held []datasets.Item
		for j, part := range parts {
			for _, i := range part {
				if j == r {
					held = append(held, train[i])
				} else {
					fitItems = append(fitItems, train[i])
				}
			}
		}
		prefix := fmt.Sprintf("decision %d/%d ", r+1, rounds)
		s, err := func() ([]float32, error) {
			f, err := fitOn(b, c.Method, c.Params, fitItems, o.Batch, o.FeatureMemoryMiB, src, st, prefix, &detector.Draws{}, nil)
			if err != nil {
				return nil, err
			}
			defer f.close()
			return f.imageScoresOf(prefix+"held-out", held, o.Batch, src)
		}()
		if err != nil {
			return nil, src, fmt.Errorf("decision threshold: %w", err)
		}
		scores = append(scores, s...)
	}
	d, err := detector.NewDecision(scores, c.Decision.FPR, "holdout")
	if err != nil {
		return nil, src, err
	}
	d.Rounds = rounds
	slog.Info("decision threshold", "source", "holdout", "threshold", fmt.Sprintf("%.6g", d.Threshold), "fpr", d.FPR, "images", d.Images)
	return &d, src, nil
}

// validationDecision sets the decision threshold from the scores that the
// fitted detector f gives the class's validation images.
func (c *Cell) validationDecision(f *fitted, o CellOptions, src source) (*detector.Decision, error) {
	scores, err := f.imageScoresOf("validation", c.Class.Validation, o.Batch, src)
	if err != nil {
		return nil, fmt.Errorf("decision threshold: %w", err)
	}
	d, err := detector.NewDecision(scores, c.Decision.FPR, "validation")
	if err != nil {
		return nil, err
	}
	slog.Info("decision threshold", "source", "validation", "threshold", fmt.Sprintf("%.6g", d.Threshold), "fpr", d.FPR, "images", d.Images)
	return &d, nil
}

// imageScoresOf returns the image scores of items under f.
func (f *fitted) imageScoresOf(label string, items []datasets.Item, batch int, src source) ([]float32, error) {
	patch, _, err := f.score(label, items, batch, src)
	if err != nil {
		return nil, err
	}
	var maps [][]float32
	if f.d.Info().MapScores {
		if maps, err = f.maps(patch, len(items)); err != nil {
			return nil, err
		}
	}
	return f.imageScores(patch, len(items), maps)
}

// decisionResult is the decision d with its rates on the test set.
func decisionResult(d *detector.Decision, scores []float32, labels []bool) *experiments.DecisionResult {
	fpr, fnr := d.Rates(scores, labels)
	out := &experiments.DecisionResult{Decision: *d}
	if fpr == fpr { // not NaN
		out.TestFPR = &fpr
	}
	if fnr == fnr {
		out.TestFNR = &fnr
	}
	return out
}

// trainMemo holds the features of a cell's training images for the
// holdout fits of eval and fit, which have no class cache. fill computes
// them as the cell's own fit would (the same items in the same batches,
// so that the fit's numbers do not depend on whether the memo holds them)
// and keeps them when they fit in max bytes; source then serves any list
// of them from memory, and computes anything else.
type trainMemo struct {
	max       int64
	p         *Pipeline
	feats     map[string][]float32 // by memoKey
	positions int
}

// memoKey tells items apart: their file, and their affine (a resampled
// copy shares its image's file).
func memoKey(it datasets.Item) string {
	if it.Augment == nil {
		return it.Path
	}
	return fmt.Sprintf("%s\x00%+v", it.Path, *it.Augment)
}

// fill computes the features of items with p, batch images at a time,
// keeping them all or, beyond m.max bytes, none.
func (m *trainMemo) fill(p *Pipeline, label string, items []datasets.Item, batch int) error {
	m.p, m.feats = p, map[string][]float32{}
	var used int64
	err := p.each(label, items, batch, func(lo, hi int, f detector.Features) error {
		per := f.Positions * f.Dim
		if used += int64(per) * 4 * int64(hi-lo); used > m.max {
			return errTooBig
		}
		m.positions = f.Positions
		for j, it := range items[lo:hi] {
			m.feats[memoKey(it)] = slices.Clone(f.Data[j*per : (j+1)*per])
		}
		return nil
	})
	if err == errTooBig {
		slog.Info("the training features exceed --feature-memory: the decision threshold's fits compute them again")
		m.feats, err = nil, nil
	}
	return err
}

// source is a source: items that the memo holds all of, for its pipeline,
// are served from memory; others are computed.
func (m *trainMemo) source(p *Pipeline, label string, items []datasets.Item, batch int, fn func(lo, hi int, f detector.Features) error) error {
	all := p == m.p && m.feats != nil
	for _, it := range items {
		if _, ok := m.feats[memoKey(it)]; !ok {
			all = false
			break
		}
	}
	if !all {
		return p.each(label, items, batch, fn)
	}
	return serve(len(items), batch, m.positions, func(i int) ([]float32, error) { return m.feats[memoKey(items[i])], nil }, fn)
}
