package reports

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Figures are drawn at their printed size, so that a paper includes them
// at 100%: a two-column paper's text is about 495 pt wide and a column
// 240 pt; text is 7 to 10 pt. PNGs are rendered at pngDPI.
const (
	textWidth   = vg.Length(495)
	columnWidth = vg.Length(240)
	pngDPI      = 300
)

// Font sizes in points.
const (
	titleSize  = 10
	panelSize  = 8.5
	labelSize  = 8
	tickSize   = 7
	legendSize = 7.5
)

// markColor is the colour of the backbone mark under a figure's title.
var markColor = color.RGBA{R: 170, G: 20, B: 20, A: 255}

// textStyle is the figures' text style: Liberation Sans (regular only:
// the PDF backend cannot embed its bold face) at size points.
func textStyle(size float64, c color.Color) text.Style {
	f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
	return text.Style{Color: c, Font: f, Handler: plot.DefaultTextHandler}
}

// newPlot returns a panel styled for print: sans-serif text at the sizes
// above, a light grid drawn by the caller, thin axes and ticks, and
// neatTicks on y.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = textStyle(panelSize, color.Black).Font
	p.Title.Padding = vg.Points(4)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = textStyle(labelSize, color.Black).Font
		a.Tick.Label.Font = textStyle(tickSize, color.Black).Font
		a.LineStyle.Width = vg.Points(0.6)
		a.Tick.LineStyle.Width = vg.Points(0.6)
		a.Tick.Length = vg.Points(3)
		a.Padding = vg.Points(2)
	}
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.X.Label.Padding, p.Y.Label.Padding = vg.Points(2), vg.Points(2)
	p.Y.Tick.Marker = plot.TickerFunc(neatTicks)
	p.Legend.TextStyle.Font = textStyle(legendSize, color.Black).Font
	p.Legend.ThumbnailWidth = vg.Points(14)
	return p
}

// neatTicks labels about five to eight ticks over [lo, hi] at a step of 1,
// 2, 2.5 or 5 times a power of ten, with minor ticks halfway.
func neatTicks(lo, hi float64) []plot.Tick {
	span := hi - lo
	if !(span > 0) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	mag := math.Pow(10, math.Floor(math.Log10(span/6)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if math.Floor(hi/(m*mag)+1e-9)-math.Ceil(lo/(m*mag)-1e-9) < 8 { // at most 8 ticks
			step = m * mag
			break
		}
	}
	decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	if s := step / math.Pow(10, math.Floor(math.Log10(step)+1e-9)); s == 2.5 {
		decimals++
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+1e-9*step; i++ {
		v := i * step
		if v == 0 {
			v = 0 // not -0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
		if m := v + step/2; m <= hi {
			ticks = append(ticks, plot.Tick{Value: m})
		}
	}
	return ticks
}

// withHeadroom widens [lo, hi] by frac of its span on each side (by at
// least pad), so that markers do not touch the frame.
func withHeadroom(lo, hi, frac, pad float64) (float64, float64) {
	d := max((hi-lo)*frac, pad)
	return lo - d, hi + d
}

// legendEntry is one entry of a figure's shared legend.
type legendEntry struct {
	label  string
	thumbs []plot.Thumbnailer
}

// figure is a paper figure: a title, the backbone mark under it when
// there is one, panels on a grid of cols columns, and one legend shared by
// all panels under them, laid out in rows as wide as the figure.
type figure struct {
	title, mark    string
	panels         []*plot.Plot
	cols           int
	panelW, panelH vg.Length
	legend         []legendEntry
}

const (
	legendThumb = vg.Length(14)
	legendGap   = vg.Length(4)  // thumbnail to text
	legendSep   = vg.Length(12) // entry to entry
	legendLine  = vg.Length(11)
	figPad      = vg.Length(6)
)

// headerHeight is the height of the title and the mark.
func (f figure) headerHeight() vg.Length {
	h := figPad + vg.Points(titleSize+3)
	if f.mark != "" {
		h += vg.Points(legendSize + 3)
	}
	return h
}

// legendRow is one row of a figure's legend and its width.
type legendRow struct {
	entries []legendEntry
	width   vg.Length
}

// legendRows splits the legend into rows that fit width w.
func (f figure) legendRows(w vg.Length) []legendRow {
	sty := textStyle(legendSize, color.Black)
	var rows []legendRow
	for _, e := range f.legend {
		ew := legendThumb + legendGap + sty.Width(e.label)
		if len(rows) == 0 || rows[len(rows)-1].width+legendSep+ew > w-2*figPad {
			rows = append(rows, legendRow{})
		} else {
			rows[len(rows)-1].width += legendSep
		}
		r := &rows[len(rows)-1]
		r.entries = append(r.entries, e)
		r.width += ew
	}
	return rows
}

// size is the figure's width and height.
func (f figure) size() (vg.Length, vg.Length) {
	rows := (len(f.panels) + f.cols - 1) / f.cols
	w := f.panelW*vg.Length(f.cols) + figPad*3/2
	h := f.headerHeight() + f.panelH*vg.Length(rows)
	if n := len(f.legendRows(w)); n > 0 {
		h += vg.Length(n)*legendLine + figPad
	}
	return w, h + figPad
}

// draw draws the figure on c, which is f.size().
func (f figure) draw(c draw.Canvas) {
	title := textStyle(titleSize, color.Black)
	title.XAlign, title.YAlign = draw.XCenter, draw.YTop
	y := c.Max.Y - figPad
	c.FillText(title, vg.Point{X: c.Center().X, Y: y}, f.title)
	y -= vg.Points(titleSize + 3)
	if f.mark != "" {
		mark := textStyle(legendSize, markColor)
		mark.XAlign, mark.YAlign = draw.XCenter, draw.YTop
		c.FillText(mark, vg.Point{X: c.Center().X, Y: y}, f.mark)
	}
	rows := f.legendRows(c.Size().X)
	legendH := vg.Length(len(rows)) * legendLine
	if len(rows) > 0 {
		legendH += figPad
	}
	area := draw.Crop(c, figPad/2, -figPad, figPad+legendH, -f.headerHeight())
	n := (len(f.panels) + f.cols - 1) / f.cols
	grid := make([][]*plot.Plot, n)
	for i := range grid {
		grid[i] = make([]*plot.Plot, f.cols) // nil where the last row ends
		copy(grid[i], f.panels[i*f.cols:min((i+1)*f.cols, len(f.panels))])
	}
	cs := plot.Align(grid, draw.Tiles{Rows: n, Cols: f.cols, PadX: vg.Points(8), PadY: vg.Points(6)}, area)
	for i, p := range f.panels {
		p.Draw(cs[i/f.cols][i%f.cols])
	}
	sty := textStyle(legendSize, color.Black)
	sty.YAlign = draw.YCenter
	for r, row := range rows {
		x := c.Center().X - row.width/2
		yc := c.Min.Y + legendH - (vg.Length(r)+0.5)*legendLine
		for _, e := range row.entries {
			tc := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: x, Y: yc - legendLine/2 + 1}, Max: vg.Point{X: x + legendThumb, Y: yc + legendLine/2 - 1}}}
			for _, t := range e.thumbs {
				t.Thumbnail(&tc)
			}
			x += legendThumb + legendGap
			c.FillText(sty, vg.Point{X: x, Y: yc}, e.label)
			x += sty.Width(e.label) + legendSep
		}
	}
}

// save draws the figure into base+".png" (at pngDPI), ".svg" and ".pdf"
// and returns the three paths.
func (f figure) save(base string) ([]string, error) {
	w, h := f.size()
	png := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(pngDPI), vgimg.UseBackgroundColor(color.White))
	f.draw(draw.New(png))
	svg := vgsvg.New(w, h)
	f.draw(draw.New(svg))
	pdf := vgpdf.New(w, h)
	pdf.EmbedFonts(true)
	f.draw(draw.New(pdf))
	var out []string
	for _, o := range []struct {
		ext string
		w   io.WriterTo
	}{{".png", vgimg.PngCanvas{Canvas: png}}, {".svg", svg}, {".pdf", pdf}} {
		if err := writeFile(base+o.ext, o.w); err != nil {
			return nil, err
		}
		out = append(out, base+o.ext)
	}
	return out, nil
}

// writeFile writes a figure atomically (internal/atomicfile): a reader or
// a full disk never leaves a truncated figure at path.
func writeFile(path string, w io.WriterTo) error {
	if err := atomicfile.WriteFile(path, func(f io.Writer) error {
		_, err := w.WriteTo(f)
		return err
	}); err != nil {
		return fmt.Errorf("reports: writing %s: %w", path, err)
	}
	return nil
}
