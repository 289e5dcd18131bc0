package backbone

// Loading of torchvision checkpoints (torch.save'd state_dicts).
//
// The pickle stream is decoded with github.com/nlpodyssey/gopickle's pickle
// package; everything torch-specific (both container formats, storages,
// tensor rebuilding, dtype conversion) is implemented here, not with
// gopickle's pytorch package, because v0.2.0's pytorch package panics on
// some legacy files (storage views, tar archives), ignores short reads of
// storage data and cannot tell a truncated file from a foreign one.
//
// Safety: a pickle can name any Python callable (GLOBAL / STACK_GLOBAL /
// INST opcodes) and ask for it to be called (REDUCE, NEWOBJ, ...). Nothing
// here can execute Python, but the loader still refuses every global outside
// a short allow-list (collections.OrderedDict, torch._utils._rebuild_tensor*,
// torch._utils._rebuild_parameter*, torch.<Type>Storage) and fails with
// "refuses pickle global MODULE.NAME" on anything else. Before a pickle is
// handed to gopickle it is scanned opcode by opcode and every length field is
// checked against the bytes actually left in the file, so a crafted file can
// neither make the decoder allocate more than the file's size nor run it
// past its end; a panic inside the decoder is turned into an error.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// Tensor is one float32 entry of a checkpoint: shape and row-major data.
// A scalar has an empty Shape and one value.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Errors the checkpoint functions wrap; test for them with errors.Is. The
// messages of the returned errors name the file and the detail.
var (
	// ErrNoWeights: FindWeights found no checkpoint in any place it
	// searched (the error text lists them).
	ErrNoWeights = errors.New("no weights found")
	// ErrNotCheckpoint: the file is not a torch.save file (or is one that
	// holds something other than a state_dict).
	ErrNotCheckpoint = errors.New("not a torch checkpoint")
	// ErrTruncated: the file ends early or its archive is damaged.
	ErrTruncated = errors.New("truncated or corrupt checkpoint")
	// ErrUnsafePickle: the pickle names a global outside the allow-list.
	ErrUnsafePickle = errors.New("refused pickle global")
	// ErrUnsupportedDtype: an entry's dtype cannot be read as float32.
	ErrUnsupportedDtype = errors.New("unsupported dtype")
	// ErrArchMismatch: the state_dict's keys or shapes do not match the
	// architecture.
	ErrArchMismatch = errors.New("state_dict does not match architecture")
)

// weightsError is an error about one file: "weights: FILE: msg".
type weightsError struct {
	path  string
	msg   string
	kind  error // one of the sentinels above, or nil
	cause error // underlying error, or nil
}

func (e *weightsError) Error() string {
	if e.path == "" {
		return "weights: " + e.msg
	}
	return "weights: " + e.path + ": " + e.msg
}

func (e *weightsError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func wErr(path string, kind, cause error, format string, args ...any) error {
	return &weightsError{path: path, msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

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
// saved (LoadCheckpoint strips a DataParallel "module." prefix).
//
// float32 entries are returned as they are; float64, float16 and bfloat16
// entries are converted to float32 (float64 rounded to nearest). Entries
// named *num_batches_tracked (BatchNorm's int64 step counter, unused in
// evaluation; Optional in Arch.Params) are dropped from the map. Any other
// dtype (int64 under another name, int32, uint8, bool, ...) is an error
// wrapping ErrUnsupportedDtype. Tensors may
// be strided views of shared storages; each entry gets its own row-major
// copy.
//
// The file is read without executing anything it asks for; see the package
// notes in weights.go. Every error names the file and wraps one of
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

// describeMagic names a few common file types for the error message.
func describeMagic(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\x89PNG")):
		return "a PNG signature"
	case bytes.HasPrefix(head, []byte("\xff\xd8\xff")):
		return "a JPEG signature"
	case bytes.HasPrefix(head, []byte("\x93NUMPY")):
		return "a NumPy .npy signature"
	case bytes.HasPrefix(head, []byte("\x89HDF")):
		return "an HDF5 signature"
	case len(head) >= 8 && binary.LittleEndian.Uint64(head) < 1<<30 && len(head) > 8 && head[8] == '{':
		return "a safetensors header"
	}
	k := min(len(head), 8)
	printable := true
	for _, c := range head[:k] {
		if c < 0x20 || c > 0x7e {
			if c != '\n' && c != '\r' && c != '\t' {
				printable = false
			}
		}
	}
	if printable {
		return fmt.Sprintf("text %q", head[:k])
	}
	return fmt.Sprintf("bytes % x", head[:k])
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

// ---- pickle decoding ---------------------------------------------------

// dtypeInfo describes a torch storage type.
type dtypeInfo struct {
	name string // torch name, e.g. "torch.float32"
	size int    // bytes per element
}

var storageClasses = map[string]*dtypeInfo{
	"FloatStorage":    {"torch.float32", 4},
	"DoubleStorage":   {"torch.float64", 8},
	"HalfStorage":     {"torch.float16", 2},
	"BFloat16Storage": {"torch.bfloat16", 2},
	"LongStorage":     {"torch.int64", 8},
	"IntStorage":      {"torch.int32", 4},
	"ShortStorage":    {"torch.int16", 2},
	"CharStorage":     {"torch.int8", 1},
	"ByteStorage":     {"torch.uint8", 1},
	"BoolStorage":     {"torch.bool", 1},
}

// storageClass is the value of a torch.<Type>Storage global.
type storageClass struct{ dtype *dtypeInfo }

// storage is one serialised storage; data is filled once read.
type storage struct {
	key   string
	dtype *dtypeInfo
	numel int
	data  []byte
	done  bool
}

// tensorRef is what _rebuild_tensor_v2 returns: a strided view of a storage.
type tensorRef struct {
	st     *storage
	offset int
	size   []int
	stride []int
}

// entry is one state_dict entry waiting for its storage's data.
type entry struct {
	key string
	t   *tensorRef
}

type decoder struct {
	path         string
	limit        int64 // bytes a storage may claim at most
	storages     map[string]*storage
	storageOrder []*storage
	users        map[*storage][]entry
}

func newDecoder(path string, limit int64) *decoder {
	return &decoder{path: path, limit: limit, storages: map[string]*storage{}, users: map[*storage][]entry{}}
}

// zipLimit bounds what a zip record of a file of this size can hold:
// torch stores records uncompressed, deflate expands at most ~1032 times.
func zipLimit(size int64) int64 {
	if size > math.MaxInt64/1100 {
		return math.MaxInt64
	}
	return size * 1100
}

// unsafeGlobal is returned by findClass for a refused global.
type unsafeGlobal struct{ name string }

func (e *unsafeGlobal) Error() string { return "refuses pickle global " + e.name }

// findClass is the allow-list of pickle globals. gopickle itself resolves
// collections.OrderedDict, __builtin__.object and copy_reg._reconstructor
// to inert Go values before asking; everything else comes here.
func findClass(module, name string) (any, error) {
	switch module {
	case "collections":
		if name == "OrderedDict" {
			return &types.OrderedDictClass{}, nil
		}
	case "torch._utils":
		switch name {
		case "_rebuild_tensor_v2":
			return callable(rebuildTensorV2), nil
		case "_rebuild_tensor":
			return callable(rebuildTensor), nil
		case "_rebuild_parameter", "_rebuild_parameter_with_state":
			return callable(rebuildParameter), nil
		}
	case "torch":
		if dt, ok := storageClasses[name]; ok {
			return &storageClass{dtype: dt}, nil
		}
	}
	return nil, &unsafeGlobal{name: module + "." + name}
}

type callable func(args ...any) (any, error)

func (c callable) Call(args ...any) (any, error) { return c(args...) }

// rebuildTensorV2 is torch._utils._rebuild_tensor_v2(storage,
// storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
func rebuildTensorV2(args ...any) (any, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %d arguments", len(args))
	}
	return rebuildTensor(args[:4]...)
}

// rebuildTensor is torch._utils._rebuild_tensor(storage, storage_offset,
// size, stride).
func rebuildTensor(args ...any) (any, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("_rebuild_tensor: %d arguments", len(args))
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: storage argument is %T", args[0])
	}
	off, ok := args[1].(int)
	if !ok || off < 0 {
		return nil, fmt.Errorf("_rebuild_tensor: bad storage offset %v", args[1])
	}
	size, err := intTuple(args[2])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor: size: %v", err)
	}
	stride, err := intTuple(args[3])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor: stride: %v", err)
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor: size %v and stride %v differ in rank", size, stride)
	}
	// Every element addressed must lie inside the storage, and the tensor
	// may not have more elements than its storage (no broadcast views), so
	// that a crafted file cannot make the loader allocate beyond its size.
	numel := 1
	for i, n := range size {
		if n < 0 || stride[i] < 0 {
			return nil, fmt.Errorf("_rebuild_tensor: negative size %v or stride %v", size, stride)
		}
		if n == 0 {
			numel = 0
		}
	}
	if numel > 0 {
		if off >= st.numel {
			return nil, fmt.Errorf("_rebuild_tensor: offset %d outside a storage of %d elements", off, st.numel)
		}
		last := off
		for i, n := range size {
			if n > st.numel || numel*n > st.numel {
				return nil, fmt.Errorf("_rebuild_tensor: size %v has more elements than its storage (%d)", size, st.numel)
			}
			numel *= n
			if n > 1 {
				if stride[i] > (st.numel-1-last)/(n-1) {
					return nil, fmt.Errorf("_rebuild_tensor: view (offset %d, size %v, stride %v) exceeds a storage of %d elements", off, size, stride, st.numel)
				}
				last += (n - 1) * stride[i]
			}
		}
	}
	return &tensorRef{st: st, offset: off, size: size, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad,
// backward_hooks[, state]): a Parameter is its tensor here.
func rebuildParameter(args ...any) (any, error) {
	if len(args) != 3 && len(args) != 4 {
		return nil, fmt.Errorf("_rebuild_parameter: %d arguments", len(args))
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_parameter: data is %T", args[0])
	}
	return t, nil
}

func intTuple(v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("%T is not a tuple", v)
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok {
			return nil, fmt.Errorf("element %d of %v is not an int", i, v)
		}
		out[i] = n
	}
	return out, nil
}

// storageRef resolves a persistent id ('storage', <Type>Storage, key,
// location, numel[, view_metadata]).
func (d *decoder) storageRef(t *types.Tuple) (any, error) {
	if s, _ := t.Get(0).(string); s != "storage" {
		return nil, fmt.Errorf("persistent id of type %v, want 'storage'", t.Get(0))
	}
	cls, ok := t.Get(1).(*storageClass)
	if !ok {
		return nil, fmt.Errorf("persistent id names storage type %T", t.Get(1))
	}
	key, ok1 := t.Get(2).(string)
	numel, ok2 := t.Get(4).(int)
	if !ok1 || !ok2 || numel < 0 {
		return nil, fmt.Errorf("malformed storage id %v", t)
	}
	if int64(numel) > d.limit/int64(cls.dtype.size) {
		return nil, fmt.Errorf("storage %s claims %d elements, more than the file can hold", key, numel)
	}
	if st, ok := d.storages[key]; ok {
		if st.dtype != cls.dtype || st.numel != numel {
			return nil, fmt.Errorf("storage %s is used as both %s[%d] and %s[%d]", key, st.dtype.name, st.numel, cls.dtype.name, numel)
		}
		return st, nil
	}
	st := &storage{key: key, dtype: cls.dtype, numel: numel}
	d.storages[key] = st
	d.storageOrder = append(d.storageOrder, st)
	return st, nil
}

// unpickle decodes one pickle (already length-checked by scanPickle) with
// the allow-listed globals.
func (d *decoder) unpickle(raw []byte, persistentLoad func(any) (any, error)) (obj any, err error) {
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, wErr(d.path, ErrNotCheckpoint, nil, "malformed pickle (%v)", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(raw))
	u.FindClass = findClass
	if persistentLoad != nil {
		u.PersistentLoad = persistentLoad
	}
	obj, err = u.Load()
	if err != nil {
		var ug *unsafeGlobal
		if errors.As(err, &ug) {
			return nil, wErr(d.path, ErrUnsafePickle, nil, "refuses pickle global %s", ug.name)
		}
		return nil, wErr(d.path, ErrNotCheckpoint, err, "malformed pickle (%v)", err)
	}
	return obj, nil
}

// dictItems returns a dict's string-keyed items in order; ok is false for
// anything that is not a dict.
func dictItems(v any) (keys []any, vals []any, ok bool) {
	switch m := v.(type) {
	case *types.OrderedDict:
		for e := m.List.Front(); e != nil; e = e.Next() {
			en := e.Value.(*types.OrderedDictEntry)
			keys = append(keys, en.Key)
			vals = append(vals, en.Value)
		}
		return keys, vals, true
	case *types.Dict:
		for _, en := range *m {
			keys = append(keys, en.Key)
			vals = append(vals, en.Value)
		}
		return keys, vals, true
	}
	return nil, nil, false
}

func dictGet(v any, key string) (any, bool) {
	keys, vals, ok := dictItems(v)
	if !ok {
		return nil, false
	}
	for i, k := range keys {
		if k == key {
			return vals[i], true
		}
	}
	return nil, false
}

// stateDict unwraps the pickled object to the state_dict and registers
// each entry with its storage. It returns the entry keys.
func (d *decoder) stateDict(obj any) ([]string, error) {
	if _, _, ok := dictItems(obj); !ok {
		return nil, wErr(d.path, ErrNotCheckpoint, nil, "holds a %s, not a state_dict", pyTypeName(obj))
	}
	for _, wrap := range []string{"state_dict", "model"} {
		if inner, ok := dictGet(obj, wrap); ok {
			if _, _, isDict := dictItems(inner); isDict {
				obj = inner
				break
			}
		}
	}
	keys, vals, _ := dictItems(obj)
	names := make([]string, 0, len(keys))
	seen := map[string]bool{}
	for i, k := range keys {
		key, ok := k.(string)
		if !ok {
			return nil, wErr(d.path, ErrNotCheckpoint, nil, "state_dict key %v is not a string", k)
		}
		t, ok := vals[i].(*tensorRef)
		if !ok {
			return nil, wErr(d.path, ErrNotCheckpoint, nil, "state_dict entry %s is a %s, not a tensor", key, pyTypeName(vals[i]))
		}
		if seen[key] {
			return nil, wErr(d.path, ErrNotCheckpoint, nil, "state_dict key %s appears twice", key)
		}
		seen[key] = true
		if key == "num_batches_tracked" || strings.HasSuffix(key, ".num_batches_tracked") {
			continue // dropped: BatchNorm's step counter (int64, or whatever a cast made it)
		}
		switch t.st.dtype.name {
		case "torch.float32", "torch.float64", "torch.float16", "torch.bfloat16":
		default:
			return nil, wErr(d.path, ErrUnsupportedDtype, nil, "entry %s has unsupported dtype %s", key, t.st.dtype.name)
		}
		d.users[t.st] = append(d.users[t.st], entry{key: key, t: t})
		names = append(names, key)
	}
	return names, nil
}

func pyTypeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case *types.List:
		return "list"
	case *types.Tuple:
		return "tuple"
	case *types.Dict, *types.OrderedDict:
		return "dict"
	case string:
		return "str"
	case int, *big.Int:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case *tensorRef:
		return "tensor"
	case *storage:
		return "storage"
	case *types.GenericObject:
		return v.Class.Module + "." + v.Class.Name + " object"
	}
	return fmt.Sprintf("%T", v)
}

// materialise converts every tensor that uses st (whose data is loaded) to
// a row-major float32 Tensor in out, then releases the storage's bytes.
func (d *decoder) materialise(st *storage, out map[string]Tensor) error {
	conv, err := elementReader(st.dtype)
	if err != nil {
		return wErr(d.path, ErrUnsupportedDtype, nil, "%v", err)
	}
	for _, e := range d.users[st] {
		t := e.t
		n := 1
		for _, s := range t.size {
			n *= s
		}
		data := make([]float32, n)
		if n > 0 {
			if contiguous(t.size, t.stride) {
				decodeContiguous(st.dtype, data, st.data[t.offset*st.dtype.size:])
			} else {
				idx := make([]int, len(t.size))
				for i := range data {
					p := t.offset
					for k, v := range idx {
						p += v * t.stride[k]
					}
					data[i] = conv(st.data, p)
					for k := len(idx) - 1; k >= 0; k-- {
						idx[k]++
						if idx[k] < t.size[k] {
							break
						}
						idx[k] = 0
					}
				}
			}
		}
		out[e.key] = Tensor{Shape: append([]int{}, t.size...), Data: data}
	}
	st.data = nil
	return nil
}

func contiguous(size, stride []int) bool {
	want := 1
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

// decodeContiguous converts len(dst) little-endian elements of src.
func decodeContiguous(dt *dtypeInfo, dst []float32, src []byte) {
	le := binary.LittleEndian
	switch dt.name {
	case "torch.float32":
		src = src[:4*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case "torch.float64":
		src = src[:8*len(dst)]
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case "torch.float16":
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = halfToFloat32(le.Uint16(src[2*i:]))
		}
	case "torch.bfloat16":
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	default:
		panic("backbone: decodeContiguous: " + dt.name)
	}
}

// elementReader returns a function reading element i of a little-endian
// storage as float32.
func elementReader(dt *dtypeInfo) (func(b []byte, i int) float32, error) {
	switch dt.name {
	case "torch.float32":
		return func(b []byte, i int) float32 {
			return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}, nil
	case "torch.float64":
		return func(b []byte, i int) float32 {
			return float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}, nil
	case "torch.float16":
		return func(b []byte, i int) float32 {
			return halfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}, nil
	case "torch.bfloat16":
		return func(b []byte, i int) float32 {
			return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}, nil
	}
	return nil, fmt.Errorf("unsupported dtype %s", dt.name)
}

// halfToFloat32 converts an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, nan
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0: // zero
		return math.Float32frombits(sign)
	}
	// subnormal: man * 2^-24
	f := float32(man) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}

// ---- pickle scanning ---------------------------------------------------

// Opcode argument kinds, after Python's pickletools.
const (
	argNone   = iota
	argLine   // one newline-terminated line
	argLines2 // two lines (GLOBAL, INST)
	argFixed  // fixed number of bytes
	argLen1   // 1-byte length, then data
	argLen4   // 4-byte little-endian length, then data
	argLen8   // 8-byte little-endian length, then data
)

type opArg struct {
	kind int
	n    int // argFixed: byte count
}

var pickleOps = func() [256]*opArg {
	var t [256]*opArg
	none := &opArg{kind: argNone}
	for _, c := range []byte("(.012NQRabd}el]ost)u\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98") {
		t[c] = none
	}
	for _, c := range []byte("FILSVPgp") {
		t[c] = &opArg{kind: argLine}
	}
	t['c'] = &opArg{kind: argLines2}
	t['i'] = &opArg{kind: argLines2}
	for c, n := range map[byte]int{'K': 1, 'h': 1, 'q': 1, '\x80': 1, '\x82': 1, 'M': 2, '\x83': 2,
		'J': 4, 'j': 4, 'r': 4, '\x84': 4, 'G': 8, '\x95': 8} {
		t[c] = &opArg{kind: argFixed, n: n}
	}
	for _, c := range []byte{'\x8a', 'U', '\x8c', 'C'} {
		t[c] = &opArg{kind: argLen1}
	}
	for _, c := range []byte{'\x8b', 'T', 'X', 'B'} {
		t[c] = &opArg{kind: argLen4}
	}
	for _, c := range []byte{'\x8d', '\x8e', '\x96'} {
		t[c] = &opArg{kind: argLen8}
	}
	return t
}()

// byteReader is what scanPickle reads from. It reads no further than the
// pickle's last byte, so the caller can go on reading after it.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// scanPickle copies one pickle, up to and including its STOP opcode, from
// r. Every length field must fit in the left bytes that remain; a stream
// that ends early gives io.ErrUnexpectedEOF and an unknown opcode an error.
func scanPickle(r byteReader, left int64) ([]byte, error) {
	var buf bytes.Buffer
	take := func(n int64) error {
		if n > left {
			return io.ErrUnexpectedEOF
		}
		m, err := io.CopyN(&buf, r, n)
		left -= m
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	line := func() error {
		for {
			if left <= 0 {
				return io.ErrUnexpectedEOF
			}
			c, err := r.ReadByte()
			if err != nil {
				return io.ErrUnexpectedEOF
			}
			left--
			buf.WriteByte(c)
			if c == '\n' {
				return nil
			}
		}
	}
	for {
		if left <= 0 {
			return nil, io.ErrUnexpectedEOF
		}
		op, err := r.ReadByte()
		if err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		left--
		buf.WriteByte(op)
		a := pickleOps[op]
		if a == nil {
			return nil, fmt.Errorf("unknown pickle opcode 0x%02x at byte %d", op, buf.Len()-1)
		}
		switch a.kind {
		case argLine:
			err = line()
		case argLines2:
			if err = line(); err == nil {
				err = line()
			}
		case argFixed:
			err = take(int64(a.n))
			if err == nil && op == '\x95' { // FRAME: the frame's bytes follow
				if n := binary.LittleEndian.Uint64(buf.Bytes()[buf.Len()-8:]); n > uint64(left) {
					err = io.ErrUnexpectedEOF
				}
			}
		case argLen1, argLen4, argLen8:
			w := map[int]int64{argLen1: 1, argLen4: 4, argLen8: 8}[a.kind]
			if err = take(w); err != nil {
				break
			}
			b := buf.Bytes()[buf.Len()-int(w):]
			var n int64
			switch w {
			case 1:
				n = int64(b[0])
			case 4:
				n = int64(int32(binary.LittleEndian.Uint32(b)))
			case 8:
				u := binary.LittleEndian.Uint64(b)
				if u > math.MaxInt64 {
					return nil, io.ErrUnexpectedEOF
				}
				n = int64(u)
			}
			if n < 0 {
				return nil, fmt.Errorf("negative length in pickle opcode 0x%02x", op)
			}
			err = take(n)
		}
		if err != nil {
			return nil, err
		}
		if op == '.' {
			return buf.Bytes(), nil
		}
	}
}
