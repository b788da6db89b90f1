// Package version reports skiff's version and the Kubernetes version it
// serves.
package version

import (
	"fmt"
	"runtime"

	"k8s.io/apimachinery/pkg/version"
)

// Set by the linker (-X) at build time.
var (
	// GitVersion is skiff's version, in Kubernetes' form so clients that
	// parse it (kubectl version skew warnings) are content.
	GitVersion = "v1.33.0+skiff"
	GitCommit  = "unknown"
	BuildDate  = "1970-01-01T00:00:00Z"
)

// Info is served at /version.
func Info() version.Info {
	return version.Info{
		Major:        "1",
		Minor:        "33",
		GitVersion:   GitVersion,
		GitCommit:    GitCommit,
		GitTreeState: "clean",
		BuildDate:    BuildDate,
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH),
	}
}
