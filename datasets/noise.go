package datasets

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Noise is the paper's noisy-training setting (docs/method.md#24-noise-injection).
type Noise struct {
	// Ratio r: floor(r * n_train) anomalous test images join training.
	Ratio float64 `json:"ratio"`
	// Overlap keeps the drawn images in the test set too; by default they
	// are removed from it.
	Overlap bool `json:"overlap"`
	// Fold names independent draws for the same ratio.
	Fold int `json:"fold"`
	// Files, when not empty, replaces the draw: the anomalous test images
	// to inject, as paths relative to the dataset root with forward
	// slashes (as WriteNoiseList writes them), relative to the class
	// folder, or absolute. Ratio is then ignored.
	Files []string `json:"files,omitempty"`
	// Augment gives every injected image its own seeded random affine
	// transform (the published --noise_augmentation; see Affine).
	Augment bool `json:"augment,omitempty"`
	// Affines, when set with Augment, replace the affine draws: one per
	// injected image, in draw order (a replayed draws file).
	Affines []Affine `json:"affines,omitempty"`
}

// NoiseCount returns n_noise = floor(ratio * nTrain), computed as the
// reference does (Python int(ratio * n_train) on float64).
func NoiseCount(ratio float64, nTrain int) int {
	return int(math.Floor(ratio * float64(nTrain)))
}

// noiseSeed hashes (dataset, class, ratio, fold) into a PCG seed. The
// ratio enters as its shortest decimal form, so 0.1 and 0.10 agree.
func noiseSeed(dataset, class string, ratio float64, fold int) (uint64, uint64) {
	key := strings.Join([]string{"softpatch-noise-v1", dataset, class,
		strconv.FormatFloat(ratio, 'g', -1, 64), strconv.Itoa(fold)}, "\x00")
	sum := sha256.Sum256([]byte(key))
	return binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])
}

// RelPath returns it.Path relative to root with forward slashes, the form
// used in noise lists.
func RelPath(root string, it Item) string {
	if r, err := filepath.Rel(root, it.Path); err == nil {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(it.Path)
}

// FilesHash identifies the class's image files: the hex sha256 of their
// paths relative to the dataset root and their sizes, training images
// then test images, in the class's order.
func (c *Class) FilesHash() (string, error) {
	h := sha256.New()
	for _, it := range append(append([]Item(nil), c.Train...), c.Test...) {
		fi, err := os.Stat(it.Path)
		if err != nil {
			return "", fmt.Errorf("datasets: %w", err)
		}
		fmt.Fprintf(h, "%s\t%d\n", RelPath(c.Root, it), fi.Size())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RelPaths is RelPath of each item (an empty list for none).
func RelPaths(root string, items []Item) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, RelPath(root, it))
	}
	return out
}

// Noisy returns the noisy training set and the test set of c under n.
// Unless n.Files is given, n_noise = NoiseCount(n.Ratio, len(c.Train))
// anomalous test images are drawn uniformly without replacement with a
// PCG generator seeded by (dataset, class, ratio, fold), so the same
// arguments always give the same draw and each fold an independent one;
// drawn lists them in test order. train is the clean training images
// followed by the drawn ones (Split stays "test", Anomalous true: the
// labels are known to the harness, not to the method; with n.Augment each
// drawn item carries its own seeded Affine, in draw order). Without
// n.Overlap, test is c.Test minus exactly the drawn images; with it,
// c.Test whole. The returned slices are new; c is not modified.
func (c *Class) Noisy(dataset string, n Noise) (train, test, drawn []Item, err error) {
	var anom []int // indices into c.Test
	for i, it := range c.Test {
		if it.Anomalous {
			anom = append(anom, i)
		}
	}
	picked := map[int]bool{}
	var order []int
	if len(n.Files) > 0 {
		// A file may be named relative to the root (as WriteNoiseList
		// writes it), relative to the class folder (test/TYPE/FILE), or
		// by its absolute path, as other implementations record draws.
		byRel := map[string]int{}
		for _, i := range anom {
			it := c.Test[i]
			byRel[RelPath(c.Root, it)] = i
			byRel[strings.TrimPrefix(RelPath(c.Root, it), c.Name+"/")] = i
			if abs, err := filepath.Abs(it.Path); err == nil {
				byRel[filepath.ToSlash(abs)] = i
			}
		}
		for _, f := range n.Files {
			key := filepath.ToSlash(filepath.Clean(filepath.FromSlash(f)))
			i, ok := byRel[key]
			if !ok {
				return nil, nil, nil, fmt.Errorf("datasets: %s: not an anomalous test image of class %s under %s", f, c.Name, c.Root)
			}
			if picked[i] {
				return nil, nil, nil, fmt.Errorf("datasets: %s: listed twice in the noise list", f)
			}
			picked[i] = true
			order = append(order, i)
		}
	} else {
		if math.IsNaN(n.Ratio) || n.Ratio < 0 || n.Ratio > 1 {
			return nil, nil, nil, fmt.Errorf("datasets: noise ratio %v out of range [0, 1]", n.Ratio)
		}
		k := NoiseCount(n.Ratio, len(c.Train))
		if k > len(anom) {
			return nil, nil, nil, fmt.Errorf("datasets: %s: noise ratio %v needs %d anomalous images but class %s has %d",
				filepath.Join(c.Root, c.Name), n.Ratio, k, c.Name, len(anom))
		}
		r := rand.New(rand.NewPCG(noiseSeed(dataset, c.Name, n.Ratio, n.Fold)))
		perm := append([]int(nil), anom...)
		for j := 0; j < k; j++ { // partial Fisher-Yates
			m := j + r.IntN(len(perm)-j)
			perm[j], perm[m] = perm[m], perm[j]
			picked[perm[j]] = true
		}
		for _, i := range anom { // test order
			if picked[i] {
				order = append(order, i)
			}
		}
	}
	train = append([]Item(nil), c.Train...)
	var aug *rand.Rand
	if n.Augment {
		s1, s2 := noiseSeed(dataset+"\x00augment", c.Name, n.Ratio, n.Fold)
		aug = rand.New(rand.NewPCG(s1, s2))
	}
	if len(n.Affines) > 0 && (!n.Augment || len(n.Affines) != len(order)) {
		return nil, nil, nil, fmt.Errorf("datasets: %d replayed affine draws for %d injected images (augmentation %t)", len(n.Affines), len(order), n.Augment)
	}
	for j, i := range order {
		it := c.Test[i]
		switch {
		case len(n.Affines) > 0:
			a := n.Affines[j]
			it.Augment = &a
		case aug != nil:
			a := DrawAffine(aug)
			it.Augment = &a
		}
		drawn = append(drawn, it)
	}
	train = append(train, drawn...)
	for i, it := range c.Test {
		if n.Overlap || !picked[i] {
			test = append(test, it)
		}
	}
	return train, test, drawn, nil
}

// WriteNoiseList writes the drawn images as a JSON list of paths relative
// to root (forward slashes), atomically.
func WriteNoiseList(path, root string, drawn []Item) error {
	names := make([]string, 0, len(drawn))
	for _, it := range drawn {
		names = append(names, RelPath(root, it))
	}
	err := atomicfile.WriteFile(path, func(w io.Writer) error {
		b, err := json.MarshalIndent(names, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("datasets: %s: writing noise list: %w", path, err)
	}
	return nil
}

// ReadNoiseList reads a JSON list of file names written by WriteNoiseList
// (or by another implementation), for Noise.Files.
func ReadNoiseList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", path, unwrapPath(err))
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("datasets: %s: not a JSON list of file names: %v", path, err)
	}
	return names, nil
}
