package torchfile

// Decoding one pickle with the allow-listed globals, rebuilding tensors as
// strided views of storages, converting their elements to float32, and the
// opcode scan that bounds every length before decoding.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

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
		panic("torchfile: decodeContiguous: " + dt.name)
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
