// Package machine reads what a node reports about the machine it runs on:
// CPUs, memory, disk, identity and OS, from /proc, /sys and statfs.
package machine

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Info is a snapshot of the machine's resources and identity.
type Info struct {
	CPUs int
	// MemoryBytes is MemTotal; MemAvailableBytes is MemAvailable.
	MemoryBytes, MemAvailableBytes int64
	// DiskBytes and DiskAvailableBytes describe the filesystem of the data dir.
	DiskBytes, DiskAvailableBytes int64
	// PIDMax is the kernel's pid limit, PIDsInUse the processes running.
	PIDMax, PIDsInUse             int64
	MachineID, SystemUUID, BootID string
	KernelVersion, OSImage        string
	OS, Arch                      string
}

// Read gathers Info; dataDir names the filesystem whose space is reported.
func Read(dataDir string) (Info, error) {
	info := Info{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	mem, err := meminfo("/proc/meminfo")
	if err != nil {
		return info, err
	}
	info.MemoryBytes, info.MemAvailableBytes = mem["MemTotal"], mem["MemAvailable"]
	var st unix.Statfs_t
	if err := unix.Statfs(dataDir, &st); err != nil {
		return info, fmt.Errorf("statfs %s: %w", dataDir, err)
	}
	info.DiskBytes = int64(st.Blocks) * st.Bsize
	info.DiskAvailableBytes = int64(st.Bavail) * st.Bsize
	info.PIDMax = readInt("/proc/sys/kernel/pid_max")
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				info.PIDsInUse++
			}
		}
	}
	info.MachineID = readTrim("/etc/machine-id")
	info.SystemUUID = strings.ToLower(readTrim("/sys/class/dmi/id/product_uuid"))
	if info.SystemUUID == "" {
		info.SystemUUID = info.MachineID
	}
	info.BootID = readTrim("/proc/sys/kernel/random/boot_id")
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		info.KernelVersion = unix.ByteSliceToString(uts.Release[:])
	}
	info.OSImage = osImage("/etc/os-release")
	return info, nil
}

// meminfo parses /proc/meminfo into bytes per field.
func meminfo(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 2 && fields[2] == "kB" {
			v *= 1024
		}
		out[strings.TrimSuffix(fields[0], ":")] = v
	}
	return out, sc.Err()
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) int64 {
	v, _ := strconv.ParseInt(readTrim(path), 10, 64)
	return v
}

func osImage(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
