package runc

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CgroupRoot is where cgroup v1 controllers are mounted.
const CgroupRoot = "/sys/fs/cgroup"

// RemoveCgroup removes the cgroup at path (and the cgroups below it) from
// every controller hierarchy. The cgroups must hold no processes.
func RemoveCgroup(path string) error {
	controllers, err := os.ReadDir(CgroupRoot)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range controllers {
		root := filepath.Join(CgroupRoot, c.Name(), path)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// Deepest first.
		sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// RemoveEmptyCgroup removes the cgroup at path from every hierarchy where
// it has no child cgroups left; a busy one stays.
func RemoveEmptyCgroup(path string) error {
	controllers, err := os.ReadDir(CgroupRoot)
	if err != nil {
		return err
	}
	for _, c := range controllers {
		_ = os.Remove(filepath.Join(CgroupRoot, c.Name(), path))
	}
	return nil
}
