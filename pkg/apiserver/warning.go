package apiserver

import (
	"log/slog"
	"net/http"
	"sync"
	"unicode/utf8"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apiserver/pkg/warning"
)

// Upstream's caps on Warning headers (k8s.io/apiserver's warning filter):
// once the warnings of one response exceed warningTotalRunes, every warning
// is cut to warningItemRunes and those past the total are dropped, so no
// request body can make a reply's headers too large for a client to read.
const (
	warningTotalRunes = 4 * 1024
	warningItemRunes  = 256
)

// warningRecorder turns the warnings a request handler raises into Warning
// headers: deduplicated and capped as upstream caps them. One recorder
// serves one request; its lock covers handlers that warn concurrently.
type warningRecorder struct {
	header http.Header
	log    *slog.Logger

	mu sync.Mutex
	// seen holds the texts already recorded, for deduplication.
	seen map[string]bool
	// recorded are the warnings in order, replayed when truncation starts.
	recorded []recordedWarning
	// written counts the runes of warning text in the headers.
	written int
	// truncating is set once the total was exceeded.
	truncating bool
}

type recordedWarning struct{ agent, text string }

var _ warning.Recorder = (*warningRecorder)(nil)

// withWarnings attaches a recorder writing to w's headers to r's context,
// where warning.AddWarning finds it.
func withWarnings(w http.ResponseWriter, r *http.Request, log *slog.Logger) *http.Request {
	rec := &warningRecorder{header: w.Header(), log: log}
	return r.WithContext(warning.WithWarningRecorder(r.Context(), rec))
}

// AddWarning records a warning (agent may be empty) as a Warning header.
func (rec *warningRecorder) AddWarning(agent, text string) {
	if text == "" {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.truncating && rec.written >= warningTotalRunes {
		return
	}
	if rec.seen[text] {
		return
	}
	if rec.seen == nil {
		rec.seen = map[string]bool{}
	}
	rec.seen[text] = true
	rec.recorded = append(rec.recorded, recordedWarning{agent, text})

	n := utf8.RuneCountInString(text)
	if rec.truncating {
		text, n = truncateWarning(text, n)
	}
	if rec.truncating || rec.written+n <= warningTotalRunes {
		rec.add(agent, text, n)
		return
	}
	// Over the total: from now on every warning is truncated, including
	// those already written.
	rec.truncating = true
	rec.written = 0
	rec.header.Del("Warning")
	if rec.log != nil {
		rec.log.Debug("warnings exceed the header limit, truncating", "limit", warningTotalRunes)
	}
	for _, rw := range rec.recorded {
		t, n := truncateWarning(rw.text, utf8.RuneCountInString(rw.text))
		rec.add(rw.agent, t, n)
	}
}

func (rec *warningRecorder) add(agent, text string, runes int) {
	h, err := utilnet.NewWarningHeader(299, agent, text)
	if err != nil {
		return // text with control characters: upstream drops it too
	}
	rec.written += runes
	rec.header.Add("Warning", h)
}

// truncateWarning cuts text, of n runes, to warningItemRunes on a rune boundary.
func truncateWarning(text string, n int) (string, int) {
	if n <= warningItemRunes {
		return text, n
	}
	return string([]rune(text)[:warningItemRunes]), warningItemRunes
}
