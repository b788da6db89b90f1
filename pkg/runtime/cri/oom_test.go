package cri

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseOOMKills(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       uint64
		wantErr    bool
	}{
		{name: "cgroup v1 memory.oom_control", file: "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", want: 3},
		{name: "cgroup v2 memory.events", file: "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n", want: 1},
		// oom_group_kill must not be taken for oom_kill.
		{name: "group kills only", file: "oom 1\noom_group_kill 4\noom_kill 0\n", want: 0},
		{name: "kernel without the count", file: "oom_kill_disable 0\nunder_oom 0\n", want: 0},
		{name: "empty", file: "", want: 0},
		{name: "garbled count", file: "oom_kill many\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOOMKills([]byte(tc.file))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseOOMKills(%q) error = %v, want error %v", tc.file, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("parseOOMKills(%q) = %d, want %d", tc.file, got, tc.want)
			}
		})
	}
}

func TestOOMKillsReadsEitherCgroupVersion(t *testing.T) {
	v1, v2, missing := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "not-created-yet")
	if err := os.WriteFile(filepath.Join(v1, "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v2, "memory.events"), []byte("low 0\nhigh 0\nmax 0\noom 1\noom_kill 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]uint64{v1: 2, v2: 5, missing: 0} {
		got, err := oomKills(dir)
		if err != nil || got != want {
			t.Errorf("oomKills(%s) = %d, %v; want %d", dir, got, err, want)
		}
	}
}

func TestTerminationReason(t *testing.T) {
	for _, tc := range []struct {
		name          string
		code          int32
		atStart, exit uint64
		want          string
	}{
		{name: "clean exit", code: 0, want: "Completed"},
		{name: "failure", code: 1, want: "Error"},
		{name: "SIGKILL without an OOM kill", code: 137, atStart: 1, exit: 1, want: "Error"},
		{name: "main process OOM-killed", code: 137, exit: 1, want: "OOMKilled"},
		// A child was OOM-killed; the shell then exited by itself.
		{name: "child OOM-killed, main exits 3", code: 3, exit: 1, want: "OOMKilled"},
		{name: "child OOM-killed, main exits 0", code: 0, exit: 2, want: "OOMKilled"},
		{name: "kills before the start do not count", code: 0, atStart: 4, exit: 4, want: "Completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := terminationReason(tc.code, tc.atStart, tc.exit); got != tc.want {
				t.Fatalf("terminationReason(%d, %d, %d) = %q, want %q", tc.code, tc.atStart, tc.exit, got, tc.want)
			}
		})
	}
}
