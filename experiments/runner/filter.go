package runner

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
)

// filterMemo keeps the outcome of each filter a sweep has run, so that
// cells sharing a noisy training set and a filter (padim+padim and
// padim+patchcore of one setting) fit and score the filter once.
type filterMemo map[string]filterOutcome

type filterOutcome struct {
	kept []datasets.Item
	res  experiments.FilterResult
}

// filterKey identifies a cell's filter run: the class, the noise draw and
// the filter with its rule and params (their values, options included).
func (c *Cell) filterKey() string {
	b, _ := json.Marshal(struct {
		Root, Class string
		Noise       datasets.Noise
		Filter      Filter
		Params      detector.Params
	}{c.Class.Root, c.Class.Name, c.Noise, *c.Filter, c.Params})
	return string(b)
}

// applyFilter fits the cell's filter on its training images, scores them,
// and returns the images kept with what was dropped. With memo set, a
// filter run before on the same training set is reused (Reused is set in
// the result, and the "filter" stage takes no time).
func (c *Cell) applyFilter(b *Backbone, o CellOptions, src source, st stages, memo filterMemo) ([]datasets.Item, *experiments.FilterResult, error) {
	f := c.Filter
	t0 := time.Now()
	if out, ok := memo[c.filterKey()]; ok {
		res := out.res
		res.Reused = true
		st.done("filter", t0)
		return out.kept, &res, nil
	}
	fd, err := fitOn(b, f.Method, c.Params, c.Train, o.Batch, o.FeatureMemoryMiB, src, stages{}, "filter ", nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("filter %s: %w", f.Method, err)
	}
	defer fd.close()
	patch, _, err := fd.score("filter scoring train", c.Train, o.Batch, src)
	if err != nil {
		return nil, nil, fmt.Errorf("filter %s: %w", f.Method, err)
	}
	var maps [][]float32
	if fd.d.Info().MapScores {
		if maps, err = fd.maps(patch, len(c.Train)); err != nil {
			return nil, nil, err
		}
	}
	scores, err := fd.imageScores(patch, len(c.Train), maps)
	if err != nil {
		return nil, nil, err
	}
	drop := dropped(scores, f.Drop, f.Threshold)
	res := &experiments.FilterResult{Method: f.Method, Threshold: f.Threshold, Injected: len(c.Drawn)}
	if f.Threshold == nil {
		res.Drop = &f.Drop
	}
	injected := map[string]bool{}
	for _, it := range c.Drawn {
		injected[it.Path] = true
	}
	out := make([]bool, len(c.Train))
	for _, i := range drop {
		it := c.Train[i]
		out[i] = true
		res.Dropped = append(res.Dropped, datasets.RelPath(c.Class.Root, it))
		res.DroppedScore = append(res.DroppedScore, scores[i])
		if injected[it.Path] {
			res.DroppedNoise++
		}
	}
	if len(drop) > 0 {
		res.Precision = float64(res.DroppedNoise) / float64(len(drop))
	}
	if res.Injected > 0 {
		res.Recall = float64(res.DroppedNoise) / float64(res.Injected)
	}
	var kept []datasets.Item
	for i, it := range c.Train {
		if !out[i] {
			kept = append(kept, it)
		}
	}
	if memo != nil {
		memo[c.filterKey()] = filterOutcome{kept: kept, res: *res}
	}
	st.done("filter", t0)
	slog.Info("filter", "method", f.Method, "dropped", len(drop), "of", len(c.Train), "injected dropped", res.DroppedNoise, "injected", res.Injected)
	return kept, res, nil
}

// dropped returns the indices of the images a filter drops, highest score
// first (ties: lower index first): those scoring above threshold when it
// is set, else the floor(drop*n) highest.
func dropped(scores []float32, drop float64, threshold *float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	if threshold != nil {
		k := 0
		for k < len(idx) && float64(scores[idx[k]]) > *threshold {
			k++
		}
		return idx[:k]
	}
	// floor(drop*n), forgiving the rounding of drop (0.29*100 is 28.99...).
	return idx[:min(len(idx), int(drop*float64(len(scores))+1e-9))]
}

// ParseFilter parses a filter given as METHOD, METHOD:DROP (the fraction
// dropped, default experiments.DefaultDrop) or METHOD:>SCORE (--filter).
func ParseFilter(s string) (*Filter, error) {
	method, arg, _ := strings.Cut(s, ":")
	if _, err := detector.Lookup(method); err != nil {
		return nil, fmt.Errorf("filter %q: %w", s, err)
	}
	f := &Filter{Method: method, Drop: experiments.DefaultDrop}
	switch {
	case arg == "":
	case strings.HasPrefix(arg, ">"):
		t, err := strconv.ParseFloat(arg[1:], 64)
		if err != nil || math.IsNaN(t) {
			return nil, fmt.Errorf("filter %q: %q is not a score", s, arg[1:])
		}
		f.Threshold = &t
	default:
		d, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(d >= 0 && d < 1) {
			return nil, fmt.Errorf("filter %q: the fraction dropped %q is not in [0, 1)", s, arg)
		}
		f.Drop = d
	}
	return f, nil
}
