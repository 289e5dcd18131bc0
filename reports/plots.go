package reports

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
)

// methodIndex is a method's place in the order of every table and figure:
// detector.Names(), each filtered variant "X+Y" right after Y (the
// paper's PaDiM, PaDiM+PaDiM, PatchCore, PaDiM+PatchCore), filters in
// that order; unknown methods last.
func methodIndex(m string) int {
	n := len(detector.Names())
	filter, det, err := detector.Split(m)
	if err != nil {
		return n * (n + 1)
	}
	i := slices.Index(detector.Names(), det) * (n + 1)
	if filter != "" {
		i += 1 + slices.Index(detector.Names(), filter)
	}
	return i
}

// methodColor gives every method one colour in every figure: a colour per
// detector, darker behind an image-level filter ("X+Y" is a darker Y).
func methodColor(m string) color.Color {
	filter, det, err := detector.Split(m)
	if err != nil {
		return color.Gray{Y: 128}
	}
	c := plotutil.Color(slices.Index(detector.Names(), det))
	if filter == "" {
		return c
	}
	r, g, b, _ := c.RGBA()
	return color.RGBA{R: uint8(r >> 9), G: uint8(g >> 9), B: uint8(b >> 9), A: 255}
}

// RobustnessCurve draws metric (averaged over classes) against the noise
// ratio, one line per method, without overlap and with overlap side by
// side on one y range (one panel when the sweep ran one setting only);
// clean training (ratio 0) starts both panels. Where the Average has a
// std over replicates (Row.Std), a translucent band of the method's
// colour spans mean ± 1 std under its line (bandRuns says where), and the
// legend says so. One legend serves both panels; the backbone mark of the
// tables stands under the title. It writes base+".png", ".svg" and ".pdf"
// and returns their paths. Settings whose Average is missing (a class
// without the cell) are left out of the lines.
func RobustnessCurve(tables []Table, metric, title, base string) ([]string, error) {
	f := figure{title: title, panelW: textWidth / 2, panelH: 190}
	if len(tables) > 0 {
		f.mark = tables[0].Mark // Tables gives every table the mark of all cells
	}
	var ratios []float64
	lo, hi := math.Inf(1), math.Inf(-1)
	var legend []string
	banded := false
	for _, overlap := range []bool{false, true} {
		p := newPlot("No overlap", "Noise ratio", MetricLabel(metric)+", mean over classes")
		if overlap {
			p.Title.Text = "Overlap"
		}
		p.Add(grid())
		var bands, lines []plot.Plotter // bands first, under every line
		for _, m := range methods(tables) {
			var pts []curvePoint
			for _, t := range tables {
				if t.Metric != metric || (t.Ratio > 0 && t.Overlap != overlap) {
					continue
				}
				j := slices.Index(t.Methods, m)
				if j < 0 {
					continue
				}
				for _, r := range t.Rows {
					if r.Name == "Average" && !math.IsNaN(r.Values[j]) {
						pt := curvePoint{x: t.Ratio, y: r.Values[j], std: math.NaN()}
						lo, hi = min(lo, pt.y), max(hi, pt.y)
						if r.hasStd(j) {
							pt.std = r.std(j)
							lo, hi = min(lo, pt.y-pt.std), max(hi, pt.y+pt.std)
						}
						pts = append(pts, pt)
						if !slices.Contains(ratios, t.Ratio) {
							ratios = append(ratios, t.Ratio)
						}
					}
				}
			}
			if len(pts) == 0 {
				continue
			}
			slices.SortFunc(pts, func(a, b curvePoint) int { return cmp.Compare(a.x, b.x) })
			xys := make(plotter.XYs, len(pts))
			for i, pt := range pts {
				xys[i] = plotter.XY{X: pt.x, Y: pt.y}
			}
			l, sc, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.Color, sc.Color = methodColor(m), methodColor(m)
			l.Width = vg.Points(1.2)
			sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = methodGlyph(m), vg.Points(2.2)
			for _, run := range bandRuns(pts) {
				bands = append(bands, band{ring: bandRing(run), color: bandColor(methodColor(m))})
				banded = true
			}
			lines = append(lines, l, sc)
			if !slices.Contains(legend, m) {
				legend = append(legend, m)
				f.legend = append(f.legend, legendEntry{m, []plot.Thumbnailer{l, sc}})
			}
		}
		if len(lines) > 0 { // a sweep may run one overlap setting only
			p.Add(bands...)
			p.Add(lines...)
			f.panels = append(f.panels, p)
		}
	}
	if len(f.panels) == 0 {
		return nil, fmt.Errorf("reports: no %s values to plot", metric)
	}
	if banded {
		f.legend = append(f.legend, legendEntry{bandLegend, []plot.Thumbnailer{band{color: bandColor(color.Gray{Y: 90})}}})
	}
	slices.Sort(ratios)
	var xticks []plot.Tick
	for _, r := range ratios {
		xticks = append(xticks, plot.Tick{Value: r, Label: strconv.FormatFloat(r, 'g', -1, 64)})
	}
	lo, hi = withHeadroom(lo, hi, 0.08, 0.005)
	x0, x1 := withHeadroom(ratios[0], ratios[len(ratios)-1], 0.06, 0.01)
	for i, p := range f.panels {
		p.Y.Min, p.Y.Max = lo, hi
		p.X.Min, p.X.Max = x0, x1
		p.X.Tick.Marker = plot.ConstantTicks(xticks)
		if i > 0 { // the y axis is shared: label it once
			p.Y.Label.Text = ""
		}
	}
	f.cols = len(f.panels)
	if f.cols == 1 {
		f.panelW = columnWidth
	}
	return f.save(base)
}

// bandLegend is the legend entry of the robustness curve's bands.
const bandLegend = "band: ± 1 std over replicates"

// bandAlpha is the opacity of a band (0.2).
const bandAlpha = 51

// curvePoint is one point of a method's robustness curve: the Average y
// at noise ratio x and its sample std over replicates (NaN when none).
type curvePoint struct{ x, y, std float64 }

// bandRuns splits a curve's points (sorted by x) into the maximal runs of
// consecutive points that have a std: each run is one piece of the band,
// so that a point without one (one replicate, e.g. clean training run
// with one seed) is not given a std of 0.
func bandRuns(pts []curvePoint) [][]curvePoint {
	var runs [][]curvePoint
	start := -1
	for i := 0; i <= len(pts); i++ {
		if i < len(pts) && !math.IsNaN(pts[i].std) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			runs = append(runs, pts[start:i])
			start = -1
		}
	}
	return runs
}

// bandRing is the outline of one run's band: y+std from the first point
// to the last, then y-std back. A run of one point gives its two ends,
// drawn as a narrow bar (band.Plot).
func bandRing(run []curvePoint) plotter.XYs {
	ring := make(plotter.XYs, 0, 2*len(run))
	for _, pt := range run {
		ring = append(ring, plotter.XY{X: pt.x, Y: pt.y + pt.std})
	}
	for i := len(run) - 1; i >= 0; i-- {
		ring = append(ring, plotter.XY{X: run[i].x, Y: run[i].y - run[i].std})
	}
	return ring
}

// bandColor is c at the bands' opacity.
func bandColor(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: bandAlpha}
}

// band is a translucent area filled without an outline: a ring in data
// coordinates (bandRing); a ring of two points is drawn as a bar
// bandBarWidth wide.
type band struct {
	ring  plotter.XYs
	color color.Color
}

const bandBarWidth = vg.Length(4)

// Plot fills the band on the plot's data canvas.
func (b band) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	var pts []vg.Point
	if len(b.ring) == 2 {
		x, w := trX(b.ring[0].X), bandBarWidth/2
		y0, y1 := trY(b.ring[0].Y), trY(b.ring[1].Y)
		pts = []vg.Point{{X: x - w, Y: y0}, {X: x + w, Y: y0}, {X: x + w, Y: y1}, {X: x - w, Y: y1}}
	} else {
		for _, xy := range b.ring {
			pts = append(pts, vg.Point{X: trX(xy.X), Y: trY(xy.Y)})
		}
	}
	if len(pts) > 0 {
		c.FillPolygon(b.color, c.ClipPolygonXY(pts))
	}
}

// Thumbnail fills the legend thumbnail's middle.
func (b band) Thumbnail(c *draw.Canvas) {
	h := (c.Max.Y - c.Min.Y) / 4
	c.FillPolygon(b.color, []vg.Point{{X: c.Min.X, Y: c.Min.Y + h}, {X: c.Max.X, Y: c.Min.Y + h}, {X: c.Max.X, Y: c.Max.Y - h}, {X: c.Min.X, Y: c.Max.Y - h}})
}

// grid is the panels' light background grid.
func grid() *plotter.Grid {
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = color.Gray{Y: 225}, color.Gray{Y: 225}
	g.Vertical.Width, g.Horizontal.Width = vg.Points(0.4), vg.Points(0.4)
	return g
}

// methodGlyph gives every detector a marker shape, so that lines stay
// apart in grey print.
func methodGlyph(m string) draw.GlyphDrawer {
	_, det, _ := detector.Split(m)
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PlusGlyph{}, draw.CrossGlyph{}, draw.RingGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}}
	return shapes[max(0, slices.Index(detector.Names(), det))%len(shapes)]
}

// ClassBars draws table t as grouped bars: one group per class (and the
// Average), one bar per method, written to base+".png", ".svg" and ".pdf".
// The y axis starts at 0.5 (chance for AUROC) when every value is at least
// that, else at the tenth below the smallest value; its label says where.
func ClassBars(t Table, base string) ([]string, error) {
	var names []string
	for _, r := range t.Rows {
		if r.Name != "Gap" {
			names = append(names, r.Name)
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range t.Rows[:len(names)] {
		for _, v := range r.Values {
			if !math.IsNaN(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		return nil, fmt.Errorf("reports: no values in table %s", t.Title())
	}
	start := 0.5
	if lo < start {
		start = math.Max(0, math.Floor(lo*10)/10)
	}
	ylabel := fmt.Sprintf("%s (y axis from %g)", MetricLabel(t.Metric), start)
	if start == 0.5 && strings.Contains(t.Metric, "auroc") {
		ylabel = MetricLabel(t.Metric) + " (y axis from 0.5, chance)"
	}
	f := figure{title: t.Title(), mark: t.Mark, cols: 1, panelH: 180}
	f.panelW = columnWidth
	if len(names)*len(t.Methods) > 16 {
		f.panelW = textWidth
	}
	p := newPlot("", "Class", ylabel)
	p.Add(grid())
	group := 0.8 * float64(f.panelW-40) / float64(len(names)) // points per group of bars
	width := vg.Points(group / float64(max(1, len(t.Methods))))
	for j, m := range t.Methods {
		vals := make(plotter.Values, len(names))
		for i, r := range t.Rows[:len(names)] {
			if v := r.Values[j]; !math.IsNaN(v) {
				vals[i] = v
			}
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		b.Color = methodColor(m)
		b.LineStyle.Width = 0
		b.Offset = width * vg.Length(float64(j)-float64(len(t.Methods)-1)/2)
		p.Add(b)
		f.legend = append(f.legend, legendEntry{m, []plot.Thumbnailer{b}})
	}
	p.Y.Min, p.Y.Max = start, math.Min(1, math.Ceil((hi+0.01)*20)/20)
	if p.Y.Max <= hi {
		p.Y.Max = hi + 0.02
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.X.Tick.Label.Font = textStyle(labelSize, color.Black).Font
	f.panels = []*plot.Plot{p}
	return f.save(base)
}

// methods lists the methods of the tables in report order.
func methods(tables []Table) []string {
	var ms []string
	for _, t := range tables {
		for _, m := range t.Methods {
			if !slices.Contains(ms, m) {
				ms = append(ms, m)
			}
		}
	}
	return ms
}

// ImageROC draws the image-level ROC curves of one class under one noise
// setting, one line per method (from the per-image scores the cells
// stored), with each method's AUROC in the legend and the chance diagonal,
// on a square plot a column wide, to base+".png", ".svg" and ".pdf". Fold
// 0 is drawn.
func ImageROC(recs map[string]experiments.Record, class string, ratio float64, overlap bool, base string) ([]string, error) {
	var ms []string
	byMethod := map[string]experiments.Record{}
	for _, r := range recs {
		c := r.Cell
		if c.Class == class && c.Ratio == ratio && c.Overlap == overlap && c.Fold == 0 {
			ms = append(ms, c.Method)
			byMethod[c.Method] = r
		}
	}
	slices.SortFunc(ms, func(a, b string) int { return methodIndex(a) - methodIndex(b) })
	if len(ms) == 0 {
		return nil, fmt.Errorf("reports: no cells of class %s at noise %g overlap %t", class, ratio, overlap)
	}
	setting := Table{Ratio: ratio, Overlap: overlap}.Setting()
	p := newPlot("", "False positive rate", "True positive rate (legend: AUROC)")
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.X.Tick.Marker = plot.TickerFunc(neatTicks)
	p.Add(grid())
	chance, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	chance.Color, chance.Width, chance.Dashes = color.Gray{Y: 120}, vg.Points(0.7), []vg.Length{vg.Points(3), vg.Points(2)}
	p.Add(chance)
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(3), vg.Points(3)
	var marks []string
	for _, m := range ms {
		res, err := byMethod[m].Decode()
		if err != nil {
			return nil, fmt.Errorf("reports: cell %s: %w", byMethod[m].Key, err)
		}
		marks = append(marks, res.Mark)
		scores := make([]float32, len(res.PerImage))
		labels := make([]bool, len(res.PerImage))
		for i, im := range res.PerImage {
			scores[i], labels[i] = im.Score, im.Label == 1
		}
		c, err := experiments.NewCurve(scores, labels)
		if err != nil {
			return nil, fmt.Errorf("reports: cell %s: %w", byMethod[m].Key, err)
		}
		auc, err := c.AUROC()
		if err != nil {
			return nil, fmt.Errorf("reports: cell %s: %w", byMethod[m].Key, err)
		}
		pts := plotter.XYs{{X: 0, Y: 0}}
		for i := range c.Thresholds {
			pts = append(pts, plotter.XY{X: float64(c.FP[i]) / float64(c.N), Y: float64(c.TP[i]) / float64(c.P)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color = methodColor(m)
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s %.3f", m, auc), l)
	}
	p.Legend.Add("chance 0.500", chance)
	f := figure{title: class + ": image ROC, " + setting, mark: backboneMark(marks), cols: 1, panelW: columnWidth, panels: []*plot.Plot{p}}
	f.panelH = squareHeight(p, f.panelW)
	return f.save(base)
}

// squareHeight is the height of a panel of width w whose data area is
// square: the data width, plus the height the title and the x axis take.
func squareHeight(p *plot.Plot, w vg.Length) vg.Length {
	const probe = vg.Length(400)
	c := draw.New(vgimg.New(w, probe))
	dc := p.DataCanvas(c)
	return (dc.Max.X - dc.Min.X) + probe - (dc.Max.Y - dc.Min.Y)
}

// BankFigure draws the memory banks of one class in the noisiest setting
// of recs (largest ratio, overlap when run), one panel per method (each
// bank on its own two principal directions, three panels a row at the
// text width), entries inside a defect of an injected image in red, other
// entries from injected images in orange, clean ones in grey (banks
// written before defects were recorded: every entry of an injected image
// in red), with one legend. It reads the banks a run wrote in the results
// folder dir (experiments.Bank2DPath) and writes base+".png", ".svg" and
// ".pdf".
func BankFigure(dir string, recs map[string]experiments.Record, class, base string) ([]string, error) {
	best := experiments.Cell{Ratio: -1}
	for _, r := range recs {
		c := r.Cell
		if c.Class == class && (c.Ratio > best.Ratio || (c.Ratio == best.Ratio && c.Overlap && !best.Overlap)) {
			best = c
		}
	}
	if best.Ratio <= 0 {
		return nil, fmt.Errorf("reports: no noisy cells of class %s", class)
	}
	var ms []string // the setting's methods, filtered ones included
	var marks []string
	for _, r := range recs {
		if c := r.Cell; c.Class == class && c.Ratio == best.Ratio && c.Overlap == best.Overlap && c.Fold == 0 && !slices.Contains(ms, c.Method) {
			ms = append(ms, c.Method)
			res, err := r.Decode()
			if err != nil {
				return nil, fmt.Errorf("reports: cell %s: %w", r.Key, err)
			}
			marks = append(marks, res.Mark)
		}
	}
	slices.SortFunc(ms, func(a, b string) int { return cmp.Or(cmp.Compare(methodIndex(a), methodIndex(b)), cmp.Compare(a, b)) })
	f := figure{title: fmt.Sprintf("%s: memory banks on their first two principal components, %s", class, Table{Ratio: best.Ratio, Overlap: best.Overlap}.Setting()),
		mark: backboneMark(marks)}
	legend := map[string]bool{}
	for _, m := range ms {
		c := best
		c.Method, c.Fold = m, 0
		path := experiments.Bank2DPath(dir, c.Dir())
		bank, err := experiments.ReadBank2D(path)
		if errors.As(err, new(*fs.PathError)) {
			continue // no bank for this cell
		}
		if err != nil {
			return nil, fmt.Errorf("reports: %s: not a bank file", path)
		}
		var clean, noisy, defect plotter.XYs
		for i := range bank.X {
			pt := plotter.XY{X: float64(bank.X[i]), Y: float64(bank.Y[i])}
			switch {
			case bank.Defect != nil && bank.Defect[i], bank.Defect == nil && bank.Noisy[i]:
				defect = append(defect, pt)
			case bank.Noisy[i]:
				noisy = append(noisy, pt)
			default:
				clean = append(clean, pt)
			}
		}
		what := "in defects"
		if bank.Defect == nil {
			what = "from injected images"
		}
		p := newPlot(fmt.Sprintf("%s\n%d of %d %s", m, len(defect), len(bank.X), what), "", "")
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(nil), plot.ConstantTicks(nil)
		p.X.Padding, p.Y.Padding = 0, 0
		for _, s := range []struct {
			pts plotter.XYs
			col color.Color
			lab string
			r   float64
		}{{clean, color.Gray{Y: 185}, "entry from a clean image", 0.7}, {noisy, color.RGBA{R: 245, G: 160, B: 60, A: 255}, "from an injected image, outside its defect", 0.9},
			{defect, color.RGBA{R: 200, A: 255}, "inside a defect of an injected image", 1.8}} {
			if len(s.pts) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(s.pts)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = s.col, vg.Points(s.r), draw.CircleGlyph{}
			p.Add(sc)
			if !legend[s.lab] {
				legend[s.lab] = true
				f.legend = append(f.legend, legendEntry{s.lab, []plot.Thumbnailer{sc}})
			}
		}
		f.panels = append(f.panels, p)
	}
	if len(f.panels) == 0 {
		return nil, fmt.Errorf("reports: no bank files for class %s under %s", class, dir)
	}
	f.cols = min(len(f.panels), 3)
	f.panelW = textWidth / 3
	f.panelH = f.panelW + 14
	return f.save(base)
}
