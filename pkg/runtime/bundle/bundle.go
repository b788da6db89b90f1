// Package bundle carries helper binaries inside skiff (`make build` embeds
// them, gzipped) and installs them into a node's data dir, as k3s does with
// its bundled binaries:
//
//   - skiff-runtime, the container runtime. libcontainer starts every
//     container by re-executing the runtime's own binary (/proc/self/exe
//     init), so it holds only the CRI server and libcontainer: a container
//     start pays about 3 ms of Go start-up and well under 1 MB instead of
//     the full skiff binary's 70 ms and 12 MB.
//   - skiff-agent, `skiff agent` without the control plane and kubectl
//     linked in: half the resident memory on worker nodes.
package bundle

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The bundled binaries.
const (
	Runtime = "skiff-runtime"
	Agent   = "skiff-agent"
)

// binaries maps a bundled binary's name to its gzipped contents; the
// embed_*.go files fill it in builds with the matching tags.
var binaries = map[string][]byte{}

// Has reports whether this build carries the named binary.
func Has(name string) bool { return len(binaries[name]) > 0 }

// Install writes the named binary to dir/<name>-<hash> unless it is there
// already, removes other versions of it, and returns its path.
func Install(dir, name string) (string, error) {
	gz := binaries[name]
	if len(gz) == 0 {
		return "", fmt.Errorf("this skiff build does not bundle %s (build with make)", name)
	}
	sum := sha256.Sum256(gz)
	path := filepath.Join(dir, name+"-"+hex.EncodeToString(sum[:6]))
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == 0o700 {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return "", fmt.Errorf("bundled %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, zr); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	if err := tmp.Chmod(0o700); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	// Other versions go; a process still running one keeps its inode.
	old, _ := filepath.Glob(filepath.Join(dir, name+"-*"))
	for _, o := range old {
		if o != path {
			_ = os.Remove(o)
		}
	}
	return path, nil
}
