package volumemanager

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// publication records one volume published into one pod.
type publication struct {
	PodUID      types.UID `json:"podUID"`
	Volume      string    `json:"volume"`
	Plugin      string    `json:"plugin"`
	VolumeID    string    `json:"volumeID"`
	StagingPath string    `json:"stagingPath"`
	TargetPath  string    `json:"targetPath"`
	// Published is set once NodePublish (and fsGroup) succeeded.
	Published bool `json:"published"`
	// BootID is the node's boot when it was published: mounts do not
	// survive a reboot, so a record from another boot is redone.
	BootID string `json:"bootID"`
}

// staging records one volume staged on the node.
type staging struct {
	Plugin      string `json:"plugin"`
	VolumeID    string `json:"volumeID"`
	StagingPath string `json:"stagingPath"`
	Staged      bool   `json:"staged"`
	BootID      string `json:"bootID"`
}

func (m *Manager) publishedDir() string {
	return filepath.Join(m.cfg.RootDir, "volume-manager", "published")
}
func (m *Manager) stagedDir() string { return filepath.Join(m.cfg.RootDir, "volume-manager", "staged") }

func (m *Manager) publicationFile(uid types.UID, volume string) string {
	return filepath.Join(m.publishedDir(), string(uid)+"_"+volume+".json")
}

// stagingFile names a volume's record by a hash, since plugin names and
// volume IDs may hold any character.
func (m *Manager) stagingFile(plugin, volumeID string) string {
	return filepath.Join(m.stagedDir(), volumeKey(plugin, volumeID)+".json")
}

func volumeKey(plugin, volumeID string) string {
	h := sha256.Sum256([]byte(plugin + "\x00" + volumeID))
	return hex.EncodeToString(h[:12])
}

// stagingPath is the plugin's private directory for a volume, laid out
// as upstream's kubelet lays out plugin directories.
func (m *Manager) stagingPath(plugin, volumeID string) string {
	return filepath.Join(m.cfg.RootDir, "plugins", strings.ReplaceAll(plugin, "/", "~"), "staging", volumeKey(plugin, volumeID))
}

// writeRecord writes v as JSON to path atomically (temp file, fsync,
// rename), so a kill -9 leaves the old record or the new one.
func writeRecord(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write record %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write record %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write record %s: %w", path, err)
	}
	return nil
}

// readRecord reads path into v; ok is false when there is no record.
func readRecord(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read record %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("read record %s: %w", path, err)
	}
	return true, nil
}

func removeRecord(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove record %s: %w", path, err)
	}
	return nil
}

// publications lists every publication record.
func (m *Manager) publications() ([]publication, error) {
	return listRecords[publication](m.publishedDir())
}

func (m *Manager) stagings() ([]staging, error) {
	return listRecords[staging](m.stagedDir())
}

func listRecords[T any](dir string) ([]T, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var out []T
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var r T
		ok, err := readRecord(filepath.Join(dir, e.Name()), &r)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}
