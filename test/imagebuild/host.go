package imagebuild

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BusyboxBinary is where Debian's busybox-static installs its binary.
const BusyboxBinary = "/bin/busybox"

// Busybox returns the entries of a busybox root: the static binary at
// bin/busybox, a symlink in bin/ for every applet it was built with, a
// passwd and group with root and nobody, and a world-writable tmp.
func Busybox(binary string) ([]Entry, error) {
	bb, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("busybox (Debian package busybox-static): %w", err)
	}
	out, err := exec.Command(binary, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", binary, err)
	}
	entries := []Entry{
		{Path: "bin/busybox", Data: bb, Mode: 0o755},
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{Path: "etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\n")},
		{Path: "etc/nsswitch.conf", Data: []byte("hosts: files dns\n")},
		{Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "root", Dir: true, Mode: 0o700},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			entries = append(entries, Entry{Path: "bin/" + applet, Link: "busybox"})
		}
	}
	return entries, nil
}

// HostBinaries returns entries for host programs (absolute paths) with
// every shared library their dynamic loader resolves for them, at the same
// paths, so they run in an image whose root has no libc of its own.
// Symlinked library names are kept as symlinks.
func HostBinaries(binaries ...string) ([]Entry, error) {
	seen := map[string]bool{}
	var entries []Entry
	var add func(p string) error
	add = func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entries = append(entries, Entry{Path: p, Link: target})
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			return add(target)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		entries = append(entries, Entry{Path: p, Data: data, Mode: int64(fi.Mode().Perm())})
		return nil
	}
	for _, bin := range binaries {
		if err := add(bin); err != nil {
			return nil, fmt.Errorf("host binary %s: %w", bin, err)
		}
		libs, err := sharedLibraries(bin)
		if err != nil {
			return nil, err
		}
		for _, lib := range libs {
			if err := add(lib); err != nil {
				return nil, fmt.Errorf("library of %s: %w", bin, err)
			}
		}
	}
	return entries, nil
}

// sharedLibraries lists the absolute library paths ldd resolves for bin,
// the dynamic loader included; a static binary has none.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && filepath.IsAbs(f[2]):
			libs = append(libs, f[2])
		case len(f) >= 1 && filepath.IsAbs(f[0]):
			libs = append(libs, f[0])
		}
	}
	return libs, sc.Err()
}
