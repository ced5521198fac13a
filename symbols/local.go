package symbols

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kdtriage/kdtriage/symbols/cab"
)

// maxPointerSize bounds a file.ptr: it holds one path or message.
const maxPointerSize = 4096

// hit is a file found in a local store.
type hit struct {
	path       string // the file found (may be compressed)
	compressed bool   // path is a CAB holding the file
	exact      bool   // found under the key's index directory (not by name alone)
}

// dirLevel is a SymStore-layout directory: Name/ID/File, or with
// index2.txt at the root the two-tier Na/Name/ID/File layout.
type dirLevel struct {
	root string
}

// twoTier reports whether the store uses the index2.txt layout: index2.txt
// must be a regular file. A directory of that name does not count: a
// module named "index2.txt" in a dump would otherwise create one in a flat
// cache and flip its layout, hiding everything cached before.
func (d dirLevel) twoTier() bool {
	return isFile(filepath.Join(d.root, "index2.txt"))
}

// prefix returns the two-tier prefix directory of a name: its first two
// characters (the whole name if shorter).
func prefix(name string) string {
	r := []rune(name)
	if len(r) > 2 {
		r = r[:2]
	}
	return string(r)
}

// keyDirs returns the index directories to look in for k, canonical case
// first, then with a lowercase ID, a lowercase name, and both (stores on
// case-sensitive file systems written by other tools).
func (d dirLevel) keyDirs(k Key) []string {
	type nid struct{ name, id string }
	var variants []nid
	seen := map[nid]bool{}
	for _, v := range []nid{{k.Name, k.ID}, {k.Name, strings.ToLower(k.ID)}, {strings.ToLower(k.Name), k.ID}, {strings.ToLower(k.Name), strings.ToLower(k.ID)}} {
		if !seen[v] {
			seen[v] = true
			variants = append(variants, v)
		}
	}
	two := d.twoTier()
	var dirs []string
	add := func(p string) {
		if within(d.root, p) {
			dirs = append(dirs, p)
		}
	}
	for _, v := range variants {
		if two {
			p := prefix(v.name)
			add(filepath.Join(d.root, p, v.name, v.id))
			if lp := strings.ToLower(p); lp != p {
				add(filepath.Join(d.root, lp, v.name, v.id))
			}
		} else {
			add(filepath.Join(d.root, v.name, v.id))
		}
	}
	return dirs
}

// canonicalDir is where k lives in this store when written by us.
func (d dirLevel) canonicalDir(k Key) string {
	if d.twoTier() {
		return filepath.Join(d.root, prefix(k.Name), k.Name, k.ID)
	}
	return filepath.Join(d.root, k.Name, k.ID)
}

// candidates lists the canonical locations tried for k, in order.
func (d dirLevel) candidates(k Key) []string {
	dir := d.canonicalDir(k)
	return []string{filepath.Join(dir, k.File), filepath.Join(dir, k.CompressedFile()), filepath.Join(dir, "file.ptr")}
}

// lookup finds k in the store: the file itself, its compressed form, or a
// file.ptr redirection, in each index-directory variant. tried collects the
// canonical locations for error messages.
func (d dirLevel) lookup(k Key) (hit, error) {
	files := []string{k.File}
	if lf := strings.ToLower(k.File); lf != k.File {
		files = append(files, lf)
	}
	for _, dir := range d.keyDirs(k) {
		if !isDir(dir) {
			continue
		}
		for _, f := range files {
			p := filepath.Join(dir, f)
			if isFile(p) {
				return hit{path: p, exact: true}, nil
			}
			c := p[:len(p)-1] + "_"
			if isFile(c) {
				return hit{path: c, compressed: true, exact: true}, nil
			}
		}
		ptr := filepath.Join(dir, "file.ptr")
		if isFile(ptr) {
			h, err := followPointer(ptr)
			if err != nil {
				return hit{}, err
			}
			return h, nil
		}
	}
	return hit{}, &NotFoundError{Key: k, Tried: d.candidates(k)}
}

// PointerError reports a file.ptr that could not be followed.
type PointerError struct {
	Ptr    string // the file.ptr path
	Target string // the path it names, if any
	Msg    string // the MSG: text, if any
	Err    error
}

func (e *PointerError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("symbols: %s: %s", e.Ptr, e.Msg)
	}
	return fmt.Sprintf("symbols: %s -> %s: %v", e.Ptr, e.Target, e.Err)
}

// Unwrap returns the cause.
func (e *PointerError) Unwrap() error { return e.Err }

// followPointer reads a file.ptr: "PATH:<path>" (or a bare path) names the
// real file, "MSG:<text>" is a message from the store's administrator
// (typically why the file is not available). A relative path is taken
// relative to the file.ptr's directory. The path is the store
// administrator's, not the dump's, so it may lie outside the store; Windows
// UNC paths cannot be followed on other systems and give ErrNotFound.
func followPointer(ptr string) (hit, error) {
	f, err := os.Open(ptr)
	if err != nil {
		return hit{}, &PointerError{Ptr: ptr, Err: err}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPointerSize+1))
	if err != nil {
		return hit{}, &PointerError{Ptr: ptr, Err: err}
	}
	if len(b) > maxPointerSize {
		return hit{}, &PointerError{Ptr: ptr, Err: errors.New("file.ptr larger than 4 KiB")}
	}
	s := strings.TrimSpace(strings.TrimPrefix(string(b), "\ufeff"))
	if line, _, ok := strings.Cut(s, "\n"); ok {
		s = strings.TrimSpace(line)
	}
	switch {
	case hasPrefixFold(s, "MSG:"):
		return hit{}, &PointerError{Ptr: ptr, Msg: strings.TrimSpace(s[4:]), Err: ErrPointerMessage}
	case hasPrefixFold(s, "PATH:"):
		s = strings.TrimSpace(s[5:])
	}
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return hit{}, &PointerError{Ptr: ptr, Err: errors.New("empty or malformed path")}
	}
	target := s
	if strings.HasPrefix(target, `\\`) || (len(target) > 1 && target[1] == ':') {
		return hit{}, &PointerError{Ptr: ptr, Target: target, Err: fmt.Errorf("%w: Windows path cannot be opened here", ErrNotFound)}
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(ptr), filepath.FromSlash(target))
	}
	if !isFile(target) {
		return hit{}, &PointerError{Ptr: ptr, Target: target, Err: ErrNotFound}
	}
	return hit{path: target, compressed: isCAB(target), exact: true}, nil
}

func hasPrefixFold(s, p string) bool {
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// isCAB reports whether the file starts with the cabinet magic.
func isCAB(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var m [4]byte
	_, err = io.ReadFull(f, m[:])
	return err == nil && string(m[:]) == "MSCF"
}

// within reports whether p lies inside root (defence in depth: keys are
// validated before they are joined).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// storePath returns where k is written under root (the two-tier layout if
// root has index2.txt), refusing anything that would leave root.
func storePath(root string, k Key) (string, error) {
	if err := k.Validate(); err != nil {
		return "", err
	}
	p := filepath.Join(dirLevel{root: root}.canonicalDir(k), k.File)
	if !within(root, p) {
		return "", &KeyError{Key: k.String(), Reason: "escapes the store"}
	}
	return p, nil
}

// mkdirInStore creates dir, which lies inside root, one component at a
// time, refusing to go through a symbolic link below root: keys are single
// path components, but a link planted in a shared cache (cache/ntkrnlmp.pdb
// -> /etc) would otherwise make writes land outside it. root itself may be
// a link.
func mkdirInStore(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || !within(root, dir) {
		return fmt.Errorf("symbols: %s is not inside the store %s", dir, root)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if err = os.Mkdir(cur, 0o755); err == nil || errors.Is(err, fs.ErrExist) {
				fi, err = os.Lstat(cur) // made here, or by a concurrent writer
			}
		}
		switch {
		case err != nil:
			return err
		case fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0:
			// ModeIrregular: Windows reports junctions (mount points) so.
			return fmt.Errorf("symbols: %s is a symbolic link inside the store %s: not writing through it", cur, root)
		case !fi.IsDir():
			return fmt.Errorf("symbols: %s in the store %s is not a directory", cur, root)
		}
	}
	return nil
}

// writeAtomic creates dst from r: it writes a temporary file in dst's
// directory and renames it into place, so readers never see a partial
// file. At most limit bytes are accepted.
func writeAtomic(dst string, r io.Reader, limit int64) error {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".kdtriage-*.tmp")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if n > limit {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	ok = true
	return nil
}

// copyAtomic copies the file src to dst atomically.
func copyAtomic(dst, src string, limit int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeAtomic(dst, f, limit)
}

// unpackAtomic extracts the member of the cabinet src that k names (or its
// only member) to dst atomically.
func unpackAtomic(dst, src string, k Key, limit int64) error {
	fh, err := os.Open(src)
	if err != nil {
		return err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return err
	}
	// A symbol file is alone in its cabinet: bound the folder bytes decoded
	// by the size limit too, so a hostile cabinet cannot make us inflate
	// gigabytes before the member starts.
	r, err := cab.NewReaderLimits(fh, fi.Size(), cab.Limits{MaxFiles: 64, MaxFolders: 64, MaxFileSize: limit, MaxFolderSize: limit})
	if err != nil {
		return fmt.Errorf("symbols: unpacking %s: %w", src, err)
	}
	var member *cab.File
	for _, f := range r.Files {
		if strings.EqualFold(baseName(f.Name), k.File) {
			member = f
			break
		}
	}
	if member == nil && len(r.Files) == 1 {
		member = r.Files[0]
	}
	if member == nil {
		return fmt.Errorf("symbols: unpacking %s: no member named %s among %d", src, k.File, len(r.Files))
	}
	if int64(member.Size) > limit {
		return fmt.Errorf("%w: %s unpacks to %d bytes", ErrTooLarge, src, member.Size)
	}
	rc, err := member.Open()
	if errors.Is(err, cab.ErrLimit) {
		return fmt.Errorf("%w: unpacking %s: %v", ErrTooLarge, src, err)
	}
	if err != nil {
		return fmt.Errorf("symbols: unpacking %s: %w", src, err)
	}
	defer rc.Close()
	if err := writeAtomic(dst, rc, limit); err != nil {
		return fmt.Errorf("symbols: unpacking %s: %w", src, err)
	}
	return nil
}
