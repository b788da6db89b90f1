// Package event is the registry strategy for events, served as core/v1
// events and as events.k8s.io/v1 events over the same stored objects, as
// upstream does: both APIs read and write /registry/events, stored as
// core/v1 Events, and events.k8s.io/v1 converts field by field.
package event

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
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
		Fields: func(obj runtime.Object) fields.Set {
			e := obj.(*corev1.Event)
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
		},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
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
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				e := obj.(*corev1.Event)
				first, last := e.FirstTimestamp, e.LastTimestamp
				if last.IsZero() && !e.EventTime.IsZero() {
					last = metav1.NewTime(e.EventTime.Time)
				}
				if e.Series != nil && !e.Series.LastObservedTime.IsZero() {
					last = metav1.NewTime(e.Series.LastObservedTime.Time)
				}
				if first.IsZero() {
					first = last
				}
				lastSeen := "<unknown>"
				if !last.IsZero() {
					lastSeen = registry.Age(last, now)
				}
				firstSeen := "<unknown>"
				if !first.IsZero() {
					firstSeen = registry.Age(first, now)
				}
				object := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
				source := e.Source.Component
				if source == "" {
					source = e.ReportingController
				}
				if e.Source.Host != "" {
					source += ", " + e.Source.Host
				}
				count := e.Count
				if e.Series != nil {
					count = e.Series.Count
				} else if count == 0 {
					count = 1
				}
				return []interface{}{lastSeen, e.Type, e.Reason, object, e.InvolvedObject.FieldPath, source, strings.TrimSpace(e.Message), firstSeen, fmt.Sprint(count), e.Name}
			},
		},
	}
}

type coreStrategy struct{ registry.DefaultStrategy }

func (coreStrategy) AllowCreateOnUpdate() bool { return true }

func (coreStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateCore(obj.(*corev1.Event))
}

func (coreStrategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validateCore(obj.(*corev1.Event))
}

// validateCore checks what upstream's ValidateEvent checks for core/v1.
func validateCore(e *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	ns := e.InvolvedObject.Namespace
	if ns != "" && ns != e.Namespace && e.Namespace != metav1.NamespaceDefault {
		errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ns, "does not match event.namespace"))
	}
	if e.Type != "" && e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
		errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, []string{corev1.EventTypeNormal, corev1.EventTypeWarning}))
	}
	if len(e.ReportingController) > 128 {
		errs = append(errs, field.TooLong(field.NewPath("reportingComponent"), "", 128))
	}
	if len(e.Action) > 128 {
		errs = append(errs, field.TooLong(field.NewPath("action"), "", 128))
	}
	if len(e.Reason) > 128 {
		errs = append(errs, field.TooLong(field.NewPath("reason"), "", 128))
	}
	if len(e.Message) > 4096 {
		errs = append(errs, field.TooLong(field.NewPath("message"), "", 4096))
	}
	return errs
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
		Fields: func(obj runtime.Object) fields.Set {
			e := obj.(*eventsv1.Event)
			return fields.Set{
				"regarding.kind":      e.Regarding.Kind,
				"regarding.namespace": e.Regarding.Namespace,
				"regarding.name":      e.Regarding.Name,
				"regarding.uid":       string(e.Regarding.UID),
				"reason":              e.Reason,
				"reportingController": e.ReportingController,
				"type":                e.Type,
			}
		},
	}
}

type v1Strategy struct{ registry.DefaultStrategy }

func (v1Strategy) AllowCreateOnUpdate() bool { return true }

func (v1Strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateV1(obj.(*eventsv1.Event))
}

func (v1Strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validateV1(obj.(*eventsv1.Event))
}

// validateV1 checks the fields events.k8s.io/v1 requires.
func validateV1(e *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	if e.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
		errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, []string{corev1.EventTypeNormal, corev1.EventTypeWarning}))
	}
	if e.ReportingController == "" {
		errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
	}
	if e.ReportingInstance == "" {
		errs = append(errs, field.Required(field.NewPath("reportingInstance"), ""))
	}
	if e.Action == "" {
		errs = append(errs, field.Required(field.NewPath("action"), ""))
	}
	if e.Reason == "" {
		errs = append(errs, field.Required(field.NewPath("reason"), ""))
	}
	if len(e.Note) > 1024 {
		errs = append(errs, field.TooLong(field.NewPath("note"), "", 1024))
	}
	return append(errs, validateCore(ToCore(e))...)
}

// ToCore converts an events.k8s.io/v1 Event to core/v1.
func ToCore(e *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		ObjectMeta:          e.ObjectMeta,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Source:              e.DeprecatedSource,
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Count:               e.DeprecatedCount,
		Type:                e.Type,
		EventTime:           e.EventTime,
		Related:             e.Related,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
		Action:              e.Action,
	}
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}

// FromCore converts a core/v1 Event to events.k8s.io/v1.
func FromCore(e *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		ObjectMeta:               e.ObjectMeta,
		EventTime:                e.EventTime,
		ReportingController:      e.ReportingController,
		ReportingInstance:        e.ReportingInstance,
		Action:                   e.Action,
		Reason:                   e.Reason,
		Regarding:                e.InvolvedObject,
		Related:                  e.Related,
		Note:                     e.Message,
		Type:                     e.Type,
		DeprecatedSource:         e.Source,
		DeprecatedFirstTimestamp: e.FirstTimestamp,
		DeprecatedLastTimestamp:  e.LastTimestamp,
		DeprecatedCount:          e.Count,
	}
	if e.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}
