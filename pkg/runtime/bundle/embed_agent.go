//go:build skiffagent

package bundle

import _ "embed"

// agentGz is bin/skiff-agent, gzipped by `make build`.
//
//go:embed skiff-agent.gz
var agentGz []byte

func init() { binaries[Agent] = agentGz }
