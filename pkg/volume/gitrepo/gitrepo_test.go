package gitrepo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/pkg/volume"
)

// makeRepo makes a bare repository "repo.git" with two commits of
// file.txt ("one", then "two") and returns its path and the first
// commit's hash.
func makeRepo(t *testing.T) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	base := t.TempDir()
	work := filepath.Join(base, "work")
	bare := filepath.Join(base, "repo.git")
	run := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME="+base)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(work, 0o755)
	run(work, "init", "-q")
	os.WriteFile(filepath.Join(work, "file.txt"), []byte("one"), 0o644)
	run(work, "add", "file.txt")
	run(work, "commit", "-qm", "one")
	first := run(work, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(work, "file.txt"), []byte("two"), 0o644)
	run(work, "commit", "-qam", "two")
	run(base, "clone", "-q", "--bare", work, bare)
	return bare, first
}

func TestPublishClones(t *testing.T) {
	repo, first := makeRepo(t)
	for _, tc := range []struct {
		name, directory, revision string
		file, want                string
	}{
		{"default dir", "", "", "repo/file.txt", "two"},
		{"dot", ".", "", "file.txt", "two"},
		{"subdir at revision", "sub/dir", first, "sub/dir/file.txt", "one"},
		{"default dir at revision", "", first, "repo/file.txt", "one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "volumes", "git")
			os.MkdirAll(target, 0o777)
			spec := &volume.Spec{Name: "git", Inline: &corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{
				Repository: repo, Directory: tc.directory, Revision: tc.revision}}}
			p := New()
			if !p.CanSupport(spec) {
				t.Fatal("CanSupport = false")
			}
			req := &volume.PublishRequest{VolumeID: "uid-git", Spec: spec, TargetPath: target}
			for range 2 { // the second publish keeps the clone
				if err := p.NodePublish(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(filepath.Join(target, tc.file))
			if err != nil || string(b) != tc.want {
				t.Fatalf("%s = %q, %v; want %q", tc.file, b, err, tc.want)
			}
			if _, err := os.Stat(target + ".gitrepo-tmp"); !os.IsNotExist(err) {
				t.Error("temporary clone left behind")
			}
			if err := p.NodeUnpublish(context.Background(), "uid-git", target); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(target); len(entries) != 0 {
				t.Errorf("unpublish left %d entries", len(entries))
			}
		})
	}
}

func TestPublishFailsClearly(t *testing.T) {
	repo, _ := makeRepo(t)
	target := t.TempDir()
	for _, src := range []*corev1.GitRepoVolumeSource{
		{Repository: filepath.Join(t.TempDir(), "missing.git")},
		{Repository: repo, Revision: "no-such-revision"},
		{Repository: repo, Directory: "../escape"},
	} {
		spec := &volume.Spec{Inline: &corev1.VolumeSource{GitRepo: src}}
		err := New().NodePublish(context.Background(), &volume.PublishRequest{Spec: spec, TargetPath: target})
		if err == nil {
			t.Errorf("%+v: want an error", src)
		}
		if entries, _ := os.ReadDir(target); len(entries) != 0 {
			t.Fatalf("%+v: failed publish left %d entries", src, len(entries))
		}
	}
}
