package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/pki"
)

// sandboxRecord is a pod sandbox as the runtime keeps it on disk.
type sandboxRecord struct {
	ID        string    `json:"id"`
	Config    []byte    `json:"config"` // runtimeapi.PodSandboxConfig, protobuf
	State     string    `json:"state"`  // "ready" or "notready"
	CreatedAt time.Time `json:"createdAt"`
	// Cgroup is the pod's cgroup path below each controller's root.
	Cgroup string `json:"cgroup"`
	// IP is the pod's address on the pod network ("" without one).
	IP string `json:"ip,omitempty"`

	config *runtimeapi.PodSandboxConfig
}

// containerRecord is a container as the runtime keeps it on disk.
type containerRecord struct {
	ID         string    `json:"id"`
	SandboxID  string    `json:"sandboxID"`
	Config     []byte    `json:"config"` // runtimeapi.ContainerConfig, protobuf
	ImageID    string    `json:"imageID"`
	ImageRef   string    `json:"imageRef"`
	State      string    `json:"state"` // created, running, exited
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitempty"`
	ExitCode   int32     `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	Pid        int       `json:"pid,omitempty"`
	// OOMKillsAtStart is the memory cgroup's OOM kill count when the
	// container started: more at exit means it was OOM-killed.
	OOMKillsAtStart uint64 `json:"oomKillsAtStart,omitempty"`
	LogPath         string `json:"logPath,omitempty"`

	config *runtimeapi.ContainerConfig
}

// The container states a record moves through.
const (
	stateCreated = "created"
	stateRunning = "running"
	stateExited  = "exited"
)

func saveRecord(path string, v interface{}) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return pki.WriteFileAtomic(path, b, 0o600)
}

func (s *sandboxRecord) encode() error {
	b, err := proto.Marshal(s.config)
	s.Config = b
	return err
}

func (s *sandboxRecord) decode() error {
	s.config = &runtimeapi.PodSandboxConfig{}
	return proto.Unmarshal(s.Config, s.config)
}

func (c *containerRecord) encode() error {
	b, err := proto.Marshal(c.config)
	c.Config = b
	return err
}

func (c *containerRecord) decode() error {
	c.config = &runtimeapi.ContainerConfig{}
	return proto.Unmarshal(c.Config, c.config)
}

// loadRecords reads every record file named name under dir/<id>/.
func loadRecords[T any](dir, name string) ([]*T, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*T
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out = append(out, v)
	}
	return out, nil
}
