package detector

import "fmt"

// Draws are the random draws of a memory-bank fit, in the published
// code's layouts, so that the draws of either implementation can be
// replayed in the other (docs/method.md#59-replayable-draws). Given to Fit
// through FitOptions.Draws, a set field replaces that draw and a nil one
// is drawn from the seed as usual; Fit then fills in every draw it made.
type Draws struct {
	// DiscriminatorProjection is SoftPatch's projection of the features
	// for its noise discriminator, float32 [128][D]: a torch.nn.Linear
	// weight (projected = x W^T). Nil when D is 128 (no projection).
	DiscriminatorProjection []float32
	// CoresetProjection is the greedy coreset's projection, same layout.
	CoresetProjection []float32
	// CoresetStartPoints are the greedy coreset's start points, indices of
	// training patches (image-major).
	CoresetStartPoints []int
	// RandomSubset are PatchCore-random's picks, in draw order.
	RandomSubset []int
}

// DrawError is a replayed draw that does not fit the fit: Key names it as
// a draws file does, Got and Want are its shape and the one the fit needs.
type DrawError struct {
	Key, Got, Want string
}

func (e *DrawError) Error() string {
	return fmt.Sprintf("draw %s: %s does not fit this cell, which needs %s", e.Key, e.Got, e.Want)
}

// replayProjection returns the [d][dim] projection (coreset.Project's
// layout) of a replayed [dim][d] weight w, or nil when w is nil.
func replayProjection(key string, w []float32, d, dim int) ([]float32, error) {
	if w == nil {
		return nil, nil
	}
	if d == dim {
		return nil, &DrawError{key, fmt.Sprintf("a [%d, %d] projection", dim, len(w)/dim), fmt.Sprintf("none (the features have %d dimensions, the published code does not project them)", d)}
	}
	if len(w) != d*dim {
		return nil, &DrawError{key, fmt.Sprintf("%d values", len(w)), fmt.Sprintf("float32 [%d, %d]", dim, d)}
	}
	return transpose(w, dim, d), nil
}

// transpose returns the [cols][rows] transpose of a [rows][cols] matrix.
func transpose(a []float32, rows, cols int) []float32 {
	t := make([]float32, len(a))
	for i := range rows {
		for j := range cols {
			t[j*rows+i] = a[i*cols+j]
		}
	}
	return t
}

// checkIndices checks replayed indices: distinct, in [0, n), want of them
// (any number when want < 0).
func checkIndices(key string, idx []int, n, want int) error {
	if want >= 0 && len(idx) != want {
		return &DrawError{key, fmt.Sprintf("%d indices", len(idx)), fmt.Sprintf("%d", want)}
	}
	if len(idx) > n {
		return &DrawError{key, fmt.Sprintf("%d indices", len(idx)), fmt.Sprintf("at most %d (the training patches)", n)}
	}
	seen := make(map[int]bool, len(idx))
	for _, i := range idx {
		if i < 0 || i >= n {
			return &DrawError{key, fmt.Sprintf("index %d", i), fmt.Sprintf("indices in [0, %d)", n)}
		}
		if seen[i] {
			return &DrawError{key, fmt.Sprintf("index %d twice", i), "distinct indices"}
		}
		seen[i] = true
	}
	return nil
}
