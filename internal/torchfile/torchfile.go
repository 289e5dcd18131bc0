// Package torchfile reads tensors out of files that Python tools write:
// state_dicts saved with torch.save (.pth, in the zip serialisation of
// torch >= 1.6 or the older legacy stream) and NumPy .npz archives.
//
// A torch.save file is a Python pickle, and a pickle is a program for a
// small stack machine: its GLOBAL, STACK_GLOBAL and INST opcodes name
// arbitrary Python callables, and REDUCE, NEWOBJ and BUILD call them. This
// package runs none of it. The opcode stream is decoded by gopickle into
// plain Go values, and every name the pickle asks for is looked up in a
// fixed allow-list: collections.OrderedDict, torch._utils._rebuild_tensor
// and _rebuild_tensor_v2, torch._utils._rebuild_parameter and
// _rebuild_parameter_with_state, and the torch.<Type>Storage classes. Each
// of these is a Go function here that only records which slice of which
// storage a tensor views; any other name ends the read with
// ErrUnsafePickle. Before a pickle reaches the decoder it is walked opcode
// by opcode and every length it declares is checked against the bytes left
// in the file, storages may not claim more elements than the file can hold
// and tensor views must stay inside their storage, so a crafted file can
// neither make the reader allocate far beyond its own size nor read past
// its end. A panic inside the decoder is returned as an error.
//
// The members of an .npz archive are decoded by internal/npy. Object
// arrays, which numpy stores as pickles (its allow_pickle option), are
// refused rather than unpickled.
//
// Every error names the file (and the archive member where one is at
// fault) and wraps one of the sentinel errors below or an fs error.
package torchfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Tensor is one float32 entry of a checkpoint: shape and row-major data.
// A scalar has an empty Shape and one value.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Errors the readers wrap; test for them with errors.Is. The messages of
// the returned errors name the file and the detail.
var (
	// ErrNotCheckpoint: the file is not a torch.save file (or is one that
	// holds something other than a state_dict).
	ErrNotCheckpoint = errors.New("not a torch checkpoint")
	// ErrNotNPZ: the file is not an .npz archive, or one of its members
	// is not a well-formed .npy array or repeats another's name.
	ErrNotNPZ = errors.New("not a NumPy .npz archive")
	// ErrTruncated: the file ends early or its archive is damaged.
	ErrTruncated = errors.New("truncated or corrupt checkpoint")
	// ErrUnsafePickle: the pickle names a global outside the allow-list.
	ErrUnsafePickle = errors.New("refused pickle global")
	// ErrUnsupportedDtype: a checkpoint entry's dtype cannot be read as
	// float32, or an .npz member's dtype is not one npy reads (object
	// arrays included).
	ErrUnsupportedDtype = errors.New("unsupported dtype")
)

// FileError is an error about one file: "OP: FILE: msg" ("OP: msg"
// without a file), where OP is "weights" for checkpoints and "npz" for
// .npz archives. It wraps Kind (one of the sentinels above, or another
// package's) and Cause.
type FileError struct {
	Op, Path, Msg string
	Kind, Cause   error
}

// Error is "OP: FILE: msg", or "OP: msg" without a file.
func (e *FileError) Error() string {
	if e.Path == "" {
		return e.Op + ": " + e.Msg
	}
	return e.Op + ": " + e.Path + ": " + e.Msg
}

// Unwrap returns Kind and Cause, those that are set.
func (e *FileError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Kind, e.Cause} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// wErr is an error about a checkpoint file.
func wErr(path string, kind, cause error, format string, args ...any) error {
	return &FileError{Op: "weights", Path: path, Msg: fmt.Sprintf(format, args...), Kind: kind, Cause: cause}
}

// zErr is an error about an .npz archive.
func zErr(path string, kind, cause error, format string, args ...any) error {
	return &FileError{Op: "npz", Path: path, Msg: fmt.Sprintf(format, args...), Kind: kind, Cause: cause}
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
