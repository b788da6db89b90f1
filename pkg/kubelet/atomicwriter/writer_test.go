package atomicwriter

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func files(kv ...string) map[string]File {
	out := map[string]File{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = File{Data: []byte(kv[i+1]), Mode: 0o644}
	}
	return out
}

// visible lists what a reader of dir sees: path -> content, following links.
func visible(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		root := filepath.Join(dir, e.Name())
		err := filepath.Walk(root+"/", func(path string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if info.IsDir() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, filepath.Clean(path))
			out[rel] = string(b)
			return nil
		})
		if err != nil {
			// A plain file: Walk of "file/" fails; read it directly.
			b, err := os.ReadFile(root)
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = string(b)
		}
	}
	return out
}

func snapshots(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") && e.Name() != dataDirName {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func mustWrite(t *testing.T, dir string, p map[string]File, now time.Time) bool {
	t.Helper()
	changed, err := Write(dir, p, now)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return changed
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestWriteLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	if !mustWrite(t, dir, files("a", "1", "sub/b", "2"), t0) {
		t.Fatal("first write reported no change")
	}
	target, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil {
		t.Fatalf("..data: %v", err)
	}
	if !strings.HasPrefix(target, "..2026_12_07_10_00_00.") {
		t.Errorf("..data -> %q, want a timestamped dir", target)
	}
	for _, name := range []string{"a", "sub"} {
		l, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || l != filepath.Join(dataDirName, name) {
			t.Errorf("%s -> %q (%v), want ..data/%s", name, l, err, name)
		}
	}
	if got, want := visible(t, dir), map[string]string{"a": "1", "sub/b": "2"}; !equalMaps(got, want) {
		t.Errorf("visible = %v, want %v", got, want)
	}
}

func TestWriteUpdateAndRemoveKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	mustWrite(t, dir, files("a", "1", "b", "2", "sub/c", "3"), t0)
	before := snapshots(t, dir)
	if !mustWrite(t, dir, files("a", "changed", "d", "4"), t0.Add(time.Second)) {
		t.Fatal("update reported no change")
	}
	if got, want := visible(t, dir), map[string]string{"a": "changed", "d": "4"}; !equalMaps(got, want) {
		t.Errorf("visible = %v, want %v", got, want)
	}
	after := snapshots(t, dir)
	if len(after) != 1 || after[0] == before[0] {
		t.Errorf("snapshots %v -> %v, want the old one replaced by one new", before, after)
	}
	// Removing every key (an optional source deleted) empties the volume.
	mustWrite(t, dir, nil, t0.Add(2*time.Second))
	if got := visible(t, dir); len(got) != 0 {
		t.Errorf("visible after removal = %v, want nothing", got)
	}
}

func TestWriteNoChangeNoRewrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	p := files("a", "1", "sub/b", "2")
	mustWrite(t, dir, p, t0)
	before := snapshots(t, dir)
	fi, err := os.Stat(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if mustWrite(t, dir, files("a", "1", "sub/b", "2"), t0.Add(time.Minute)) {
		t.Error("identical payload reported a change")
	}
	fi2, err := os.Stat(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi, fi2) {
		t.Error("identical payload rewrote the file")
	}
	if after := snapshots(t, dir); len(after) != 1 || after[0] != before[0] {
		t.Errorf("snapshots %v -> %v, want unchanged", before, after)
	}
}

func TestWriteModeChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	mustWrite(t, dir, files("a", "1"), t0)
	p := files("a", "1")
	p["a"] = File{Data: []byte("1"), Mode: 0o400}
	if !mustWrite(t, dir, p, t0.Add(time.Second)) {
		t.Fatal("mode change reported no change")
	}
	fi, err := os.Stat(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Errorf("mode = %v, want 0400", fi.Mode().Perm())
	}
}

func TestWriteReplacesOldLayoutAndLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	if err := os.MkdirAll(filepath.Join(dir, "..2026_01_01_00_00_00.stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A plain file written by the kubelet's earlier layout.
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, dir, files("a", "new"), t0)
	if got, want := visible(t, dir), map[string]string{"a": "new"}; !equalMaps(got, want) {
		t.Errorf("visible = %v, want %v", got, want)
	}
	if s := snapshots(t, dir); len(s) != 1 {
		t.Errorf("snapshots = %v, want one", s)
	}
}

func TestWriteRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"/abs", "../up", "a/../../b", "..data", "..x"} {
		if _, err := Write(filepath.Join(t.TempDir(), "vol"), files(p, "x"), t0); err == nil {
			t.Errorf("Write(%q) succeeded, want an error", p)
		}
	}
}

func TestWriteKeepsForeignEntries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	mustWrite(t, dir, files("a", "1"), t0)
	// A directory a subPath mount of a missing key created.
	if err := os.Mkdir(filepath.Join(dir, "made-by-subpath"), 0o755); err != nil {
		t.Fatal(err)
	}
	if mustWrite(t, dir, files("a", "1"), t0.Add(time.Second)) {
		t.Error("identical payload reported a change")
	}
	mustWrite(t, dir, files("b", "2"), t0.Add(2*time.Second))
	if _, err := os.Stat(filepath.Join(dir, "made-by-subpath")); err != nil {
		t.Errorf("foreign entry removed: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "a")); err == nil {
		t.Error("link of removed key a still there")
	}
}
