package torchfile

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/softpatch/softpatch/internal/npy"
)

// ReadNPZ reads every array of a NumPy .npz archive, as np.savez and
// np.savez_compressed write it: a zip of NAME.npy members, stored or
// deflated. The result is keyed by NAME. Members are decoded by npy.Read
// (float32, float64, int64, uint8 and unicode-string arrays); an object
// array, which numpy pickles (allow_pickle), is refused, not unpickled.
//
// Every error names the file, and the member where one is at fault, and
// wraps ErrNotNPZ (not a zip; a member that is not .npy, is malformed or
// repeats a name), ErrTruncated (the archive or a member ends early or is
// damaged), ErrUnsupportedDtype or an fs error (fs.ErrNotExist for a
// missing file).
func ReadNPZ(path string) (map[string]*npy.Array, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, zErr(path, nil, err, "not found")
		}
		return nil, zErr(path, nil, err, "%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, zErr(path, nil, err, "%v", err)
	}
	if st.IsDir() {
		return nil, zErr(path, ErrNotNPZ, nil, "is a directory, not an .npz archive")
	}
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	// A zip starts with a local file header, or, when empty (np.savez with
	// no arrays), with the end of its central directory.
	zipMagic := bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06"))
	switch {
	case n == 0:
		return nil, zErr(path, ErrNotNPZ, nil, "empty file, not an .npz archive")
	case n < 4 && bytes.HasPrefix([]byte("PK\x03\x04"), head):
		return nil, zErr(path, ErrTruncated, nil, "truncated file (%d bytes)", n)
	case !zipMagic:
		return nil, zErr(path, ErrNotNPZ, nil, "not an .npz archive (starts with %s)", describeMagic(head))
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return nil, zErr(path, ErrTruncated, err, "truncated or corrupt zip archive (%v)", err)
	}
	out := make(map[string]*npy.Array, len(zr.File))
	for _, zf := range zr.File {
		key, ok := strings.CutSuffix(zf.Name, ".npy")
		if !ok {
			return nil, zErr(path, ErrNotNPZ, nil, "member %s is not a .npy array", zf.Name)
		}
		if _, dup := out[key]; dup {
			return nil, zErr(path, ErrNotNPZ, nil, "member %s appears twice", zf.Name)
		}
		a, kind, err := readMember(zf)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "npy: ")
			if kind == ErrTruncated {
				return nil, zErr(path, kind, err, "member %s: truncated or corrupt (%s)", zf.Name, msg)
			}
			return nil, zErr(path, kind, err, "member %s: %s", zf.Name, msg)
		}
		out[key] = a
	}
	return out, nil
}

// readMember decodes one .npy member and reads on to the member's end, so
// that the archive's checksum of it is verified even when decoding failed.
// A failure is put under ErrTruncated when the archive could not deliver
// the member intact (and err is then the archive's error, not what npy made
// of the damage) or the member holds less than its header says, otherwise
// under ErrUnsupportedDtype or ErrNotNPZ.
func readMember(zf *zip.File) (a *npy.Array, kind, err error) {
	rc, err := zf.Open()
	if err != nil {
		if errors.Is(err, zip.ErrAlgorithm) {
			return nil, ErrNotNPZ, err
		}
		return nil, ErrTruncated, err
	}
	defer rc.Close()
	src := &errReader{r: rc}
	br := bufio.NewReader(src)
	a, err = npy.Read(br)
	if _, derr := io.Copy(io.Discard, br); err == nil {
		err = derr
	}
	switch {
	case err == nil:
		return a, nil, nil
	case src.err != nil:
		return nil, ErrTruncated, src.err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return nil, ErrTruncated, err
	case errors.Is(err, npy.ErrUnsupportedDType):
		return nil, ErrUnsupportedDtype, err
	}
	return nil, ErrNotNPZ, err
}

// errReader keeps the first error other than io.EOF that r returns.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
