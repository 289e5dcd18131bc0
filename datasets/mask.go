package datasets

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
)

// LoadMask reads the mask file at path and returns it at the model's
// geometry (ImageSize*ImageSize values, 0 or 1, row-major) exactly as the
// reference's transform on PIL.Image.open(path) — Resize + CenterCrop +
// ToTensor, no convert — followed by int(): a pixel is 1 only where the
// tensor is exactly 1.0. What that means depends on the mode PIL opens:
//
//   - "L" (8-bit gray, also 2/4-bit gray PNG, gray BMP): resized with the
//     antialiased bilinear filter; 1 where the resized value is 255 (Mask).
//   - "1" (1-bit gray PNG, black/white 1-bit BMP): Pillow forces NEAREST
//     for this mode; ToTensor maps set pixels to 1.0, so 1 where the
//     nearest source pixel is set.
//   - "P" (palette PNG or BMP): NEAREST too, and ToTensor divides the
//     palette *index* (not the colour) by 255: 1 only where the nearest
//     source index is 255.
//   - RGB, RGBA, gray+alpha and the rest: the reference would give a
//     3-channel (or 2-channel) tensor; LoadMask takes channel 0 (red, or
//     gray) resized bilinearly, 1 where it is 255. For RGBA with
//     non-opaque pixels Pillow resizes premultiplied, so this is then an
//     approximation. 16-bit gray is clipped at 255 first (as convert("L")).
//     TIFF masks are all treated this way (a 1-bit TIFF is not told apart
//     from an 8-bit one).
//
// Errors name the file and the problem; malformed files never panic.
func (p Preprocess) LoadMask(path string) ([]uint8, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	data, err := readMaskFile(path)
	if err != nil {
		return nil, err
	}
	mode := pilMaskMode(data)
	if mode == "1" || mode == "P" {
		idx, w, h, err := maskIndices(data, path, mode)
		if err != nil {
			return nil, err
		}
		g := p.nearestGeometry(idx, w, h)
		out := make([]uint8, len(g))
		for i, v := range g {
			if v == 255 { // "1": set pixels are stored as 255
				out[i] = 1
			}
		}
		return out, nil
	}
	img, err := decodeRGBBytes(data, path)
	if err != nil {
		return nil, err
	}
	if p.Mode == ResizeShorter {
		if rw, rh := resizedSize(img.W, img.H, p.Resize); rw*rh > MaxPixels {
			return nil, fmt.Errorf("datasets: %s: a %dx%d mask resized to shorter side %d is %dx%d, over %d pixels", path, img.W, img.H, p.Resize, rw, rh, MaxPixels)
		}
	}
	g := &Gray8{W: img.W, H: img.H, Pix: make([]uint8, img.W*img.H)}
	for i := range g.Pix {
		g.Pix[i] = img.Pix[3*i]
	}
	return p.Mask(g), nil
}

// LoadMaskNonZero reads a mask whose defects are marked by any non-zero
// value (VisA's masks number their defect regions 1, 2, ...; see
// docs/datasets.md) and returns it at the model's geometry like LoadMask.
// A pixel is a defect where the value the file stores is not 0: the gray
// value, the palette index of a palette file (as numpy reads a PIL "P"
// image), or any channel of a colour file. That binary mask, as 0 and 255,
// then takes LoadMask's path for an 8-bit gray mask (bilinear resize, 1
// where the result is 255), so that a VisA mask gives exactly what
// LoadMask gives on the 0/255 copy VisA's own preparation script writes
// (every non-zero value set to 255).
func (p Preprocess) LoadMaskNonZero(path string) ([]uint8, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	data, err := readMaskFile(path)
	if err != nil {
		return nil, err
	}
	vals, w, h, err := maskLevels(data, path, true)
	if err != nil {
		return nil, err
	}
	if p.Mode == ResizeShorter {
		if rw, rh := resizedSize(w, h, p.Resize); rw*rh > MaxPixels {
			return nil, fmt.Errorf("datasets: %s: a %dx%d mask resized to shorter side %d is %dx%d, over %d pixels", path, w, h, p.Resize, rw, rh, MaxPixels)
		}
	}
	for i, v := range vals {
		if v != 0 {
			vals[i] = 255
		}
	}
	return p.Mask(&Gray8{W: w, H: h, Pix: vals}), nil
}

// LoadItemMask reads the mask of it by its rule: LoadMaskNonZero when
// it.MaskNonZero is set (VisA), else LoadMask.
func (p Preprocess) LoadItemMask(it Item) ([]uint8, error) {
	if it.MaskPath == "" {
		return nil, fmt.Errorf("datasets: %s: image has no mask", it.Path)
	}
	if it.MaskNonZero {
		return p.LoadMaskNonZero(it.MaskPath)
	}
	return p.LoadMask(it.MaskPath)
}

// readMaskFile reads a mask file whole, up to maxFileBytes.
func readMaskFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: reading: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("datasets: %s: file larger than %d bytes", path, maxFileBytes)
	}
	return data, nil
}

// maskLevels decodes a mask file into the value per pixel a mask rule
// reads, at the file's own size: 0 or 255 for a mode "1" file, the palette
// index for a mode "P" one, otherwise channel 0 (red, or gray) or, with
// anyChannel, the largest of the three channels.
func maskLevels(data []byte, path string, anyChannel bool) ([]uint8, int, int, error) {
	if mode := pilMaskMode(data); mode == "1" || mode == "P" {
		return maskIndices(data, path, mode)
	}
	img, err := decodeRGBBytes(data, path)
	if err != nil {
		return nil, 0, 0, err
	}
	out := make([]uint8, img.W*img.H)
	for i := range out {
		px := img.Pix[3*i : 3*i+3]
		out[i] = px[0]
		if anyChannel {
			out[i] = max(px[0], px[1], px[2])
		}
	}
	return out, img.W, img.H, nil
}

// maskDefects decodes the mask file at path and counts, at its own size,
// the pixels that mark a defect: non-zero ones with nonZero (LoadMaskNonZero),
// else those whose value is 255 (LoadMask; at the model's size a pixel can
// only be 1 where the source has 255 nearby). top is the largest value
// read.
func maskDefects(path string, nonZero bool) (n int, top uint8, err error) {
	data, err := readMaskFile(path)
	if err != nil {
		return 0, 0, err
	}
	vals, _, _, err := maskLevels(data, path, nonZero)
	if err != nil {
		return 0, 0, err
	}
	for _, v := range vals {
		top = max(top, v)
		if v == 255 || (nonZero && v != 0) {
			n++
		}
	}
	return n, top, nil
}

// pilMaskMode returns "1" or "P" when PIL opens the file in that mode (and
// so resizes it with NEAREST), "" otherwise.
func pilMaskMode(data []byte) string {
	switch format(data) {
	case "png":
		info := readPNGInfo(data)
		switch {
		case info.colorType == 0 && info.depth == 1:
			return "1"
		case info.colorType == 3:
			return "P"
		}
	case "bmp":
		return bmpMode(data)
	case "tiff":
		// PIL opens palette TIFFs as "P"; Go's decoder says so by its type.
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			if _, ok := cfg.ColorModel.(color.Palette); ok {
				return "P"
			}
		}
	}
	return ""
}

// bmpMode mirrors Pillow's BmpImagePlugin for palette BMPs (1-8 bits): a
// palette that is the identity gray ramp (black/white for 2 colours)
// opens as "1" (2 colours) or "L", any other as "P".
func bmpMode(data []byte) string {
	if len(data) < 14+16 {
		return ""
	}
	hdr := int(binary.LittleEndian.Uint32(data[14:18]))
	if hdr < 40 || len(data) < 14+hdr {
		return "" // OS/2 and odd headers: decoded as colour
	}
	bpp := int(binary.LittleEndian.Uint16(data[28:30]))
	if bpp > 8 || bpp == 0 {
		return ""
	}
	colors := int(binary.LittleEndian.Uint32(data[46:50]))
	if colors == 0 || colors > 1<<bpp {
		colors = 1 << bpp
	}
	pal := data[14+hdr:]
	if len(pal) < 4*colors {
		return "P" // the decoder reports the truncation
	}
	gray := true
	for i := 0; i < colors && gray; i++ {
		want := byte(i)
		if colors == 2 {
			want = byte(255 * i)
		}
		b, g, r := pal[4*i], pal[4*i+1], pal[4*i+2]
		gray = r == want && g == want && b == want
	}
	switch {
	case gray && colors == 2:
		return "1"
	case gray:
		return ""
	}
	return "P"
}

// maskIndices decodes a mode "1" or "P" mask into one byte per pixel: 0 or
// 255 for "1", the palette index for "P".
func maskIndices(data []byte, path, mode string) (pix []uint8, w, h int, err error) {
	if mode == "1" {
		g, err := decodeRGBBytes(data, path)
		if err != nil {
			return nil, 0, 0, err
		}
		pix = make([]uint8, g.W*g.H)
		for i := range pix {
			if g.Pix[3*i] != 0 {
				pix[i] = 255
			}
		}
		return pix, g.W, g.H, nil
	}
	defer func() {
		if r := recover(); r != nil {
			pix, err = nil, fmt.Errorf("datasets: %s: decoder failed: %v", path, r)
		}
	}()
	if _, err := decodeRGBBytes(data, path); err != nil { // validates size limits and data
		return nil, 0, 0, err
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, decodeError(path, format(data), err)
	}
	pm, ok := img.(*image.Paletted)
	if !ok {
		return nil, 0, 0, fmt.Errorf("datasets: %s: palette image decoded as %T", path, img)
	}
	b := pm.Bounds()
	w, h = b.Dx(), b.Dy()
	pix = make([]uint8, w*h)
	for y := 0; y < h; y++ {
		copy(pix[y*w:(y+1)*w], pm.Pix[y*pm.Stride:y*pm.Stride+w])
	}
	return pix, w, h, nil
}

// nearestGeometry is geometry with Pillow's NEAREST resize (used for modes
// "1" and "P").
func (p Preprocess) nearestGeometry(src []uint8, w, h int) []uint8 {
	s := p.ImageSize
	if p.Mode == ResizeSquare {
		return resizeNearest(src, w, h, s, s)
	}
	rw, rh := resizedSize(w, h, p.Resize)
	return centerCrop(resizeNearest(src, w, h, rw, rh), rw, rh, 1, s)
}

// nearestIndex mirrors Pillow's ImagingScaleAffine source coordinates for
// Image.resize(..., NEAREST) on the box [0, in): the position starts at
// scale/2 and accumulates scale per output sample (in float64, as the C
// does), truncated to an index.
func nearestIndex(in, out int) []int {
	scale := float64(in) / float64(out)
	idx := make([]int, out)
	xo := scale * 0.5
	for x := range idx {
		i := int(xo)
		if i >= in {
			i = in - 1
		}
		idx[x] = i
		xo += scale
	}
	return idx
}

// resizeNearest resizes a one-byte-per-pixel image with nearestIndex.
func resizeNearest(src []uint8, w, h, ow, oh int) []uint8 {
	if w == ow && h == oh {
		return src
	}
	xi, yi := nearestIndex(w, ow), nearestIndex(h, oh)
	out := make([]uint8, ow*oh)
	for y, sy := range yi {
		row := src[sy*w : (sy+1)*w]
		for x, sx := range xi {
			out[y*ow+x] = row[sx]
		}
	}
	return out
}
