package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// HashRuleDir returns the SHA-256 over the names and contents of the rule
// files of dir (see RuleFiles); "" for an empty dir name.
func HashRuleDir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	files, err := RuleFiles(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00", filepath.Base(f))
		r, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, io.LimitReader(r, 4<<20))
		r.Close()
		if err != nil {
			return "", err
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WatchRules calls reload whenever a file in dir is created, written,
// renamed or removed, debounced by settle (default 200ms), until ctx ends.
// Editors that replace files atomically are handled: the directory itself is
// watched, not the files. The watcher keeps running after a failed reload
// (the analyzer keeps its previous rules).
func WatchRules(ctx context.Context, dir string, settle time.Duration, log zerolog.Logger, reload func() error) error {
	if settle <= 0 {
		settle = 200 * time.Millisecond
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watching rules %s: %w", dir, err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Remove|fsnotify.Rename) != 0 {
				log.Debug().Str("file", ev.Name).Str("op", ev.Op.String()).Msg("rule file changed")
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn().Err(err).Msg("rule watcher")
		case <-timer.C:
			if err := reload(); err != nil {
				log.Error().Err(err).Msg("rules not reloaded: keeping the previous rule set")
			} else {
				log.Info().Str("dir", dir).Msg("rules reloaded")
			}
		}
	}
}
