package reports

import (
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/experiments"
)

// writeSettings writes the cells' recorded settings to b: those every
// cell shares with their values, and the names of those that vary between
// cells (class, noise and method do, by design).
func writeSettings(b *strings.Builder, leaves []map[string]string, unrecorded int) {
	if len(leaves) == 0 {
		return
	}
	var same, vary []string
	for _, k := range slices.Sorted(maps.Keys(leaves[0])) {
		v, varies := leaves[0][k], false
		for _, l := range leaves[1:] {
			if w, ok := l[k]; !ok || w != v {
				varies = true
				break
			}
		}
		if varies {
			vary = append(vary, k)
		} else {
			same = append(same, fmt.Sprintf("`%s` %s", k, v))
		}
	}
	for _, l := range leaves[1:] {
		for k := range l {
			if _, ok := leaves[0][k]; !ok && !slices.Contains(vary, k) {
				vary = append(vary, k)
			}
		}
	}
	slices.Sort(vary)
	fmt.Fprintf(b, "- settings of every cell: %s\n", strings.Join(same, ", "))
	if len(vary) > 0 {
		fmt.Fprintf(b, "- settings that differ between cells: %s\n", "`"+strings.Join(vary, "`, `")+"`")
	}
	if unrecorded > 0 {
		fmt.Fprintf(b, "- %d cells record no settings (written before settings were recorded)\n", unrecorded)
	}
}

// WriteResultsMarkdown writes a results folder's RESULTS.md: provenance
// (commits, backbones with weights hash or the random-init mark, devices,
// dates, data, seconds per stage summed over cells), the config, the pixel
// and image AUROC tables and the figures (paths relative to the folder).
func WriteResultsMarkdown(w io.Writer, recs map[string]experiments.Record, tables []Table, config []byte, figures []string, metrics []string) error {
	var commits, backbones, devices, data, dates []string
	var leaves []map[string]string // each recorded settings' leaves
	unrecorded := 0
	stages := map[string]float64{}
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	results := make(map[string]*experiments.Result, len(recs))
	for _, k := range keys {
		res, err := recs[k].Decode()
		if err != nil {
			return fmt.Errorf("reports: result %s: %w", k, err)
		}
		results[k] = res
		b := res.Backbone
		id := fmt.Sprintf("%s, weights sha256 %s, BatchNorm %s", b.Arch, b.SHA256, b.BNPass)
		if b.RandomInit {
			id = fmt.Sprintf("%s, **%s** (seed %d; not comparable with the paper), BatchNorm %s", b.Arch, res.Mark, b.Seed, b.BNPass)
		}
		for _, s := range []struct {
			list *[]string
			v    string
		}{{&commits, res.Commit}, {&backbones, id}, {&devices, res.Device}, {&data, res.Data}, {&dates, res.Date}} {
			if s.v != "" && !slices.Contains(*s.list, s.v) {
				*s.list = append(*s.list, s.v)
			}
		}
		if res.Settings != nil {
			leaves = append(leaves, res.Settings.Leaves())
		} else {
			unrecorded++
		}
		for st, v := range res.Seconds {
			stages[st] += v
		}
	}
	slices.Sort(dates)
	var b strings.Builder
	fmt.Fprintf(&b, "# Results\n\nWritten by `softpatch report` from %d cells.\n\n## Provenance\n\n", len(recs))
	fmt.Fprintf(&b, "- commit: %s\n- backbone: %s\n- device: %s\n- data: %s\n", strings.Join(commits, ", "), strings.Join(backbones, "; "),
		strings.Join(devices, "; "), strings.Join(data, ", "))
	if len(dates) > 0 {
		fmt.Fprintf(&b, "- cells finished: %s to %s (UTC)\n", dates[0], dates[len(dates)-1])
	}
	var st []string
	total := 0.0
	names := []string{"features", "discriminator", "coreset", "scoring", "maps", "metrics"}
	for _, name := range slices.Sorted(maps.Keys(stages)) { // the other methods' own stages (PaDiM's fit, CFLOW's train)
		if !slices.Contains(names, name) && stages[name] > 0 {
			names = append(names, name)
		}
	}
	for _, name := range names {
		st = append(st, fmt.Sprintf("%s %.1f", name, stages[name]))
		total += stages[name]
	}
	fmt.Fprintf(&b, "- seconds per stage, summed over cells: %s (total %.1f; the class features computed before a class's first cell are not in it)\n", strings.Join(st, ", "), total)
	writeSettings(&b, leaves, unrecorded)
	if len(config) > 0 {
		fmt.Fprintf(&b, "\n## Config\n\n```json\n%s\n```\n", strings.TrimSpace(string(config)))
	}
	if _, err := io.WriteString(w, b.String()+"\n## Tables\n\n"); err != nil {
		return err
	}
	for _, t := range tables {
		// AUROCs of every setting, and the metrics asked for; the defect
		// share of the banks where there is noise.
		if t.Metric != "pixel_auroc" && t.Metric != "image_auroc" && !slices.Contains(metrics, t.Metric) &&
			(t.Metric != "defect_bank_fraction" || t.Ratio == 0) {
			continue
		}
		if err := t.WriteMarkdown(w); err != nil {
			return err
		}
	}
	if err := writeBestEpochs(w, results, keys); err != nil {
		return err
	}
	if err := writeOverlays(w, recs, results, keys); err != nil {
		return err
	}
	if len(figures) > 0 {
		if _, err := io.WriteString(w, "## Figures\n\n"); err != nil {
			return err
		}
		for _, f := range figures {
			if filepath.Ext(f) != ".png" {
				continue
			}
			if _, err := fmt.Fprintf(w, "![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(f), ".png"), filepath.Base(f)); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeOverlays writes the anomaly-map overlays of the noisiest setting
// (largest ratio, overlap when run): per class and method, the highest-
// and the lowest-scored test image. results are the records' decoded
// results, by key.
func writeOverlays(w io.Writer, recs map[string]experiments.Record, results map[string]*experiments.Result, keys []string) error {
	best := experiments.Cell{Ratio: -1}
	for _, k := range keys {
		c := recs[k].Cell
		if c.Ratio > best.Ratio || (c.Ratio == best.Ratio && c.Overlap && !best.Overlap) {
			best = c
		}
	}
	var b strings.Builder
	for _, k := range keys {
		r := recs[k]
		if r.Cell.Ratio != best.Ratio || r.Cell.Overlap != best.Overlap || r.Cell.Fold != 0 {
			continue
		}
		res := results[k]
		if len(res.Overlays) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", r.Cell.Class, r.Cell.Method)
		for _, o := range res.Overlays {
			fmt.Fprintf(&b, " ![%s](%s) %s, %.3g |", o.Which, o.File, o.Image, o.Score)
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return nil
	}
	t := Table{Ratio: best.Ratio, Overlap: best.Overlap}
	_, err := fmt.Fprintf(w, "## Anomaly maps (%s)\n\nThe highest- and the lowest-scored test image of each cell, its map normalised over the cell's maps.\n\n| class | method | highest | lowest |\n|---|---|---|---|\n%s\n", t.Setting(), b.String())
	return err
}

// writeBestEpochs writes, for the cells of detectors that train in epochs
// (CFLOW), their last epoch's AUROCs next to the published protocol's
// best epoch (experiments.BestEpoch).
func writeBestEpochs(w io.Writer, results map[string]*experiments.Result, keys []string) error {
	var b strings.Builder
	for _, k := range keys {
		r := results[k]
		be := r.BestEpoch
		if be == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("## Last epoch and the published protocol's best epoch\n\n" +
				"The cells' tables report the last epoch. CFLOW's published code scores the test set after every meta-epoch " +
				"and reports each metric at its best epoch (model selection on the test set); that is the second number.\n\n" +
				"| cell | epochs | image AUROC last | best (epoch) | pixel AUROC last | best (epoch) |\n|---|---|---|---|---|---|\n")
		}
		fmt.Fprintf(&b, "| %s | %d | %.4f | %.4f (%d) | %.4f | %.4f (%d) |\n", k, be.Epochs, r.ImageAUROC, be.ImageAUROC, be.ImageEpoch,
			r.PixelAUROC, be.PixelAUROC, be.PixelEpoch)
	}
	if b.Len() == 0 {
		return nil
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
