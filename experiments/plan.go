package experiments

import (
	"fmt"
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

// Select returns the shard's cells: every N-th cell of the plan, starting
// at Index.
func (s Shard) Select(cells []Cell) []Cell {
	var out []Cell
	for i := s.Index; i < len(cells); i += s.N {
		out = append(out, cells[i])
	}
	return out
}
