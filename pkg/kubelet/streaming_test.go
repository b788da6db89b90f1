package kubelet

import (
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestParseStreamOptions(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  streamOptions
		err   bool
	}{
		{"command=ls&output=1&error=1", streamOptions{stdout: true, stderr: true}, false},
		{"input=true&output=true&tty=true&error=true", streamOptions{stdin: true, stdout: true, tty: true}, false},
		{"input=1", streamOptions{stdin: true}, false},
		{"output=0&error=false", streamOptions{}, true},
		{"tty=1&error=1", streamOptions{}, true},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := parseStreamOptions(q)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("%s: got %+v %v, want %+v (error %v)", tc.query, got, err, tc.want, tc.err)
		}
		if err != nil && !apierrors.IsBadRequest(err) {
			t.Errorf("%s: error %v is not a 400", tc.query, err)
		}
	}
}

func TestRuntimeError(t *testing.T) {
	for code, want := range map[codes.Code]int32{
		codes.NotFound:           400,
		codes.FailedPrecondition: 400,
		codes.Unimplemented:      400,
		codes.Unavailable:        503,
		codes.Internal:           500,
	} {
		err := runtimeError(grpcstatus.Error(code, "boom"))
		if st, ok := err.(apierrors.APIStatus); !ok || st.Status().Code != want {
			t.Errorf("%v: got %v, want code %d", code, err, want)
		}
	}
}
