package experiments

import (
	"fmt"
	"math"
	"slices"
)

// scoreKey maps a non-NaN float32 to a uint32 whose unsigned order is the float order; -0 and +0
// map to the same key so that they tie as they do in numpy.
func scoreKey(f float32) uint32 {
	if f == 0 {
		return 1 << 31
	}
	b := math.Float32bits(f)
	if b>>31 != 0 {
		return ^b
	}
	return b | 1<<31
}

// keyScore inverts scoreKey (zero comes back as +0).
func keyScore(k uint32) float32 {
	if k>>31 != 0 {
		return math.Float32frombits(k &^ (1 << 31))
	}
	return math.Float32frombits(^k)
}

// radixMin is the length below which sortByScore uses slices.Sort.
const radixMin = 1 << 12

// sortByScore sorts keys ascending by their high 32 bits (the score key); the low 32 bits (a
// label or a region id) travel with them in an unspecified order within equal scores. Long
// inputs use a stable LSD radix sort of three passes (11, 11 and 10 bits) with one buffer of the
// same length; passes whose digit is constant are skipped.
func sortByScore(keys []uint64) {
	if len(keys) < radixMin {
		slices.Sort(keys)
		return
	}
	const b = 11
	var counts [3][1 << b]int
	for _, k := range keys {
		h := k >> 32
		counts[0][h&(1<<b-1)]++
		counts[1][h>>b&(1<<b-1)]++
		counts[2][h>>(2*b)]++
	}
	buf := make([]uint64, len(keys))
	src, dst := keys, buf
	for pass := range 3 {
		c := &counts[pass]
		shift := 32 + uint(pass*b)
		if c[src[0]>>shift&(1<<b-1)] == len(src) {
			continue
		}
		sum := 0
		for d, v := range c {
			c[d] = sum
			sum += v
		}
		for _, k := range src {
			d := k >> shift & (1<<b - 1)
			dst[c[d]] = k
			c[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

// label8 labels the 8-connected components of the non-zero pixels of an h*w row-major mask, as
// scipy.ndimage.label(mask, np.ones((3, 3))) does up to the numbering: lab[p] is 0 for a zero
// pixel and len(sizes)+k for a pixel of the image's k-th component (k from 0, in raster order of
// the components' first pixels), and each component's size is appended to sizes. stack is
// scratch space, returned for reuse.
func label8(mask []uint8, h, w int, lab []uint32, sizes []int64, stack []int32) ([]int64, []int32, error) {
	clear(lab)
	for p, v := range mask {
		if v == 0 || lab[p] != 0 {
			continue
		}
		if uint64(len(sizes)) >= math.MaxUint32 {
			return sizes, stack, fmt.Errorf("experiments: %d ground-truth regions or more", math.MaxUint32)
		}
		id := uint32(len(sizes))
		lab[p] = id
		stack = append(stack[:0], int32(p))
		var size int64
		for len(stack) > 0 {
			q := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			size++
			y, x := q/w, q%w
			for ny := max(y-1, 0); ny <= min(y+1, h-1); ny++ {
				for nx := max(x-1, 0); nx <= min(x+1, w-1); nx++ {
					if np := ny*w + nx; mask[np] != 0 && lab[np] == 0 {
						lab[np] = id
						stack = append(stack, int32(np))
					}
				}
			}
		}
		sizes = append(sizes, size)
	}
	return sizes, stack, nil
}
