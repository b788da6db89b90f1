package framework

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUSeconds is the CPU time (user and system) a process and its reaped
// children used so far; 0 if it cannot be read.
func CPUSeconds(pid int) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends with the last ')'.
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}
