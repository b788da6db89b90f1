package lease_test

import (
	"context"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/lease"
	"github.com/skiff/skiff/pkg/registry/validationtest"
	"github.com/skiff/skiff/pkg/server/servertest"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		spec coordinationv1.LeaseSpec
		want []string
	}{
		{"valid", coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1"), LeaseDurationSeconds: ptr.To(int32(40))}, nil},
		{"zero duration", coordinationv1.LeaseSpec{LeaseDurationSeconds: ptr.To(int32(0))}, []string{"spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"}},
		{"negative transitions", coordinationv1.LeaseSpec{LeaseTransitions: ptr.To(int32(-1))}, []string{"spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"}},
		{"preferred holder without strategy", coordinationv1.LeaseSpec{PreferredHolder: ptr.To("b")}, []string{"spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"}},
	}
	for _, tc := range cases {
		validationtest.Expect(t, tc.name, lease.Validate(&coordinationv1.Lease{Spec: tc.spec}), tc.want)
	}
}

// TestCreateOnUpdate: leader election and node heartbeats PUT leases that
// may not exist yet.
func TestCreateOnUpdate(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	leases := srv.Client.CoordinationV1().Leases("kube-node-lease")
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1"), LeaseDurationSeconds: ptr.To(int32(40))}}
	created, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("PUT of a missing lease: %v", err)
	}
	created.Spec.RenewTime = ptr.To(metav1.NewMicroTime(created.CreationTimestamp.Time))
	if _, err := leases.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("renew: %v", err)
	}
	l.Name, l.Spec.LeaseDurationSeconds = "bad", ptr.To(int32(0))
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("invalid lease: %v, want 422", err)
	}
}
