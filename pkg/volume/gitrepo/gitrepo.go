// Package gitrepo mounts the deprecated inline gitRepo volume: an
// emptyDir-like directory into which NodePublish clones a repository
// with the git binary, checking out a revision if one is given, as
// upstream's kubelet does. The clone happens in a sibling directory and
// is renamed into place, so a kubelet killed mid-clone leaves no partial
// checkout that later publishes would take for a finished one.
package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/skiff/skiff/pkg/volume"
)

// PluginName is upstream's name for the plugin.
const PluginName = "kubernetes.io/git-repo"

// Plugin clones gitRepo volumes.
type Plugin struct {
	// Git is the git binary; default "git" from PATH.
	Git string
}

var _ volume.Plugin = (*Plugin)(nil)

// New returns the plugin using git from PATH.
func New() *Plugin { return &Plugin{Git: "git"} }

// Name returns PluginName.
func (*Plugin) Name() string { return PluginName }

// CanSupport reports whether spec is an inline gitRepo volume.
func (*Plugin) CanSupport(spec *volume.Spec) bool {
	return spec.Inline != nil && spec.Inline.GitRepo != nil
}

// SupportsOwnership reports that the pod's fsGroup applies to the clone,
// as to an emptyDir.
func (*Plugin) SupportsOwnership(*volume.Spec) bool { return true }

// NodeStage does nothing: every pod gets its own clone.
func (*Plugin) NodeStage(context.Context, *volume.StageRequest) error { return nil }

// NodeUnstage does nothing.
func (*Plugin) NodeUnstage(context.Context, string, string) error { return nil }

// NodePublish clones the repository into req.TargetPath unless an
// earlier call already did.
func (p *Plugin) NodePublish(ctx context.Context, req *volume.PublishRequest) error {
	if req.Spec == nil || !p.CanSupport(req.Spec) {
		return errors.New("gitrepo: not a gitRepo volume")
	}
	src := req.Spec.Inline.GitRepo
	if err := validDirectory(src.Directory); err != nil {
		return err
	}
	target := req.TargetPath
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 {
		return nil
	}
	tmp := target + ".gitrepo-tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("gitrepo: clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o777); err != nil {
		return fmt.Errorf("gitrepo: %w", err)
	}
	defer os.RemoveAll(tmp)
	args := []string{"clone", "--", src.Repository}
	if src.Directory != "" {
		args = append(args, src.Directory)
	}
	if err := p.git(ctx, tmp, args...); err != nil {
		return err
	}
	if src.Revision != "" {
		repoDir, err := checkoutDir(tmp, src.Directory)
		if err != nil {
			return err
		}
		if err := p.git(ctx, repoDir, "checkout", src.Revision); err != nil {
			return err
		}
		if err := p.git(ctx, repoDir, "reset", "--hard"); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o777); err != nil {
		return fmt.Errorf("gitrepo: %w", err)
	}
	// The target may exist empty (made by the kubelet); rename needs it gone.
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("gitrepo: replace %s: %w", target, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("gitrepo: move clone into place: %w", err)
	}
	return nil
}

// checkoutDir is where the clone landed: the directory asked for, or the
// one git named after the repository.
func checkoutDir(base, directory string) (string, error) {
	if directory != "" {
		return filepath.Join(base, directory), nil
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return "", fmt.Errorf("gitrepo: %w", err)
	}
	if len(entries) != 1 || !entries[0].IsDir() {
		return "", fmt.Errorf("gitrepo: expected one directory after clone, found %d entries", len(entries))
	}
	return filepath.Join(base, entries[0].Name()), nil
}

// validDirectory rejects directories that would leave the volume, as
// upstream's validation does.
func validDirectory(d string) error {
	if d == "" || d == "." {
		return nil
	}
	if path.IsAbs(d) || strings.HasPrefix(d, "-") {
		return fmt.Errorf("gitrepo: directory %q must be relative and not start with '-'", d)
	}
	for _, part := range strings.Split(d, "/") {
		if part == ".." {
			return fmt.Errorf("gitrepo: directory %q must not contain '..'", d)
		}
	}
	return nil
}

func (p *Plugin) git(ctx context.Context, dir string, args ...string) error {
	bin := p.Git
	if bin == "" {
		bin = "git"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// Never wait on a credentials prompt.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("gitrepo: git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NodeUnpublish removes the clone, leaving targetPath empty.
func (*Plugin) NodeUnpublish(_ context.Context, _ string, targetPath string) error {
	entries, err := os.ReadDir(targetPath)
	if os.IsNotExist(err) {
		return os.RemoveAll(targetPath + ".gitrepo-tmp")
	}
	if err != nil {
		return fmt.Errorf("gitrepo: unpublish %s: %w", targetPath, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(targetPath, e.Name())); err != nil {
			return fmt.Errorf("gitrepo: unpublish %s: %w", targetPath, err)
		}
	}
	return os.RemoveAll(targetPath + ".gitrepo-tmp")
}
