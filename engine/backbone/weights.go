package backbone

// Checking a state_dict against an architecture, and finding the
// checkpoint file of an architecture. Reading checkpoints is
// internal/torchfile's.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/softpatch/softpatch/internal/torchfile"
)

// Tensor is one float32 entry of a state_dict: shape and row-major data
// (torchfile's type, so that checkpoints need no copying).
type Tensor = torchfile.Tensor

// Errors the weights functions wrap; test for them with errors.Is. The
// messages of the returned errors name the file and the detail. Those
// about reading a file are torchfile's, and LoadCheckpoint passes them on.
var (
	// ErrNoWeights: FindWeights found no checkpoint in any place it
	// searched (the error text lists them).
	ErrNoWeights = errors.New("no weights found")
	// ErrArchMismatch: the state_dict's keys or shapes do not match the
	// architecture.
	ErrArchMismatch = errors.New("state_dict does not match architecture")
	// ErrNotCheckpoint is torchfile.ErrNotCheckpoint.
	ErrNotCheckpoint = torchfile.ErrNotCheckpoint
	// ErrTruncated is torchfile.ErrTruncated.
	ErrTruncated = torchfile.ErrTruncated
	// ErrUnsafePickle is torchfile.ErrUnsafePickle.
	ErrUnsafePickle = torchfile.ErrUnsafePickle
	// ErrUnsupportedDtype is torchfile.ErrUnsupportedDtype.
	ErrUnsupportedDtype = torchfile.ErrUnsupportedDtype
)

// wErr is an error about a weights file (or, path "", the search for
// one): "weights: FILE: msg".
func wErr(path string, kind, cause error, format string, args ...any) error {
	return &torchfile.FileError{Op: "weights", Path: path, Msg: fmt.Sprintf(format, args...), Kind: kind, Cause: cause}
}

// ReadCheckpoint reads a state_dict written by torch.save with
// torchfile.ReadCheckpoint: keys as saved, every entry as float32.
func ReadCheckpoint(path string) (map[string]Tensor, error) {
	return torchfile.ReadCheckpoint(path)
}

// LoadCheckpoint reads a checkpoint with ReadCheckpoint and checks it
// against arch.Params(): every non-optional key must be present, no other
// key may be, and every shape must match. When every key starts with
// "module." (a model wrapped in DataParallel or DistributedDataParallel
// when it was saved) the prefix is stripped first. The error of a failed
// check names the file, wraps ErrArchMismatch, lists the first few
// differences (missing and unexpected keys by name, shapes as got vs want)
// and says which known architecture the file is if it matches another.
func LoadCheckpoint(path string, arch Arch) (map[string]Tensor, error) {
	params, err := ReadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	params = stripModulePrefix(params)
	diffs := archDiffs(params, arch)
	if len(diffs) == 0 {
		return params, nil
	}
	const show = 4
	msg := strings.Join(diffs[:min(show, len(diffs))], "; ")
	if len(diffs) > show {
		msg += fmt.Sprintf("; and %d more", len(diffs)-show)
	}
	if other, err := MatchArch(params); err == nil {
		msg += fmt.Sprintf(" (the file is a %s state_dict)", other.Name)
	}
	return nil, wErr(path, ErrArchMismatch, nil, "does not match %s: %s", arch.Name, msg)
}

// stripModulePrefix removes a "module." prefix that every key carries.
func stripModulePrefix(params map[string]Tensor) map[string]Tensor {
	if len(params) == 0 {
		return params
	}
	for k := range params {
		if !strings.HasPrefix(k, "module.") {
			return params
		}
	}
	out := make(map[string]Tensor, len(params))
	for k, v := range params {
		out[strings.TrimPrefix(k, "module.")] = v
	}
	return out
}

// archDiffs lists how params differs from arch: missing keys and shape
// mismatches in arch.Params() order, then unexpected keys sorted.
func archDiffs(params map[string]Tensor, arch Arch) []string {
	var diffs []string
	known := map[string]bool{}
	for _, p := range arch.Params() {
		known[p.Name] = true
		t, ok := params[p.Name]
		if !ok {
			if !p.Optional {
				diffs = append(diffs, "missing key "+p.Name)
			}
			continue
		}
		if !slices.Equal(t.Shape, p.Shape) {
			diffs = append(diffs, fmt.Sprintf("%s has shape %v, want %v", p.Name, t.Shape, p.Shape))
		}
	}
	var extra []string
	for k := range params {
		if !known[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		diffs = append(diffs, "unexpected key "+k)
	}
	return diffs
}

// MatchArch reports which of Archs the state_dict matches exactly (same
// keys, optional ones aside, and shapes; a common "module." prefix is
// ignored). Otherwise its error, wrapping ErrArchMismatch, names the
// closest architecture (fewest differences) and its first difference.
func MatchArch(params map[string]Tensor) (Arch, error) {
	params = stripModulePrefix(params)
	best, bestN := -1, 0
	var bestFirst string
	for i, a := range Archs {
		diffs := archDiffs(params, a)
		if len(diffs) == 0 {
			return a, nil
		}
		if best < 0 || len(diffs) < bestN {
			best, bestN, bestFirst = i, len(diffs), diffs[0]
		}
	}
	if best < 0 {
		return Arch{}, wErr("", ErrArchMismatch, nil, "no architectures to match")
	}
	return Arch{}, wErr("", ErrArchMismatch, nil, "state_dict (%d entries) matches no known architecture; closest is %s with %d differences, first: %s",
		len(params), Archs[best].Name, bestN, bestFirst)
}

// ---- locating weights --------------------------------------------------

// torchvisionFiles are the file names torchvision's model zoo downloads
// into hub/checkpoints, preferred first (the IMAGENET1K_V1 weights, which
// PatchCore and SoftPatch used, before the V2 ones).
var torchvisionFiles = map[string][]string{
	"wide_resnet50_2":  {"wide_resnet50_2-95faca4d.pth", "wide_resnet50_2-9ba9bcbe.pth"},
	"resnet50":         {"resnet50-0676ba61.pth", "resnet50-19c8e357.pth", "resnet50-11ad3fa6.pth"},
	"wide_resnet101_2": {"wide_resnet101_2-32ee1156.pth", "wide_resnet101_2-d733dc28.pth"},
}

// WeightFileNames returns the torchvision checkpoint file names FindWeights
// accepts for arch, preferred first (none for an unnamed architecture).
func WeightFileNames(arch Arch) []string {
	return append([]string(nil), torchvisionFiles[arch.Name]...)
}

// FindWeights resolves the checkpoint to load for arch:
//
//  1. explicit, when non-empty: it must exist (a missing file is an error
//     wrapping fs.ErrNotExist, not ErrNoWeights: the caller asked for it);
//     a directory is searched like the folders below;
//  2. else $SOFTPATCH_WEIGHTS, the same way (a file or a folder);
//  3. else torch's hub cache: $TORCH_HOME/hub/checkpoints,
//     $XDG_CACHE_HOME/torch/hub/checkpoints and
//     ~/.cache/torch/hub/checkpoints, in that order, looking for the
//     torchvision file names of WeightFileNames(arch).
//
// When nothing is found it returns ("", err) with errors.Is(err,
// ErrNoWeights); the text lists every place searched.
func FindWeights(explicit string, arch Arch) (string, error) {
	names := WeightFileNames(arch)
	var searched []string
	inDir := func(dir string) string {
		for _, n := range names {
			p := filepath.Join(dir, n)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p
			}
		}
		if len(names) == 0 {
			searched = append(searched, dir+" (no torchvision file names for "+arch.Name+")")
		} else {
			searched = append(searched, filepath.Join(dir, "{"+strings.Join(names, ",")+"}"))
		}
		return ""
	}
	given := func(p, what string) (string, bool, error) {
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", false, wErr(p, nil, err, "not found (%s)", what)
			}
			return "", false, wErr(p, nil, err, "%v", err)
		}
		if !st.IsDir() {
			return p, true, nil
		}
		if f := inDir(p); f != "" {
			return f, true, nil
		}
		return "", false, wErr(p, nil, fs.ErrNotExist, "no %s checkpoint in this folder (%s; looked for %s)", arch.Name, what, strings.Join(WeightFileNames(arch), ", "))
	}
	if explicit != "" {
		p, ok, err := given(explicit, "weights path given explicitly")
		if err != nil || ok {
			return p, err
		}
	} else if env := os.Getenv("SOFTPATCH_WEIGHTS"); env != "" {
		p, ok, err := given(env, "$SOFTPATCH_WEIGHTS")
		if err != nil || ok {
			return p, err
		}
	} else {
		searched = append(searched, "$SOFTPATCH_WEIGHTS (unset)")
	}
	var dirs []string
	if th := os.Getenv("TORCH_HOME"); th != "" {
		dirs = append(dirs, filepath.Join(th, "hub", "checkpoints"))
	} else {
		searched = append(searched, "$TORCH_HOME (unset)")
	}
	if xdg := os.Getenv("XDG_CACHE_HOME"); xdg != "" {
		dirs = append(dirs, filepath.Join(xdg, "torch", "hub", "checkpoints"))
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		dirs = append(dirs, filepath.Join(home, ".cache", "torch", "hub", "checkpoints"))
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if f := inDir(dir); f != "" {
			return f, nil
		}
	}
	return "", wErr("", ErrNoWeights, nil, "no %s weights found; searched: %s", arch.Name, strings.Join(searched, "; "))
}

// HashFile returns the hex SHA-256 of a file (64 characters; the first 12
// are enough to tell weights apart in reports).
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", wErr(path, nil, err, "%v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", wErr(path, nil, err, "%v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
