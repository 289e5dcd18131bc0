package experiments

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Results file names: every shard appends to its own file in the results
// folder, so that shards never write to the same file; readers merge them.
const (
	resultsPrefix = "results"
	resultsExt    = ".jsonl"
)

// ResultsFile returns the path of shard s's results file in dir.
func ResultsFile(dir string, s Shard) string {
	if s.N <= 1 {
		return filepath.Join(dir, resultsPrefix+resultsExt)
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%d-of-%d%s", resultsPrefix, s.Index, s.N, resultsExt))
}

// Record is one finished cell as stored: its key, for resuming, and the
// cell's result (the JSON of softpatch eval, a Result; see Decode).
type Record struct {
	Key    string          `json:"key"`
	Cell   Cell            `json:"cell"`
	Result json.RawMessage `json:"result"`
}

// ReadResults reads every results file in dir (all shards), in file-name
// order, and returns the records by key; a later record of a key replaces
// an earlier one. A last line cut short by a crash is ignored; any other
// undecodable line is an error naming the file and the line.
func ReadResults(dir string) (map[string]Record, error) {
	files, err := filepath.Glob(filepath.Join(dir, resultsPrefix+"*"+resultsExt))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	out := map[string]Record{}
	for _, f := range files {
		if err := readResultsFile(f, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readResultsFile(path string, out map[string]Record) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil || r.Key == "" {
			if i == len(lines)-1 { // no newline: the write was cut short
				continue
			}
			return fmt.Errorf("%s:%d: not a results record (%v)", path, i+1, err)
		}
		out[r.Key] = r
	}
	return nil
}

// Appender appends records to one results file, holding its lock.
type Appender struct {
	f    *os.File
	lock *os.File
}

// ErrLocked is returned by OpenAppender when another process holds the
// results file's lock.
var ErrLocked = errors.New("results file in use by another sweep")

// OpenAppender opens (creating it if needed) the results file path for
// appending. It first takes the file's lock (an flock on path+".lock",
// which records the holder's pid, released when the process ends
// however it ends): a second sweep on the same results file fails with
// ErrLocked, naming the holder; sweeps on other shards' files run
// alongside. A last line cut short by an earlier crash is cut off, so that
// the next record starts on its own line.
func OpenAppender(path string) (*Appender, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		lock.Close()
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err == nil && len(b) > 0 && b[len(b)-1] != '\n' {
		err = f.Truncate(int64(bytes.LastIndexByte(b, '\n') + 1))
	}
	if err != nil {
		f.Close()
		lock.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Appender{f: f, lock: lock}, nil
}

// lockFile takes the exclusive flock of path (created if needed) without
// waiting and writes this process's pid into it; with the lock held
// elsewhere it fails with ErrLocked and the holder's pid.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (pid %s): wait for it to finish, or give this sweep another --out or --shard",
				strings.TrimSuffix(path, ".lock"), ErrLocked, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("%s: locking: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Append writes r as one line with a single write and syncs it to disk, so
// that a crash leaves either the whole record or a cut last line that
// ReadResults ignores.
func (a *Appender) Append(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if bytes.ContainsAny(b, "\n") {
		return fmt.Errorf("results record %s has a newline", r.Key)
	}
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w", a.f.Name(), err)
	}
	return a.f.Sync()
}

// Close closes the file and releases its lock.
func (a *Appender) Close() error {
	err := a.f.Close()
	if e := a.lock.Close(); err == nil {
		err = e
	}
	return err
}

// Pending returns the cells that have no record yet, in plan order.
func Pending(cells []Cell, done map[string]Record) []Cell {
	var out []Cell
	for _, c := range cells {
		if _, ok := done[c.Key()]; !ok {
			out = append(out, c)
		}
	}
	return out
}

// WriteResultsCSV writes one row per record, sorted by key: the cell (its
// class, noise, overlap, fold, seed and method) and
// the scalar metrics of its result (Metrics; empty where a result lacks
// one). Only the metrics are read from each result.
func WriteResultsCSV(w io.Writer, recs map[string]Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{"class", "noise", "overlap", "fold", "seed", "method"}, Metrics...)); err != nil {
		return err
	}
	ks := make([]string, 0, len(recs))
	for k := range recs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	for _, k := range ks {
		r := recs[k]
		var m map[string]any
		if err := json.Unmarshal(r.Result, &m); err != nil {
			return fmt.Errorf("results record %s: %w", k, err)
		}
		row := []string{r.Cell.Class, strconv.FormatFloat(r.Cell.Ratio, 'g', -1, 64), strconv.FormatBool(r.Cell.Overlap),
			strconv.Itoa(r.Cell.Fold), strconv.FormatUint(r.Cell.Seed, 10), r.Cell.Method}
		for _, name := range Metrics {
			from := m
			if slices.Contains(nestedMetrics, name) {
				from, _ = m["decision"].(map[string]any)
			}
			v, ok := from[name].(float64)
			if !ok {
				row = append(row, "")
				continue
			}
			row = append(row, strconv.FormatFloat(v, 'f', 6, 64))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
