package event

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

var (
	now    = time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	micro  = metav1.NewMicroTime(now.Add(-90 * time.Second))
	second = metav1.NewTime(now.Add(-10 * time.Minute))
)

func TestConversionRoundTrip(t *testing.T) {
	ref := corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-1", UID: "u1", APIVersion: "v1", ResourceVersion: "7", FieldPath: "spec.containers{app}"}
	related := corev1.ObjectReference{Kind: "Node", Name: "n1"}
	v1Events := []*eventsv1.Event{
		{ObjectMeta: metav1.ObjectMeta{Name: "full", Namespace: "ns", Labels: map[string]string{"a": "b"}}, EventTime: micro,
			Series: &eventsv1.EventSeries{Count: 3, LastObservedTime: micro}, ReportingController: "skiff.io/scheduler", ReportingInstance: "skiff-1",
			Action: "Binding", Reason: "Scheduled", Regarding: ref, Related: &related, Note: "assigned", Type: corev1.EventTypeNormal,
			DeprecatedSource: corev1.EventSource{Component: "scheduler", Host: "h1"}, DeprecatedFirstTimestamp: second, DeprecatedLastTimestamp: second, DeprecatedCount: 4},
		{ObjectMeta: metav1.ObjectMeta{Name: "minimal"}},
	}
	for _, in := range v1Events {
		if out := FromCore(ToCore(in)); !apiequality.Semantic.DeepEqual(in, out) {
			t.Errorf("events.k8s.io/v1 round trip of %s:\n in  %+v\n out %+v", in.Name, in, out)
		}
	}
	core := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "core", Namespace: "ns"}, InvolvedObject: ref, Reason: "Killing", Message: "stopping",
		Source: corev1.EventSource{Component: "kubelet", Host: "n1"}, FirstTimestamp: second, LastTimestamp: second, Count: 2, Type: corev1.EventTypeWarning,
		EventTime: micro, Series: &corev1.EventSeries{Count: 2, LastObservedTime: micro}, Action: "Kill", Related: &related, ReportingController: "kubelet", ReportingInstance: "n1"}
	if out := ToCore(FromCore(core)); !apiequality.Semantic.DeepEqual(core, out) {
		t.Errorf("core/v1 round trip:\n in  %+v\n out %+v", core, out)
	}
	v1 := FromCore(core)
	if v1.Note != core.Message || v1.Regarding != core.InvolvedObject || v1.DeprecatedSource != core.Source || v1.DeprecatedCount != core.Count ||
		v1.DeprecatedFirstTimestamp != core.FirstTimestamp || v1.DeprecatedLastTimestamp != core.LastTimestamp || v1.ReportingController != core.ReportingController {
		t.Errorf("field mapping: %+v", v1)
	}
	v1.Labels = map[string]string{"changed": "yes"}
	if core.Labels != nil {
		t.Error("conversion shares metadata maps with its input")
	}
}

func TestRow(t *testing.T) {
	cases := []struct {
		name string
		e    corev1.Event
		want []interface{}
	}{
		{"legacy", corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", FieldPath: "spec.containers{app}"},
			Reason: "Pulled", Message: " pulled \n", Type: "Normal", Source: corev1.EventSource{Component: "kubelet", Host: "n1"}, FirstTimestamp: second, LastTimestamp: metav1.NewTime(now.Add(-time.Minute)), Count: 3},
			[]interface{}{"60s", "Normal", "Pulled", "pod/web", "spec.containers{app}", "kubelet, n1", "pulled", "10m", int64(3), "web.1"}},
		{"new API single", corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "n.2"}, InvolvedObject: corev1.ObjectReference{Kind: "Node"}, Reason: "Starting", Type: "Normal",
			EventTime: micro, ReportingController: "skiff.io/kubelet", ReportingInstance: "n1"},
			[]interface{}{"90s", "Normal", "Starting", "node", "", "skiff.io/kubelet, n1", "", "90s", int64(1), "n.2"}},
		{"new API series", corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "s"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p"}, Type: "Warning", Reason: "BackOff",
			EventTime: metav1.NewMicroTime(now.Add(-time.Hour)), Series: &corev1.EventSeries{Count: 5, LastObservedTime: micro}, ReportingController: "kubelet"},
			[]interface{}{"90s", "Warning", "BackOff", "pod/p", "", "kubelet", "", "60m", int64(5), "s"}},
		{"no times", corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "x"}},
			[]interface{}{"<unknown>", "", "", "", "", "", "", "<unknown>", int64(1), "x"}},
	}
	for _, tc := range cases {
		if got := Row(&tc.e, now); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got  %q\n want %q", tc.name, got, tc.want)
		}
		if len(tc.want) != len(columns) {
			t.Fatalf("%d cells for %d columns", len(tc.want), len(columns))
		}
	}
}

func TestFields(t *testing.T) {
	e := &eventsv1.Event{Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p", UID: "u"}, Reason: "R", Type: "Normal", ReportingController: "c"}
	got := V1Fields(e)
	want := map[string]string{"regarding.kind": "Pod", "regarding.namespace": "ns", "regarding.name": "p", "regarding.uid": "u", "regarding.apiVersion": "",
		"regarding.resourceVersion": "", "regarding.fieldPath": "", "reason": "R", "type": "Normal", "reportingController": "c", "source": "c"}
	if !reflect.DeepEqual(map[string]string(got), want) {
		t.Fatalf("got %v", got)
	}
	if src := CoreFields(&corev1.Event{Source: corev1.EventSource{Component: "kubelet"}, ReportingController: "x"})["source"]; src != "kubelet" {
		t.Fatalf("source %q", src)
	}
}

func TestValidation(t *testing.T) {
	newAPI := func() *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}, EventTime: micro, Type: "Normal", Reason: "Scheduled",
			Action: "Binding", ReportingController: "skiff.io/scheduler", ReportingInstance: "s-1", InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p"}}
	}
	cases := []struct {
		name string
		e    func() *corev1.Event
		v1   bool
		want []string
	}{
		{"new API valid", newAPI, true, nil},
		{"legacy namespace mismatch", func() *corev1.Event {
			return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "a"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "b"}}
		}, false, []string{`involvedObject.namespace: Invalid value: "b": does not match event.namespace`}},
		{"legacy node event in default", func() *corev1.Event {
			return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default"}, InvolvedObject: corev1.ObjectReference{Kind: "Node"}}
		}, false, nil},
		{"new API requires its fields", func() *corev1.Event {
			e := newAPI()
			e.Action, e.ReportingInstance, e.Type = "", "", "Fine"
			return e
		}, true, []string{"reportingInstance: Required value", "action: Required value", `type: Invalid value: "": has invalid value: Fine`}},
		{"new API forbids deprecated fields", func() *corev1.Event {
			e := newAPI()
			e.Count, e.Source.Component = 2, "x"
			return e
		}, true, []string{`count: Invalid value: "": needs to be unset`, `source: Invalid value: "": needs to be unset`}},
		{"series", func() *corev1.Event {
			e := newAPI()
			e.Series = &corev1.EventSeries{Count: 1}
			return e
		}, true, []string{`series.count: Invalid value: "": should be at least 2`, "series.lastObservedTime: Required value"}},
	}
	for _, tc := range cases {
		validate := validateLegacy
		if tc.v1 {
			validate = validateV1Create
		}
		validationtest.Expect(t, tc.name, validate(tc.e()), tc.want)
	}
	old := newAPI()
	updated := newAPI()
	updated.Series = &corev1.EventSeries{Count: 2, LastObservedTime: micro}
	if errs := validateV1Update(updated, old); len(errs) != 0 {
		t.Fatalf("series update: %v", errs)
	}
	updated.Message = "changed"
	if errs := validateV1Update(updated, old); len(errs) != 1 || errs[0].Error() != `message: Invalid value: "changed": field is immutable` {
		t.Fatalf("message update: %v", errs)
	}
}
