package workers

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// spool copies the object sha from the object store into a temporary file
// in dir, verifying its SHA-256 on the way, and returns the file's path.
// Memory use is bounded by the object store's chunk size, not the dump's
// size. beat is called about every 8 MiB so a long download keeps the job
// alive. The caller removes the file.
func spool(ctx context.Context, obs jetstream.ObjectStore, sha, dir string, maxSize int64, beat func()) (string, error) {
	info, err := obs.GetInfo(ctx, sha)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return "", Permanent(fmt.Errorf("%s: %w", sha, errMissingObject))
		}
		return "", fmt.Errorf("looking up %s: %w", sha, err)
	}
	if maxSize > 0 && int64(info.Size) > maxSize {
		return "", Permanent(fmt.Errorf("dump %s is %d bytes, above the %d-byte cap: %w", sha, info.Size, maxSize, errTooLarge))
	}
	// The object store checks the bytes against the digest in the
	// object's metadata as they stream; that digest must be the key.
	if !digestIs(info.Digest, sha) {
		return "", Permanent(fmt.Errorf("object %s has digest %q: %w", sha, truncate(info.Digest, 80), errDigestMismatch))
	}
	// Without a deadline the client gives a whole Get its default API
	// timeout (5s): allow for the object's size at a slow 4 MiB/s.
	gctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(info.Size>>22)*time.Second)
	defer cancel()
	res, err := obs.Get(gctx, sha)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return "", Permanent(fmt.Errorf("%s: %w", sha, errMissingObject))
		}
		return "", fmt.Errorf("fetching %s: %w", sha, err)
	}
	defer res.Close()
	f, err := os.CreateTemp(dir, spoolPattern)
	if err != nil {
		return "", fmt.Errorf("spooling %s: %w", sha, err)
	}
	path := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(path)
		}
	}()
	buf := make([]byte, 128<<10)
	var n, lastBeat int64
	for {
		k, rerr := io.ReadFull(res, buf)
		if rerr == io.ErrUnexpectedEOF {
			rerr = io.EOF
		}
		if k > 0 {
			// Runs of zeros (the unused memory of a full dump) become
			// holes: the spool file stays sparse like the original.
			var err error
			if allZero(buf[:k]) {
				_, err = f.Seek(int64(k), io.SeekCurrent)
			} else {
				_, err = f.Write(buf[:k])
			}
			if err != nil {
				return "", fmt.Errorf("spooling %s: %w", sha, err)
			}
			n += int64(k)
			if maxSize > 0 && n > maxSize {
				return "", Permanent(fmt.Errorf("dump %s exceeds the %d-byte cap: %w", sha, maxSize, errTooLarge))
			}
			if beat != nil && n-lastBeat >= 8<<20 {
				beat()
				lastBeat = n
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if errors.Is(rerr, jetstream.ErrDigestMismatch) {
				return "", Permanent(fmt.Errorf("%s: %w", sha, errDigestMismatch))
			}
			return "", fmt.Errorf("fetching %s: %w", sha, rerr)
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
	}
	if err := f.Truncate(n); err != nil {
		return "", fmt.Errorf("spooling %s: %w", sha, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("spooling %s: %w", sha, err)
	}
	ok = true
	return path, nil
}

// spoolPattern names spool files (os.CreateTemp and filepath.Glob).
const spoolPattern = "kdtriage-spool-*.dmp"

// errTooLarge is wrapped when a dump exceeds the configured size cap.
var errTooLarge = errors.New("dump too large")

// digestIs reports whether an object store digest ("SHA-256=<base64>")
// is the hex SHA-256 sha.
func digestIs(digest, sha string) bool {
	want, err := hex.DecodeString(sha)
	if err != nil {
		return false
	}
	got, err := jetstream.DecodeObjectDigest(digest)
	return err == nil && bytes.Equal(got, want)
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.NativeEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
