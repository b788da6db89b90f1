package prober

import (
	"strings"
)

// Kind is which of a container's probes a worker runs.
type Kind int

// The probe kinds, in the order they gate each other.
const (
	Startup Kind = iota
	Liveness
	Readiness
)

// String is the kind as upstream's events name it ("Liveness").
func (k Kind) String() string {
	switch k {
	case Startup:
		return "Startup"
	case Liveness:
		return "Liveness"
	case Readiness:
		return "Readiness"
	}
	return "Unknown"
}

// Result is a probe's verdict about one container.
type Result int

// The verdicts. Unknown is a startup probe's state before its first
// verdict.
const (
	Unknown Result = iota
	Success
	Failure
)

// String is the result as upstream's events name it ("unknown").
func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	}
	return "unknown"
}

// rawID is a container ID without its runtime prefix ("skiff://abc" ->
// "abc"), as the CRI knows it.
func rawID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}
