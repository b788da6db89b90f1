// Package storagetest starts an embedded etcd for storage tests.
package storagetest

import (
	"context"
	"testing"

	"github.com/skiff/skiff/pkg/api"
	"github.com/skiff/skiff/pkg/storage/embedetcd"
	"github.com/skiff/skiff/pkg/storage/etcd3"
)

// NewStore starts an etcd in a temp dir and returns an etcd3 Store on it;
// both go away when the test ends.
func NewStore(t testing.TB) (*etcd3.Store, *embedetcd.Server) {
	t.Helper()
	e, err := embedetcd.Start(context.Background(), embedetcd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return etcd3.New(e.Client(), api.StorageCodec(), e.NewWatcher), e
}
