package runner

import (
	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
)

// defectEntries marks the entries of bank m (fitted on train, positions
// patches an image) whose patch lies inside a defect of an injected
// training image (drawn): the centre of the patch's cell of the grid over
// the preprocessed image falls on a pixel of the image's preprocessed
// mask. An injected image with an affine (noise augmentation) has its
// mask untransformed, so its entries are not marked.
func defectEntries(p *Pipeline, m *detector.Model, positions int, train, drawn []datasets.Item) ([]bool, int, error) {
	gh, gw, err := p.Grid(positions)
	if err != nil {
		return nil, 0, err
	}
	injected := map[string]bool{}
	for _, it := range drawn {
		injected[it.Path] = true
	}
	size := p.b.pre.ImageSize
	masks := map[int][]uint8{} // training image -> its mask, loaded once
	out := make([]bool, len(m.Indices))
	n := 0
	for j, i := range m.Indices {
		img, pos := i/positions, i%positions
		it := train[img]
		if !injected[it.Path] || it.MaskPath == "" || it.Augment != nil {
			continue
		}
		mask, ok := masks[img]
		if !ok {
			if mask, err = p.b.pre.LoadItemMask(it); err != nil {
				return nil, 0, err
			}
			masks[img] = mask
		}
		y := min((2*(pos/gw)+1)*size/(2*gh), size-1)
		x := min((2*(pos%gw)+1)*size/(2*gw), size-1)
		if mask[y*size+x] != 0 {
			out[j] = true
			n++
		}
	}
	return out, n, nil
}
