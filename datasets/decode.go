package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// RGB8 is an 8-bit RGB image, pixels row-major, 3 bytes per pixel (R,G,B).
type RGB8 struct {
	W, H int
	Pix  []uint8
}

// Gray8 is an 8-bit single-channel image (masks), pixels row-major.
type Gray8 struct {
	W, H int
	Pix  []uint8
}

// MaxPixels bounds W*H of a decoded image (PIL refuses images above twice
// its 89,478,485-pixel bomb threshold; this limit is a little lower still,
// 2^27, about 400 MB as RGB).
const MaxPixels = 1 << 27

// maxFileBytes bounds how much of a stream is read.
const maxFileBytes = 1 << 30

// format identifies an encoded image by its leading bytes.
func format(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte{0xff, 0xd8}):
		return "jpeg"
	case bytes.HasPrefix(data, []byte("BM")):
		return "bmp"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "tiff"
	case bytes.HasPrefix(data, []byte("GIF8")):
		return "gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// pngInfo is what the PNG header says about the pixel layout; Go's decoder
// folds some distinctions that PIL keeps.
type pngInfo struct {
	colorType, depth byte
	plte             int // number of PLTE entries, -1 if none seen
}

// readPNGInfo scans the chunks before the first IDAT. It never fails: an
// unparsable header leaves the zero value (the decoder reports the error).
func readPNGInfo(data []byte) pngInfo {
	info := pngInfo{plte: -1}
	p := data[8:]
	for len(p) >= 8 {
		n := binary.BigEndian.Uint32(p[:4])
		typ := string(p[4:8])
		if uint64(n)+12 > uint64(len(p)) {
			break
		}
		body := p[8 : 8+n]
		switch typ {
		case "IHDR":
			if n >= 10 {
				info.depth, info.colorType = body[8], body[9]
			}
		case "PLTE":
			info.plte = int(n / 3)
		case "IDAT":
			return info
		}
		p = p[12+n:]
	}
	return info
}

// DecodeRGB reads a PNG, JPEG, BMP or TIFF image (the format is detected
// from the content, not the name) and converts it to RGB as PIL's
// Image.open(...).convert("RGB") does (Pillow 9.4):
//
//   - 8-bit and 1/2/4-bit gray: replicated; gray+alpha: alpha dropped.
//   - RGBA: alpha dropped, no compositing; TIFF with associated
//     (premultiplied) alpha is un-premultiplied first, c*255/a, as PIL's
//     "RGBa" unpacker does.
//   - palette: looked up, transparency ignored; indices beyond the stored
//     palette read PIL's default gray ramp (i, i, i).
//   - 16-bit gray (PIL modes I and I;16): clipped, min(v, 255) — PIL does
//     NOT scale 16-bit gray to 8 bits when converting to RGB or L.
//   - 16-bit RGB, RGBA and gray+alpha PNG/TIFF: the high byte (v >> 8);
//     PIL opens these as 8-bit images.
//   - CMYK JPEG: PIL's cmyk2rgb, c' = (255-k) - c*(255-k)/255 (rounded).
//   - colour JPEG: chroma upsampled and converted as libjpeg-turbo does
//     (fancy upsampling, its fixed-point tables); the IDCT is Go's, not
//     libjpeg's jidctint, so a few percent of samples differ from PIL's,
//     by at most 3 levels on every JPEG measured (1-2 after resizing).
//
// name is used only in error messages. Errors start with "datasets: " and
// name the file and the problem; malformed input never panics.
func DecodeRGB(r io.Reader, name string) (*RGB8, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: reading: %w", name, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("datasets: %s: file larger than %d bytes", name, maxFileBytes)
	}
	return decodeRGBBytes(data, name)
}

// DecodeRGBFile reads and decodes the image file at path (see DecodeRGB).
func DecodeRGBFile(path string) (*RGB8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	return DecodeRGB(f, path)
}

// DecodeGray reads an image like DecodeRGB and converts it to one 8-bit
// channel as PIL's convert("L") does: gray sources keep their values
// (16-bit gray clipped at 255, 1-bit gray 0/255), everything else goes
// through RGB and L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, Pillow's
// fixed-point form of the ITU-R 601 luma R*299/1000 + G*587/1000 +
// B*114/1000 (checked against PIL on all 2^24 colours).
func DecodeGray(r io.Reader, name string) (*Gray8, error) {
	img, err := DecodeRGB(r, name)
	if err != nil {
		return nil, err
	}
	return rgbToGray(img), nil
}

// DecodeGrayFile reads and decodes the image file at path for use as a
// mask (see DecodeGray).
func DecodeGrayFile(path string) (*Gray8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	return DecodeGray(f, path)
}

// rgbToGray is Pillow's rgb2l. For a gray pixel (v, v, v) it returns v, so
// routing gray sources through RGB loses nothing.
func rgbToGray(img *RGB8) *Gray8 {
	g := &Gray8{W: img.W, H: img.H, Pix: make([]uint8, img.W*img.H)}
	for i := range g.Pix {
		p := img.Pix[3*i : 3*i+3]
		g.Pix[i] = uint8((uint32(p[0])*19595 + uint32(p[1])*38470 + uint32(p[2])*7471 + 0x8000) >> 16)
	}
	return g
}

// decodeRGBBytes decodes one in-memory image file.
func decodeRGBBytes(data []byte, name string) (out *RGB8, err error) {
	fm := format(data)
	switch fm {
	case "":
		return nil, fmt.Errorf("datasets: %s: unknown image format (want png, jpeg, bmp or tiff)", name)
	case "gif", "webp":
		return nil, fmt.Errorf("datasets: %s: unsupported image format %s (want png, jpeg, bmp or tiff)", name, fm)
	}
	defer func() {
		if r := recover(); r != nil { // a decoder bug must not take the process down
			out, err = nil, fmt.Errorf("datasets: %s: %s decoder failed: %v", name, fm, r)
		}
	}()
	var (
		decode func(io.Reader) (image.Image, error)
		config func(io.Reader) (image.Config, error)
	)
	switch fm {
	case "png":
		decode, config = png.Decode, png.DecodeConfig
	case "jpeg":
		decode, config = jpeg.Decode, jpeg.DecodeConfig
	case "bmp":
		decode, config = bmp.Decode, bmp.DecodeConfig
	case "tiff":
		decode, config = tiff.Decode, tiff.DecodeConfig
	}
	cfg, err := config(bytes.NewReader(data))
	if err != nil {
		return nil, decodeError(name, fm, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("datasets: %s: invalid %s image size %dx%d", name, fm, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("datasets: %s: %s image %dx%d exceeds %d pixels", name, fm, cfg.Width, cfg.Height, MaxPixels)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, decodeError(name, fm, err)
	}
	if _, ok := img.(*image.Gray16); ok {
		warnGray16(name)
	}
	info := pngInfo{plte: -1}
	if fm == "png" {
		info = readPNGInfo(data)
	}
	return toRGB(img, info)
}

// gray16Warned holds the files warnGray16 has warned about.
var gray16Warned sync.Map

// warnGray16 warns, once per file, that a 16-bit grayscale image loses
// everything above 255: Pillow's convert("RGB"), which the published code
// runs and DecodeRGB reproduces, clips it, so most such images turn white.
func warnGray16(name string) {
	if _, seen := gray16Warned.LoadOrStore(name, true); !seen {
		slog.Warn("16-bit grayscale image: values above 255 are clipped to white, as Pillow's convert(\"RGB\") does; convert it to 8 bits first", "file", name)
	}
}

// decodeError wraps a decoder error, naming the file and the format.
func decodeError(name, fm string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("datasets: %s: truncated or corrupt %s data: %w", name, fm, err)
	}
	return fmt.Errorf("datasets: %s: invalid %s data: %w", name, fm, err)
}

// toRGB converts a decoded image to RGB8 with PIL's conversion rules (see
// DecodeRGB). info describes the PNG header (zero for other formats).
func toRGB(img image.Image, info pngInfo) (*RGB8, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &RGB8{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	px := out.Pix
	set := func(i int, r, g, b uint8) { px[3*i], px[3*i+1], px[3*i+2] = r, g, b }

	if b.Min != (image.Point{}) { // never from these decoders; keep indexing simple
		genericRGB(img, out)
		return out, nil
	}
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				set(y*w+x, v, v, v)
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			for x := 0; x < w; x++ {
				v := clip16(uint16(row[2*x])<<8 | uint16(row[2*x+1]))
				set(y*w+x, v, v, v)
			}
		}
	case *image.YCbCr:
		if rgb, ok := ycbcrToRGB(m); ok {
			return rgb, nil
		}
		genericRGB(img, out)
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				p := row[4*x : 4*x+4]
				set(y*w+x, unpremul(p[0], p[3]), unpremul(p[1], p[3]), unpremul(p[2], p[3]))
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				set(y*w+x, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+8*w]
			for x := 0; x < w; x++ {
				p := row[8*x : 8*x+8] // big-endian 16-bit R, G, B, A
				a := p[6]
				set(y*w+x, unpremul(p[0], a), unpremul(p[2], a), unpremul(p[4], a))
			}
		}
	case *image.NRGBA64:
		gray16 := info.colorType == 0 && info.depth == 16 // PNG gray16 + tRNS: PIL mode I
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+8*w]
			for x := 0; x < w; x++ {
				p := row[8*x : 8*x+8]
				if gray16 {
					v := clip16(uint16(p[0])<<8 | uint16(p[1]))
					set(y*w+x, v, v, v)
				} else {
					set(y*w+x, p[0], p[2], p[4])
				}
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8
		n := len(m.Palette)
		if info.plte >= 0 && info.plte < n { // Go pads short PNG palettes with black
			n = info.plte
		}
		for i := range lut {
			if i < n {
				lut[i] = paletteRGB(m.Palette[i])
			} else { // PIL's palette starts as a gray ramp
				v := uint8(i)
				lut[i] = [3]uint8{v, v, v}
			}
		}
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				c := lut[v]
				set(y*w+x, c[0], c[1], c[2])
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				p := row[4*x : 4*x+4]
				nk := 255 - int(p[3])
				set(y*w+x, cmyk1(p[0], nk), cmyk1(p[1], nk), cmyk1(p[2], nk))
			}
		}
	default:
		genericRGB(img, out)
	}
	return out, nil
}

// clip16 is PIL's I/I;16 -> L/RGB conversion: clip, no scaling.
func clip16(v uint16) uint8 {
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// unpremul undoes associated alpha as PIL's "RGBa" unpacker: 0 for a == 0,
// unchanged for a == 255, else min(c*255/a, 255) with integer division.
func unpremul(c, a uint8) uint8 {
	switch a {
	case 255:
		return c
	case 0:
		return 0
	}
	v := int(c) * 255 / int(a)
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// cmyk1 is one channel of Pillow's cmyk2rgb: nk - MULDIV255(c, nk).
func cmyk1(c uint8, nk int) uint8 {
	t := int(c)*nk + 128
	v := nk - ((t>>8)+t)>>8
	if v < 0 {
		return 0
	}
	return uint8(v)
}

// paletteRGB returns a palette entry's colour without alpha compositing.
func paletteRGB(c color.Color) [3]uint8 {
	switch c := c.(type) {
	case color.RGBA:
		return [3]uint8{unpremul(c.R, c.A), unpremul(c.G, c.A), unpremul(c.B, c.A)}
	case color.NRGBA:
		return [3]uint8{c.R, c.G, c.B}
	case color.RGBA64: // TIFF colour maps are 16-bit; PIL keeps the high byte
		return [3]uint8{uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)}
	case nil:
		return [3]uint8{}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// genericRGB converts any other image through non-premultiplied RGBA.
func genericRGB(img image.Image, out *RGB8) {
	b := img.Bounds()
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c.R, c.G, c.B
			i += 3
		}
	}
}

// ImageSize reads only the header of the image file at path and returns
// its width and height: a cheap check, before long work, that a file is an
// image of a supported format (png, jpeg, bmp, tiff) within MaxPixels.
// A file whose header is fine may still fail to decode later.
func ImageSize(path string) (w, h int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	fm := format(head[:n])
	if fm == "" || fm == "gif" || fm == "webp" {
		return 0, 0, fmt.Errorf("datasets: %s: unknown or unsupported image format (want png, jpeg, bmp or tiff)", path)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("datasets: %s: %w", path, err)
	}
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, fmt.Errorf("datasets: %s: bad %s header: %w", path, fm, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > MaxPixels {
		return 0, 0, fmt.Errorf("datasets: %s: %dx%d image (at most %d pixels)", path, cfg.Width, cfg.Height, MaxPixels)
	}
	return cfg.Width, cfg.Height, nil
}
