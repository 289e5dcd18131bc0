package experiments

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FeatureCache keeps patch features on disk across runs, one file per
// image and feature pipeline, so that every method, noise setting and
// later sweep reuses them. Keys are chosen by the caller (a hash of the
// image file's contents and of the pipeline). Entries are written to a
// temporary file and renamed, so concurrent shards never see a partial
// entry and two writers of one key write the same bytes; an entry whose
// size or checksum does not match is reported as missing and rewritten by
// the next Put. Trim keeps the cache within MaxBytes by removing the least
// recently used entries.
type FeatureCache struct {
	// Dir is the cache folder.
	Dir string
	// MaxBytes bounds the total size of the entries (0: no bound).
	MaxBytes int64
}

const (
	cacheMagic   = "SPFEAT01"
	cacheHeader  = 8 + 4*3 // magic, positions, dim, crc32 of the payload
	cacheFileExt = ".f32"
)

func (c *FeatureCache) path(key string) string {
	return filepath.Join(c.Dir, key[:2], key+cacheFileExt)
}

// Get returns the features [positions][dim] stored under key, or ok false
// when there are none or the entry is damaged.
func (c *FeatureCache) Get(key string) (feats []float32, positions, dim int, ok bool) {
	if len(key) < 3 {
		return nil, 0, 0, false
	}
	p := c.path(key)
	b, err := os.ReadFile(p)
	if err != nil || len(b) < cacheHeader || string(b[:8]) != cacheMagic {
		return nil, 0, 0, false
	}
	positions = int(binary.LittleEndian.Uint32(b[8:]))
	dim = int(binary.LittleEndian.Uint32(b[12:]))
	sum := binary.LittleEndian.Uint32(b[16:])
	payload := b[cacheHeader:]
	if positions <= 0 || dim <= 0 || len(payload) != 4*positions*dim || crc32.ChecksumIEEE(payload) != sum {
		return nil, 0, 0, false
	}
	feats = make([]float32, positions*dim)
	for i := range feats {
		feats[i] = math.Float32frombits(binary.LittleEndian.Uint32(payload[4*i:]))
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // recency for eviction; best effort
	return feats, positions, dim, true
}

// Put stores feats [positions][dim] under key (Trim keeps the bound).
func (c *FeatureCache) Put(key string, feats []float32, positions, dim int) error {
	if len(key) < 3 || positions <= 0 || dim <= 0 || len(feats) != positions*dim {
		return fmt.Errorf("feature cache: bad entry %q (%d values for %d x %d)", key, len(feats), positions, dim)
	}
	p := c.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	payload := make([]byte, 4*len(feats))
	for i, v := range feats {
		binary.LittleEndian.PutUint32(payload[4*i:], math.Float32bits(v))
	}
	head := make([]byte, cacheHeader)
	copy(head, cacheMagic)
	binary.LittleEndian.PutUint32(head[8:], uint32(positions))
	binary.LittleEndian.PutUint32(head[12:], uint32(dim))
	binary.LittleEndian.PutUint32(head[16:], crc32.ChecksumIEEE(payload))
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	_, err = tmp.Write(append(head, payload...))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("feature cache: writing %s: %w", p, err)
	}
	return nil
}

// Trim removes the least recently used entries while the cache holds more
// than MaxBytes, and temporary files that killed writers left behind.
func (c *FeatureCache) Trim() error {
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var es []entry
	var total int64
	err := filepath.WalkDir(c.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed by another shard
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			// Left by a writer that was killed; a live one renames its
			// file within seconds.
			if info, err := d.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				os.Remove(p)
			}
			return nil
		}
		if filepath.Ext(p) != cacheFileExt {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		es = append(es, entry{p, info.Size(), info.ModTime()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	if c.MaxBytes <= 0 {
		return nil
	}
	slices.SortFunc(es, func(a, b entry) int { return a.used.Compare(b.used) })
	for _, e := range es {
		if total <= c.MaxBytes {
			break
		}
		if err := os.Remove(e.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= e.size
		}
	}
	return nil
}
