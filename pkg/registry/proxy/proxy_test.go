package proxy

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestUnreachableBackendIsOne503 checks that a backend refusing the
// connection gives a 503 Status saying so once, as upstream's
// "error trying to reach service: dial tcp ...: connection refused".
func TestUnreachableBackendIsOne503(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	rec := httptest.NewRecorder()
	Handler(&url.URL{Scheme: "http", Host: addr}, "/read", NewTransport()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code %d, body %s", rec.Code, rec.Body)
	}
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Kind != "Status" || st.Code != 503 || st.Reason != metav1.StatusReasonServiceUnavailable ||
		strings.Count(st.Message, "error trying to reach service") != 1 || !strings.Contains(st.Message, "connection refused") {
		t.Fatalf("status = %+v", st)
	}
}
