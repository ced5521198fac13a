package workers

import (
	"bytes"
	"context"
	"crypto/sha256"
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
	f, err := os.CreateTemp(dir, "kdtriage-spool-*.dmp")
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
	h := sha256.New()
	buf := make([]byte, 256<<10)
	zero := make([]byte, len(buf))
	var n, lastBeat int64
	for {
		k, rerr := io.ReadFull(res, buf)
		if rerr == io.ErrUnexpectedEOF {
			rerr = io.EOF
		}
		if k > 0 {
			h.Write(buf[:k])
			// Runs of zeros (the unused memory of a full dump) become
			// holes: the spool file stays sparse like the original.
			var err error
			if bytes.Equal(buf[:k], zero[:k]) {
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
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return "", Permanent(fmt.Errorf("object %s holds bytes with SHA-256 %s: %w", sha, got, errDigestMismatch))
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

// errTooLarge is wrapped when a dump exceeds the configured size cap.
var errTooLarge = errors.New("dump too large")
