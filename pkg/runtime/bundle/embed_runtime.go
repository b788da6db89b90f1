//go:build skiffruntime

package bundle

import _ "embed"

// runtimeGz is bin/skiff-runtime, gzipped by `make build`.
//
//go:embed skiff-runtime.gz
var runtimeGz []byte

func init() { binaries[Runtime] = runtimeGz }
