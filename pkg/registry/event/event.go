// Package event is the registry strategy for events, served as core/v1
// events and as events.k8s.io/v1 events over the same stored objects, as
// upstream does: both APIs read and write /registry/events, where events
// are kept as core/v1 Events, and the events.k8s.io/v1 resource's storage
// is a decorator (NewConvertingStore) that converts field by field on the
// way in and out, lists and watches included.
package event

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// StoragePrefix is where both event APIs keep events.
const StoragePrefix = "/registry/events"

// NewResource describes core/v1 events.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("events"),
		Kind:                 "Event",
		SingularName:         "event",
		ShortNames:           []string{"ev"},
		Namespaced:           true,
		StoragePrefix:        StoragePrefix,
		New:                  func() runtime.Object { return &corev1.Event{} },
		NewList:              func() runtime.Object { return &corev1.EventList{} },
		Strategy:             coreStrategy{},
		Fields:               func(obj runtime.Object) fields.Set { return CoreFields(obj.(*corev1.Event)) },
		Table:                &registry.TableColumns{Columns: columns, Row: func(obj runtime.Object, now time.Time) []interface{} { return Row(obj.(*corev1.Event), now) }},
	}
}

// NewEventsV1Resource describes events.k8s.io/v1 events; its store must be
// wrapped with NewConvertingStore over the core events' storage.
func NewEventsV1Resource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: eventsv1.SchemeGroupVersion.WithResource("events"),
		Kind:                 "Event",
		SingularName:         "event",
		ShortNames:           []string{"ev"},
		Namespaced:           true,
		StoragePrefix:        StoragePrefix,
		New:                  func() runtime.Object { return &eventsv1.Event{} },
		NewList:              func() runtime.Object { return &eventsv1.EventList{} },
		Strategy:             v1Strategy{},
		Fields:               func(obj runtime.Object) fields.Set { return V1Fields(obj.(*eventsv1.Event)) },
		Table: &registry.TableColumns{Columns: columns, Row: func(obj runtime.Object, now time.Time) []interface{} {
			return Row(ToCore(obj.(*eventsv1.Event)), now)
		}},
	}
}

// CoreFields are the selectable fields of a core/v1 event (kubectl
// describe selects a object's events by involvedObject.*).
func CoreFields(e *corev1.Event) fields.Set {
	source := e.Source.Component
	if source == "" {
		source = e.ReportingController
	}
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         source,
		"type":                           e.Type,
	}
}

// v1FieldNames maps events.k8s.io/v1 field selector names to the core
// fields they select, as upstream's field label conversion does.
var v1FieldNames = map[string]string{
	"reason":                    "reason",
	"regarding.kind":            "involvedObject.kind",
	"regarding.namespace":       "involvedObject.namespace",
	"regarding.name":            "involvedObject.name",
	"regarding.uid":             "involvedObject.uid",
	"regarding.apiVersion":      "involvedObject.apiVersion",
	"regarding.resourceVersion": "involvedObject.resourceVersion",
	"regarding.fieldPath":       "involvedObject.fieldPath",
	"reportingController":       "reportingComponent",
	"source":                    "source",
	"type":                      "type",
}

// V1Fields are the selectable fields of an events.k8s.io/v1 event.
func V1Fields(e *eventsv1.Event) fields.Set {
	core := CoreFields(ToCore(e))
	out := make(fields.Set, len(v1FieldNames))
	for v1, c := range v1FieldNames {
		out[v1] = core[c]
	}
	return out
}

var columns = []metav1.TableColumnDefinition{
	{Name: "Last Seen", Type: "string", Description: corev1.Event{}.SwaggerDoc()["lastTimestamp"]},
	{Name: "Type", Type: "string", Description: corev1.Event{}.SwaggerDoc()["type"]},
	{Name: "Reason", Type: "string", Description: corev1.Event{}.SwaggerDoc()["reason"]},
	{Name: "Object", Type: "string", Description: corev1.Event{}.SwaggerDoc()["involvedObject"]},
	{Name: "Subobject", Type: "string", Priority: 1, Description: corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]},
	{Name: "Source", Type: "string", Priority: 1, Description: corev1.Event{}.SwaggerDoc()["source"]},
	{Name: "Message", Type: "string", Description: corev1.Event{}.SwaggerDoc()["message"]},
	{Name: "First Seen", Type: "string", Priority: 1, Description: corev1.Event{}.SwaggerDoc()["firstTimestamp"]},
	{Name: "Count", Type: "string", Priority: 1, Description: corev1.Event{}.SwaggerDoc()["count"]},
	{Name: "Name", Type: "string", Priority: 1, Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]},
}

// Row renders an event's cells as upstream's printer does: LAST SEEN
// falls back to FIRST SEEN, which falls back to eventTime; a series gives
// the last observation and the count; single events of the new API count
// as 1.
func Row(e *corev1.Event, now time.Time) []interface{} {
	first := registry.Age(e.FirstTimestamp, now)
	if e.FirstTimestamp.IsZero() {
		first = microAge(e.EventTime, now)
	}
	last := registry.Age(e.LastTimestamp, now)
	if e.LastTimestamp.IsZero() {
		last = first
	}
	count := e.Count
	if e.Series != nil {
		last = microAge(e.Series.LastObservedTime, now)
		count = e.Series.Count
	} else if count == 0 {
		count = 1
	}
	target := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		target = fmt.Sprintf("%s/%s", target, e.InvolvedObject.Name)
	}
	return []interface{}{last, e.Type, e.Reason, target, e.InvolvedObject.FieldPath, Source(e), strings.TrimSpace(e.Message), first, int64(count), e.Name}
}

func microAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return registry.Age(metav1.NewTime(t.Time), now)
}

// Source renders the SOURCE column: "component, host", falling back to
// the reporting controller and instance for events of the new API.
func Source(e *corev1.Event) string {
	component, host := e.Source.Component, e.Source.Host
	if component == "" {
		component = e.ReportingController
	}
	if host == "" {
		host = e.ReportingInstance
	}
	if host == "" {
		return component
	}
	return component + ", " + host
}

// coreStrategy is the policy of core/v1 events: only upstream's legacy
// checks, names need only be path segments, PUT may create.
type coreStrategy struct{ registry.DefaultStrategy }

// NameValidation implements registry.Strategy.
func (coreStrategy) NameValidation() registry.NameRule { return path.ValidatePathSegmentName }

// AllowCreateOnUpdate implements registry.Strategy.
func (coreStrategy) AllowCreateOnUpdate() bool { return true }

// Validate implements registry.Strategy.
func (coreStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateLegacy(obj.(*corev1.Event))
}

// ValidateUpdate implements registry.Strategy.
func (coreStrategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validateLegacy(obj.(*corev1.Event))
}

// v1Strategy is the policy of events.k8s.io/v1 events: the legacy checks
// and the strict ones of the new API; PUT may create.
type v1Strategy struct{ registry.DefaultStrategy }

// AllowCreateOnUpdate implements registry.Strategy.
func (v1Strategy) AllowCreateOnUpdate() bool { return true }

// Validate implements registry.Strategy.
func (v1Strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateV1Create(ToCore(obj.(*eventsv1.Event)))
}

// ValidateUpdate implements registry.Strategy.
func (v1Strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validateV1Update(ToCore(obj.(*eventsv1.Event)), ToCore(old.(*eventsv1.Event)))
}
