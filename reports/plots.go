package reports

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"io"
	"io/fs"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/internal/atomicfile"
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
// side (one panel when the sweep ran one setting only); clean training
// (ratio 0) starts both panels. It writes base+".png"
// and base+".svg" and returns their paths. Settings whose Average is
// missing (a class without the cell) are left out of the lines.
func RobustnessCurve(tables []Table, metric, title, base string) ([]string, error) {
	var panels []*plot.Plot
	for _, overlap := range []bool{false, true} {
		p := plot.New()
		p.Title.Text = "no overlap"
		if overlap {
			p.Title.Text = "overlap"
		}
		p.X.Label.Text = "noise ratio"
		p.Y.Label.Text = metric + " (mean over classes)"
		p.Legend.Top, p.Legend.Left = false, true
		p.Add(plotter.NewGrid())
		lines := 0
		for _, m := range methods(tables) {
			var pts plotter.XYs
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
						pts = append(pts, plotter.XY{X: t.Ratio, Y: r.Values[j]})
					}
				}
			}
			if len(pts) == 0 {
				continue
			}
			slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
			l, sc, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, err
			}
			l.Color, sc.Color = methodColor(m), methodColor(m)
			l.Width = vg.Points(1.5)
			p.Add(l, sc)
			p.Legend.Add(m, l, sc)
			lines++
		}
		if lines > 0 { // a sweep may run one overlap setting only
			panels = append(panels, p)
		}
	}
	if len(panels) == 0 {
		return nil, fmt.Errorf("reports: no %s values to plot", metric)
	}
	// Both panels on one y range, so that drops compare at a glance.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range panels {
		lo, hi = min(lo, p.Y.Min), max(hi, p.Y.Max)
	}
	for _, p := range panels {
		p.Y.Min, p.Y.Max = lo, hi
	}
	w, h := vg.Points(410*float64(len(panels))), vg.Points(340)
	return saveFigure(w, h, base, func(c draw.Canvas) { drawPanels(c, panels, title) })
}

// drawPanels draws plots side by side under a common title.
func drawPanels(c draw.Canvas, panels []*plot.Plot, title string) {
	drawGrid(c, panels, len(panels), title)
}

// drawGrid is drawPanels in rows of cols panels.
func drawGrid(c draw.Canvas, panels []*plot.Plot, cols int, title string) {
	top := draw.Crop(c, 0, 0, 0, -vg.Points(24))
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols) // nil where the last row ends
		copy(grid[i], panels[i*cols:min((i+1)*cols, len(panels))])
	}
	cs := plot.Align(grid, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12)}, top)
	for i, p := range panels {
		p.Draw(cs[i/cols][i%cols])
	}
	ft := plot.DefaultFont
	ft.Size = vg.Points(13)
	sty := draw.TextStyle{Color: color.Black, Font: ft, Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YTop}
	c.FillText(sty, vg.Point{X: c.Center().X, Y: c.Max.Y - vg.Points(4)}, title)
}

// saveFigure draws a figure of w x h twice, into base+".png" and
// base+".svg", and returns the two paths.
func saveFigure(w, h vg.Length, base string, drawFn func(draw.Canvas)) ([]string, error) {
	png := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseBackgroundColor(color.White))
	drawFn(draw.New(png))
	svg := vgsvg.New(w, h)
	drawFn(draw.New(svg))
	pdf := vgpdf.New(w, h)
	pdf.EmbedFonts(true)
	drawFn(draw.New(pdf))
	var out []string
	for _, f := range []struct {
		ext string
		w   io.WriterTo
	}{{".png", vgimg.PngCanvas{Canvas: png}}, {".svg", svg}, {".pdf", pdf}} {
		if err := writeFile(base+f.ext, f.w); err != nil {
			return nil, err
		}
		out = append(out, base+f.ext)
	}
	return out, nil
}

// ClassBars draws table t as grouped bars: one group per class (and the
// Average), one bar per method, written to base+".png" and ".svg".
func ClassBars(t Table, base string) ([]string, error) {
	p := plot.New()
	p.Title.Text = t.Title()
	p.Y.Label.Text = t.Metric
	p.Legend.Top = true
	p.Legend.Left = false
	var names []string
	for _, r := range t.Rows {
		if r.Name != "Gap" {
			names = append(names, r.Name)
		}
	}
	p.Add(plotter.NewGrid())
	width := vg.Points(60 / float64(max(1, len(t.Methods))))
	lo := math.Inf(1)
	for j, m := range t.Methods {
		vals := make(plotter.Values, len(names))
		for i, r := range t.Rows[:len(names)] {
			v := r.Values[j]
			if math.IsNaN(v) {
				v = 0
			} else {
				lo = min(lo, v)
			}
			vals[i] = v
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		b.Color = methodColor(m)
		b.LineStyle.Width = 0
		b.Offset = width * vg.Length(float64(j)-float64(len(t.Methods)-1)/2)
		p.Add(b)
		p.Legend.Add(m, b)
	}
	if math.IsInf(lo, 1) {
		return nil, fmt.Errorf("reports: no values in table %s", t.Title())
	}
	p.Y.Min = math.Max(0, math.Floor((lo-0.05)*20)/20)
	p.Y.Max = 1.05
	p.NominalX(names...)
	return saveFigure(vg.Points(140+90*float64(len(names))), vg.Points(340), base, p.Draw)
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

// ImageROC draws the image-level ROC curves of one class under one noise
// setting, one line per method (from the per-image scores the cells
// stored), with each method's AUROC in the legend, to base+".png" and
// ".svg". Fold 0 is drawn.
func ImageROC(recs map[string]experiments.Record, class string, ratio float64, overlap bool, base string) ([]string, error) {
	p := plot.New()
	setting := Table{Metric: "image ROC", Ratio: ratio, Overlap: overlap}
	p.Title.Text = class + ": " + setting.Title()
	p.X.Label.Text = "false positive rate"
	p.Y.Label.Text = "true positive rate"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Legend.Top, p.Legend.Left = false, false
	p.Add(plotter.NewGrid())
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
	for _, m := range ms {
		res, err := byMethod[m].Decode()
		if err != nil {
			return nil, fmt.Errorf("reports: cell %s: %w", byMethod[m].Key, err)
		}
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
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (AUROC %.3f)", m, auc), l)
	}
	return saveFigure(vg.Points(420), vg.Points(400), base, p.Draw)
}

// BankFigure draws the memory banks of one class in the noisiest setting
// of recs (largest ratio, overlap when run), one panel per method (each
// bank on its own two principal directions, three panels a row), entries
// inside a defect of an injected image in red, other entries from
// injected images in orange, clean ones in grey (banks written before
// defects were recorded: every entry of an injected image in red). It reads the banks a run
// wrote in the results folder dir (experiments.Bank2DPath) and writes
// base+".png" and ".svg".
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
	for _, r := range recs {
		if c := r.Cell; c.Class == class && c.Ratio == best.Ratio && c.Overlap == best.Overlap && !slices.Contains(ms, c.Method) {
			ms = append(ms, c.Method)
		}
	}
	slices.SortFunc(ms, func(a, b string) int { return cmp.Or(cmp.Compare(methodIndex(a), methodIndex(b)), cmp.Compare(a, b)) })
	var panels []*plot.Plot
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
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %d of %d in defects", m, len(defect), len(bank.X))
		if bank.Defect == nil {
			p.Title.Text = fmt.Sprintf("%s: %d of %d from noisy images", m, len(defect), len(bank.X))
		}
		p.X.Label.Text, p.Y.Label.Text = "PC 1", "PC 2"
		p.Legend.Top = true
		for _, s := range []struct {
			pts plotter.XYs
			col color.Color
			lab string
			r   vg.Length
		}{{clean, color.Gray{Y: 185}, "clean image", 1}, {noisy, color.RGBA{R: 245, G: 170, B: 80, A: 255}, "injected, outside the defect", 1},
			{defect, color.RGBA{R: 200, A: 255}, "inside a defect", 2.6}} {
			if len(s.pts) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(s.pts)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = s.col, vg.Points(float64(s.r)), draw.CircleGlyph{}
			p.Add(sc)
			if len(panels) == 0 { // one legend, in the first panel
				p.Legend.Add(s.lab, sc)
			}
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return nil, fmt.Errorf("reports: no bank files for class %s under %s", class, dir)
	}
	title := fmt.Sprintf("%s memory banks, %s", class, Table{Metric: "PCA", Ratio: best.Ratio, Overlap: best.Overlap}.Title())
	cols := min(len(panels), 3)
	rows := (len(panels) + cols - 1) / cols
	w, h := vg.Points(260*float64(cols)), vg.Points(24+250*float64(rows))
	return saveFigure(w, h, base, func(c draw.Canvas) { drawGrid(c, panels, cols, title) })
}
