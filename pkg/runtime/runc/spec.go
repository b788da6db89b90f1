package runc

import (
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultCapabilities are the capabilities containers get by default, the
// set Docker and containerd grant.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// maskedPaths and readonlyPaths hide host information from containers,
// as containerd does.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// ProcessSpec is what runs in a container.
type ProcessSpec struct {
	Args []string
	Env  []string
	Cwd  string
	UID  uint32
	GID  uint32
	// AdditionalGIDs are supplementary groups.
	AdditionalGIDs []uint32
	// Capabilities replace the default set when not nil.
	Capabilities []string
	Privileged   bool
	// NoNewPrivileges sets the process's no_new_privs bit, so setuid
	// binaries and file capabilities grant nothing (the Pod's
	// allowPrivilegeEscalation: false).
	NoNewPrivileges bool
	Terminal        bool
}

// ContainerSpec describes a container to build an OCI spec for.
type ContainerSpec struct {
	Process  ProcessSpec
	Hostname string
	// Rootfs is the mounted root filesystem; ReadOnlyRootfs mounts it
	// read-only.
	Rootfs         string
	ReadOnlyRootfs bool
	// Mounts are bind mounts and volumes, after the standard ones.
	Mounts []specs.Mount
	// Namespaces to join by path (network, ipc, uts of the pod sandbox);
	// the container gets new ones of the other kinds.
	JoinNamespaces map[specs.LinuxNamespaceType]string
	// HostNamespaces are kept from the host (hostNetwork pods' network).
	HostNamespaces []specs.LinuxNamespaceType
	// Resources are the cgroup limits.
	Resources *specs.LinuxResources
	// CgroupsPath is where the container's cgroup goes ("parent:name" is
	// not used; a path below each controller's root).
	CgroupsPath string
}

// BuildSpec returns the OCI runtime spec of c.
func BuildSpec(c ContainerSpec) *specs.Spec {
	caps := defaultCapabilities
	if c.Process.Capabilities != nil {
		caps = c.Process.Capabilities
	}
	if c.Process.Privileged {
		caps = allCapabilities()
	}
	cwd := c.Process.Cwd
	if cwd == "" {
		cwd = "/"
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: c.Process.Terminal,
			User:     specs.User{UID: c.Process.UID, GID: c.Process.GID, AdditionalGids: c.Process.AdditionalGIDs},
			Args:     c.Process.Args,
			Env:      c.Process.Env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: c.Process.NoNewPrivileges && !c.Process.Privileged,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}},
		},
		Root:     &specs.Root{Path: c.Rootfs, Readonly: c.ReadOnlyRootfs},
		Hostname: c.Hostname,
		Mounts:   standardMounts(c.Process.Privileged),
		Linux: &specs.Linux{
			Resources:   c.Resources,
			CgroupsPath: c.CgroupsPath,
		},
	}
	if !c.Process.Privileged {
		s.Linux.MaskedPaths = maskedPaths
		s.Linux.ReadonlyPaths = readonlyPaths
	}
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace} {
		if !slices.Contains(c.HostNamespaces, t) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: c.JoinNamespaces[t]})
		}
	}
	s.Mounts = append(s.Mounts, c.Mounts...)
	return s
}

func standardMounts(privileged bool) []specs.Mount {
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	if privileged {
		sysOpts = []string{"nosuid", "noexec", "nodev", "rw"}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// BindMount returns a bind mount of src at dst.
func BindMount(src, dst string, readOnly bool) specs.Mount {
	opts := []string{"rbind", "rprivate"}
	if readOnly {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "rw")
	}
	return specs.Mount{Destination: filepath.Clean(dst), Type: "bind", Source: src, Options: opts}
}

// DefaultCapabilities returns the default capability set.
func DefaultCapabilities() []string { return append([]string{}, defaultCapabilities...) }

// AllCapabilities returns every capability, as privileged containers get.
func AllCapabilities() []string { return allCapabilities() }

func allCapabilities() []string {
	return append(append([]string{}, defaultCapabilities...),
		"CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_IPC_LOCK",
		"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN",
		"CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE",
		"CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
		"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")
}
