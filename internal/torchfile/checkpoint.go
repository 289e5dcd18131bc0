package torchfile

// Both serialisations of torch.save. The pickle stream is decoded with
// gopickle's pickle package; everything torch-specific (the containers,
// storages, tensor rebuilding, dtype conversion) is done here rather than
// with gopickle's pytorch package, because v0.2.0 of that package panics
// on some legacy files (storage views, tar archives), ignores short reads
// of storage data and cannot tell a truncated file from a foreign one.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// ReadCheckpoint reads a state_dict written by torch.save, in either of its
// serialisations: the zip archive (torch >= 1.6: ARCHIVE/data.pkl plus one
// raw record per storage under ARCHIVE/data/) or the legacy stream (pickled
// magic number, protocol version and system info, then the pickled object,
// then the pickled list of storage keys and each storage's raw data).
//
// The pickled object must be a dict (or OrderedDict) of tensors. A dict that
// wraps the state_dict under "state_dict" or "model" (as training scripts
// save it, next to "epoch", "optimizer" and so on) is unwrapped, in that
// order of preference; its other entries are ignored. Keys are returned as
// saved, a DataParallel "module." prefix included.
//
// float32 entries are returned as they are; float64, float16 and bfloat16
// entries are converted to float32 (float64 rounded to nearest). Entries
// named *num_batches_tracked (BatchNorm's int64 step counter, unused in
// evaluation) are dropped from the map. Any other dtype (int64 under another
// name, int32, uint8, bool, ...) is an error wrapping ErrUnsupportedDtype.
// Tensors may be strided views of shared storages; each entry gets its own
// row-major copy.
//
// The file is read without executing anything it asks for (see the package
// documentation). Every error names the file and wraps one of
// ErrNotCheckpoint, ErrTruncated, ErrUnsafePickle, ErrUnsupportedDtype or an
// fs error (fs.ErrNotExist for a missing file).
func ReadCheckpoint(path string) (map[string]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, wErr(path, nil, err, "not found")
		}
		return nil, wErr(path, nil, err, "%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, wErr(path, nil, err, "%v", err)
	}
	if st.IsDir() {
		return nil, wErr(path, ErrNotCheckpoint, nil, "is a directory, not a torch checkpoint")
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, wErr(path, nil, err, "%v", err)
	}
	switch {
	case n == 0:
		return nil, wErr(path, ErrNotCheckpoint, nil, "empty file, not a torch checkpoint")
	case n < 4 && (bytes.HasPrefix([]byte("PK\x03\x04"), head) || bytes.HasPrefix([]byte("\x80\x02\x8a\x0a"), head)):
		return nil, wErr(path, ErrTruncated, nil, "truncated file (%d bytes)", n)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return readZip(path, f, st.Size())
	case len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= pickle.HighestProtocol:
		return readLegacy(path, f, st.Size())
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return nil, wErr(path, ErrNotCheckpoint, nil, "tar checkpoint of torch < 0.4 is not supported; re-save it with a current torch")
	}
	return nil, wErr(path, ErrNotCheckpoint, nil, "not a torch checkpoint (starts with %s)", describeMagic(head))
}

// ---- zip serialisation -------------------------------------------------

func readZip(file string, f *os.File, size int64) (map[string]Tensor, error) {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, wErr(file, ErrTruncated, err, "truncated or corrupt zip archive (%v)", err)
	}
	records := make(map[string]*zip.File, len(zr.File))
	var pkls []string
	for _, zf := range zr.File {
		records[zf.Name] = zf
		if dir, base := path.Split(zf.Name); base == "data.pkl" && dir != "" && !strings.Contains(strings.TrimSuffix(dir, "/"), "/") {
			pkls = append(pkls, zf.Name)
		}
	}
	if len(pkls) != 1 {
		return nil, wErr(file, ErrNotCheckpoint, nil, "zip archive without exactly one ARCHIVE/data.pkl record (found %d): not a torch checkpoint", len(pkls))
	}
	prefix := strings.TrimSuffix(pkls[0], "data.pkl")
	if _, ok := records[prefix+"constants.pkl"]; ok {
		return nil, wErr(file, ErrNotCheckpoint, nil, "TorchScript archive (torch.jit.save), not a torch.save state_dict")
	}
	if bo, ok := records[prefix+"byteorder"]; ok {
		b, err := readZipRecord(bo, 16)
		if err != nil {
			return nil, wErr(file, ErrTruncated, err, "truncated or corrupt zip record %s (%v)", bo.Name, err)
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, wErr(file, ErrNotCheckpoint, nil, "byte order %q is not supported", s)
		}
	}
	pkl, err := readZipRecord(records[pkls[0]], size*64)
	if err != nil {
		return nil, wErr(file, ErrTruncated, err, "truncated or corrupt zip record %s (%v)", pkls[0], err)
	}
	raw, err := scanPickle(bytes.NewReader(pkl), int64(len(pkl)))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, wErr(file, ErrTruncated, err, "%s: pickle ends early", pkls[0])
		}
		return nil, wErr(file, ErrNotCheckpoint, err, "%s: %v", pkls[0], err)
	}
	d := newDecoder(file, zipLimit(size))
	obj, err := d.unpickle(raw, func(pid any) (any, error) {
		t, ok := pid.(*types.Tuple)
		if !ok || t.Len() != 5 {
			return nil, fmt.Errorf("unexpected persistent id %v", pid)
		}
		return d.storageRef(t)
	})
	if err != nil {
		return nil, err
	}
	sd, err := d.stateDict(obj)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Tensor, len(sd))
	for _, st := range d.storageOrder {
		if len(d.users[st]) == 0 {
			continue
		}
		rec, ok := records[prefix+"data/"+st.key]
		if !ok {
			return nil, wErr(file, ErrTruncated, nil, "storage record %sdata/%s is missing", prefix, st.key)
		}
		need := int64(st.numel) * int64(st.dtype.size)
		if rec.UncompressedSize64 < uint64(need) {
			return nil, wErr(file, ErrTruncated, nil, "storage record %s holds %d bytes, want %d", rec.Name, rec.UncompressedSize64, need)
		}
		st.data, err = readZipRecord(rec, need)
		if err != nil {
			return nil, wErr(file, ErrTruncated, err, "truncated or corrupt zip record %s (%v)", rec.Name, err)
		}
		if err := d.materialise(st, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readZipRecord reads the first n bytes of a record (all of it when the
// record is shorter), then the rest so that the archive's CRC is checked.
func readZipRecord(zf *zip.File, n int64) ([]byte, error) {
	if zf.UncompressedSize64 < uint64(n) {
		n = int64(zf.UncompressedSize64)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, err
	}
	return buf, nil
}

// ---- legacy serialisation ---------------------------------------------

// legacyMagic is torch.serialization.MAGIC_NUMBER; legacyProtocol its
// PROTOCOL_VERSION.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

const legacyProtocol = 1001

// countingReader tracks the offset of a buffered reader.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func readLegacy(file string, f *os.File, size int64) (map[string]Tensor, error) {
	cr := &countingReader{r: bufio.NewReaderSize(f, 1<<20)}
	d := newDecoder(file, size)
	next := func(what string, pl func(any) (any, error)) (any, error) {
		raw, err := scanPickle(cr, size-cr.n)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, wErr(file, ErrTruncated, err, "truncated file (ends inside the %s)", what)
			}
			return nil, wErr(file, ErrNotCheckpoint, err, "not a torch checkpoint (%s: %v)", what, err)
		}
		return d.unpickle(raw, pl)
	}
	magic, err := next("magic number", nil)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, wErr(file, ErrNotCheckpoint, nil, "a Python pickle, but not a torch checkpoint (no torch magic number)")
	}
	proto, err := next("protocol version", nil)
	if err != nil {
		return nil, err
	}
	if p, ok := proto.(int); !ok || p != legacyProtocol {
		return nil, wErr(file, ErrNotCheckpoint, nil, "unsupported legacy protocol version %v (want %d)", proto, legacyProtocol)
	}
	sysInfo, err := next("system info", nil)
	if err != nil {
		return nil, err
	}
	if le, ok := dictGet(sysInfo, "little_endian"); ok && le != true {
		return nil, wErr(file, ErrNotCheckpoint, nil, "big-endian checkpoint is not supported")
	}
	obj, err := next("pickled state_dict", func(pid any) (any, error) {
		t, ok := pid.(*types.Tuple)
		if !ok || t.Len() != 6 {
			return nil, fmt.Errorf("unexpected persistent id %v", pid)
		}
		if t.Get(5) != nil {
			return nil, fmt.Errorf("storage views (checkpoints of torch < 0.4) are not supported")
		}
		return d.storageRef(t)
	})
	if err != nil {
		return nil, err
	}
	sd, err := d.stateDict(obj)
	if err != nil {
		return nil, err
	}
	rawKeys, err := next("storage key list", nil)
	if err != nil {
		return nil, err
	}
	list, ok := rawKeys.(*types.List)
	if !ok {
		return nil, wErr(file, ErrNotCheckpoint, nil, "storage key list is a %T", rawKeys)
	}
	out := make(map[string]Tensor, len(sd))
	for _, k := range *list {
		key, ok := k.(string)
		if !ok {
			return nil, wErr(file, ErrNotCheckpoint, nil, "storage key %v is not a string", k)
		}
		st, ok := d.storages[key]
		if !ok {
			return nil, wErr(file, ErrNotCheckpoint, nil, "storage %s is listed but never used", key)
		}
		if st.done {
			return nil, wErr(file, ErrNotCheckpoint, nil, "storage %s is listed twice", key)
		}
		st.done = true
		var hdr [8]byte
		if _, err := io.ReadFull(cr, hdr[:]); err != nil {
			return nil, wErr(file, ErrTruncated, err, "truncated file (ends before storage %s)", key)
		}
		numel := int64(binary.LittleEndian.Uint64(hdr[:]))
		if numel != int64(st.numel) {
			return nil, wErr(file, ErrNotCheckpoint, nil, "storage %s holds %d elements, the pickle says %d", key, numel, st.numel)
		}
		need := numel * int64(st.dtype.size)
		if need > size-cr.n {
			return nil, wErr(file, ErrTruncated, nil, "truncated file (storage %s needs %d bytes, %d left)", key, need, size-cr.n)
		}
		if len(d.users[st]) == 0 {
			if _, err := io.CopyN(io.Discard, cr, need); err != nil {
				return nil, wErr(file, ErrTruncated, err, "truncated file (inside storage %s)", key)
			}
			continue
		}
		st.data = make([]byte, need)
		if _, err := io.ReadFull(cr, st.data); err != nil {
			return nil, wErr(file, ErrTruncated, err, "truncated file (inside storage %s)", key)
		}
		if err := d.materialise(st, out); err != nil {
			return nil, err
		}
	}
	for _, st := range d.storageOrder {
		if !st.done {
			return nil, wErr(file, ErrNotCheckpoint, nil, "storage %s is used but missing from the key list", st.key)
		}
	}
	return out, nil
}
