package experiments

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func record(c Cell, auroc float64) Record {
	b, _ := json.Marshal(map[string]any{"image_auroc": auroc, "pixel_auroc": auroc / 2, "per_image": []int{1, 2}})
	return Record{Key: c.Key(), Cell: c, Result: b}
}

// TestResultsResume appends records from two shards, cuts the last write
// short as a crash would, and checks what a rerun reads, what it still has
// to run, and that appending after the cut line works.
func TestResultsResume(t *testing.T) {
	dir := t.TempDir()
	cells := []Cell{{Class: "wood", Method: "patchcore"}, {Class: "wood", Method: "softpatch-lof"},
		{Class: "pill", Ratio: 0.1, Overlap: true, Method: "patchcore"}, {Class: "pill", Ratio: 0.1, Method: "patchcore"}}
	for i, s := range []Shard{{0, 2}, {1, 2}} {
		a, err := OpenAppender(ResultsFile(dir, s))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Append(record(cells[i], 0.9)); err != nil {
			t.Fatal(err)
		}
		a.Close()
	}
	// A crash in the middle of the third record.
	f := ResultsFile(dir, Shard{1, 2})
	b, _ := json.Marshal(record(cells[2], 0.8))
	fh, _ := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
	fh.Write(b[:len(b)/2])
	fh.Close()

	done, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 {
		t.Fatalf("%d records after the crash, want 2", len(done))
	}
	p := Pending(cells, done)
	if len(p) != 2 || p[0] != cells[2] || p[1] != cells[3] {
		t.Fatalf("pending %v", p)
	}
	a, err := OpenAppender(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p {
		if err := a.Append(record(c, 0.7)); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	if done, err = ReadResults(dir); err != nil || len(done) != 4 {
		t.Fatalf("%d records after the rerun (%v)", len(done), err)
	}
	var csv bytes.Buffer
	if err := WriteResultsCSV(&csv, done); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csv.String()), "\n")
	if len(lines) != 5 || lines[0] != "class,noise,overlap,fold,seed,method,image_auroc,pixel_auroc,aupro,image_f1max,pixel_f1max,image_ap,pixel_ap,aupimo,defect_bank_fraction,test_fpr,test_fnr" ||
		lines[1] != "pill,0.1,false,0,0,patchcore,0.700000,0.350000,,,,,,,,," || lines[3] != "wood,0,false,0,0,patchcore,0.900000,0.450000,,,,,,,,," {
		t.Errorf("csv:\n%s", csv.String())
	}

	// Damage that is not a cut last line is an error naming the line.
	os.WriteFile(ResultsFile(dir, Shard{0, 1}), []byte("{\"key\":\"x\"}\ngarbage\n{\"key\":\"y\"}\n"), 0o644)
	if _, err := ReadResults(dir); err == nil || !strings.Contains(err.Error(), "results.jsonl:2") {
		t.Errorf("damaged file: %v", err)
	}
}

// TestAppenderLock checks that a results file has one writer at a time:
// a second appender on it fails naming the holder's pid, one on another
// shard's file does not, and closing releases the lock.
func TestAppenderLock(t *testing.T) {
	dir := t.TempDir()
	whole := ResultsFile(dir, Shard{N: 1})
	a, err := OpenAppender(whole)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenAppender(whole)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second appender: %v", err)
	}
	s0, err := OpenAppender(ResultsFile(dir, Shard{Index: 0, N: 2}))
	if err != nil {
		t.Fatalf("another shard's file: %v", err)
	}
	s0.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := OpenAppender(whole)
	if err != nil {
		t.Fatalf("after the holder closed: %v", err)
	}
	b.Close()
}
