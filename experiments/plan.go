package experiments

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Cell is one run of a sweep: one method on one class under one noise
// setting.
type Cell struct {
	Class   string  `json:"class"`
	Ratio   float64 `json:"noise"`
	Overlap bool    `json:"overlap"`
	Fold    int     `json:"fold"`
	// Seed is the detector's seed when the config lists detector.seeds
	// (0 otherwise: the cell runs with detector.seed).
	Seed   uint64 `json:"seed,omitempty"`
	Method string `json:"method"`
}

// Key identifies the cell in a results file. A seed other than 0 is part
// of it ("/seed=2" before the method), so that results written before
// seeds existed keep their keys.
func (c Cell) Key() string {
	seed := ""
	if c.Seed != 0 {
		seed = "/seed=" + strconv.FormatUint(c.Seed, 10)
	}
	return fmt.Sprintf("%s/noise=%g/overlap=%t/fold=%d%s/%s", c.Class, c.Ratio, c.Overlap, c.Fold, seed, c.Method)
}

// Replicate names the cell's draw among those of one setting: its fold
// and seed, e.g. "fold=1/seed=2" (tables give the mean and the standard
// deviation over a setting's replicates).
func (c Cell) Replicate() string { return fmt.Sprintf("fold=%d/seed=%d", c.Fold, c.Seed) }

// Dir is the cell's folder name for the files a run writes about it
// (overlays, its bank in 2-D): the key with "/" as "_" and no "=".
func (c Cell) Dir() string { return strings.NewReplacer("/", "_", "=", "").Replace(c.Key()) }

// Plan returns the cells of cfg over classes in run order: class by class
// (so that a class's features are computed once), then noise ratio,
// overlap, fold, seed and method. A ratio of 0 is clean training, where
// overlap and fold change nothing: it gives one cell per method and seed
// (overlap false, fold 0) whatever the overlap and fold settings.
func Plan(cfg *Config, classes []string) []Cell {
	var cells []Cell
	seeds := cfg.Detector.Seeds
	if len(seeds) == 0 {
		seeds = []uint64{0}
	}
	for _, class := range classes {
		seen := map[string]bool{}
		for _, r := range cfg.Noise.Ratios {
			for _, ov := range cfg.Noise.Overlap {
				for _, f := range cfg.Noise.Folds {
					for _, seed := range seeds {
						for _, m := range cfg.Methods {
							c := Cell{Class: class, Ratio: r, Overlap: ov, Fold: f, Seed: seed, Method: m}
							if r == 0 {
								c.Overlap, c.Fold = false, 0
							}
							if !seen[c.Key()] {
								seen[c.Key()] = true
								cells = append(cells, c)
							}
						}
					}
				}
			}
		}
	}
	return cells
}

// Shard is one of n disjoint parts of a plan: Index in [0, N).
type Shard struct{ Index, N int }

// ParseShard reads "i/n" with 0 <= i < n (the empty string is the whole
// plan, 0/1).
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{0, 1}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("--shard %q: want i/n with 0 <= i < n, e.g. 0/4 to 3/4", s)
	}
	return Shard{i, n}, nil
}

// Costs estimates a plan's work, for balancing its shards: Cell is the
// cost of fitting and testing one cell, Class the cost of computing one
// class's features, which every shard that runs cells of the class pays
// (each task of a Slurm array computes them, or waits for the shared
// cache). The unit is the caller's (runner.PlanCosts: estimated seconds).
type Costs struct {
	Cell  func(Cell) float64
	Class func(class string) float64
}

// Cost returns the estimated cost of running cells in one shard: their
// cells' costs and each of their classes' once.
func (c Costs) Cost(cells []Cell) float64 {
	sum := 0.0
	seen := map[string]bool{}
	for _, cell := range cells {
		sum += c.Cell(cell)
		if !seen[cell.Class] {
			seen[cell.Class] = true
			sum += c.Class(cell.Class)
		}
	}
	return sum
}

// Partition cuts cells (in plan order, a class's cells together) into n
// contiguous shards of about equal cost: the k-th cut goes where the
// running cost (a class's feature cost counted at its first cell) comes
// nearest k/n of the total, at the boundary between two classes when one
// lies within 15% of a shard's share of that point, so that a class's
// cells stay in as few shards as the balance allows. Shards may be empty
// when there are fewer cells than shards.
func Partition(cells []Cell, n int, cost Costs) [][]Cell {
	cum := make([]float64, len(cells)+1) // cum[b]: the cost before cell b
	classStart := make([]bool, len(cells)+1)
	for i, c := range cells {
		u := cost.Cell(c)
		if i == 0 || cells[i-1].Class != c.Class {
			u += cost.Class(c.Class)
			classStart[i] = true
		}
		cum[i+1] = cum[i] + u
	}
	classStart[len(cells)] = true
	total := cum[len(cells)]
	tol := 0.15 * total / float64(n)
	out := make([][]Cell, n)
	prev := 0
	for k := 1; k <= n; k++ {
		cut := len(cells)
		if k < n {
			target := total * float64(k) / float64(n)
			near := func(classOnly bool) int {
				best := -1
				for b := prev; b <= len(cells); b++ {
					if (!classOnly || classStart[b]) && (best < 0 || math.Abs(cum[b]-target) < math.Abs(cum[best]-target)) {
						best = b
					}
				}
				return best
			}
			cut = near(false)
			if b := near(true); b >= 0 && math.Abs(cum[b]-target) <= tol {
				cut = b
			}
		}
		out[k-1] = cells[prev:cut:cut]
		prev = cut
	}
	return out
}

// Select returns the shard's cells: its part of Partition(cells, N, cost).
func (s Shard) Select(cells []Cell, cost Costs) []Cell {
	return Partition(cells, s.N, cost)[s.Index]
}
