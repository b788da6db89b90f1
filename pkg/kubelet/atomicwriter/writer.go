// Package atomicwriter writes the files of a configMap, secret, downwardAPI
// or projected volume so that readers in the container never see a
// half-updated volume, with upstream's layout:
//
//	<dir>/..2026_12_07_10_13_40.123456789/<paths>   one snapshot of the files
//	<dir>/..data -> ..2026_12_07_10_13_40.123456789  swapped with one rename
//	<dir>/<top-level name> -> ..data/<top-level name>
//
// An update writes a new snapshot, points ..data at it with an atomic
// rename, then fixes the user-visible links and removes the old snapshot.
// A payload equal to what is on disk (contents and modes) writes nothing.
// Mounts of a single file (subPath) hold the old snapshot's inode and so
// are not updated, as upstream.
package atomicwriter

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// File is one file of a payload.
type File struct {
	Data []byte
	Mode os.FileMode
}

// Write makes dir hold exactly payload (relative path -> file). It reports
// whether anything on disk changed.
func Write(dir string, payload map[string]File, now time.Time) (bool, error) {
	clean := make(map[string]File, len(payload))
	for p, f := range payload {
		cp, err := validatePath(p)
		if err != nil {
			return false, err
		}
		clean[cp] = f
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create volume dir %s: %w", dir, err)
	}
	oldTS, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read %s link: %w", dataDirName, err)
	}
	if oldTS != "" {
		same, err := equal(filepath.Join(dir, oldTS), clean)
		if err != nil {
			return false, err
		}
		if same && linksUpToDate(dir, clean) {
			return false, nil
		}
	}

	tsDir, err := os.MkdirTemp(dir, now.UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, fmt.Errorf("create snapshot dir: %w", err)
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, err
	}
	if err := writePayload(tsDir, clean); err != nil {
		_ = os.RemoveAll(tsDir)
		return false, err
	}
	tmpLink := filepath.Join(dir, newDataDirName)
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		_ = os.RemoveAll(tsDir)
		return false, fmt.Errorf("link new snapshot: %w", err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		_ = os.Remove(tmpLink)
		_ = os.RemoveAll(tsDir)
		return false, fmt.Errorf("swap %s: %w", dataDirName, err)
	}
	if err := updateLinks(dir, clean); err != nil {
		return true, err
	}
	// The old snapshot, and any left by an interrupted earlier write.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true, fmt.Errorf("list volume dir: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") && n != dataDirName && n != filepath.Base(tsDir) {
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				return true, fmt.Errorf("remove old snapshot: %w", err)
			}
		}
	}
	return true, nil
}

// validatePath rejects absolute paths, ".." elements and names starting
// with "..", which would collide with the writer's own entries.
func validatePath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty file path")
	}
	if filepath.IsAbs(p) {
		return "", fmt.Errorf("file path %q must be relative", p)
	}
	for _, el := range strings.Split(filepath.ToSlash(p), "/") {
		if el == ".." {
			return "", fmt.Errorf("file path %q must not contain '..'", p)
		}
	}
	if strings.HasPrefix(p, "..") {
		return "", fmt.Errorf("file path %q must not start with '..'", p)
	}
	return filepath.Clean(p), nil
}

// equal reports whether snapshot holds exactly payload.
func equal(snapshot string, payload map[string]File) (bool, error) {
	seen := 0
	err := filepath.WalkDir(snapshot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(snapshot, path)
		if err != nil {
			return err
		}
		f, ok := payload[rel]
		if !ok {
			return errChanged
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != f.Mode.Perm() {
			return errChanged
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, f.Data) {
			return errChanged
		}
		seen++
		return nil
	})
	switch {
	case errors.Is(err, errChanged):
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		// ..data points nowhere (a half-finished earlier write).
		return false, nil
	case err != nil:
		return false, fmt.Errorf("compare snapshot: %w", err)
	}
	return seen == len(payload), nil
}

var errChanged = errors.New("changed")

func writePayload(tsDir string, payload map[string]File) error {
	for p, f := range payload {
		target := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.WriteFile(target, f.Data, f.Mode.Perm()); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(target, f.Mode.Perm()); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// topLevel returns the first path element of each payload path.
func topLevel(payload map[string]File) map[string]bool {
	out := map[string]bool{}
	for p := range payload {
		out[strings.SplitN(filepath.ToSlash(p), "/", 2)[0]] = true
	}
	return out
}

func linksUpToDate(dir string, payload map[string]File) bool {
	want := topLevel(payload)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	have := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		t, err := os.Readlink(filepath.Join(dir, e.Name()))
		ours := err == nil && t == filepath.Join(dataDirName, e.Name())
		if want[e.Name()] != ours {
			return false
		}
		if ours {
			have++
		}
	}
	return have == len(want)
}

// updateLinks makes dir's user-visible entries one link per top-level
// payload name. Links of removed names go, and so does anything else in
// the way of a wanted link (a file of an older layout); other entries
// (a directory a subPath mount created, say) stay, as upstream.
func updateLinks(dir string, payload map[string]File) error {
	want := topLevel(payload)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list volume dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		path := filepath.Join(dir, name)
		t, err := os.Readlink(path)
		ours := err == nil && t == filepath.Join(dataDirName, name)
		switch {
		case want[name] && ours:
			delete(want, name)
			continue
		case !want[name] && !ours:
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	for name := range want {
		if err := os.Symlink(filepath.Join(dataDirName, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
	}
	return nil
}
