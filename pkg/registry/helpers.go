package registry

import (
	"context"
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Age renders the time since ts as kubectl's AGE column does ("5m", "3d").
func Age(ts metav1.Time, now time.Time) string {
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(ts.Time))
}

// NameColumn is the NAME column every table starts with.
var NameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]}

// AgeColumn is the AGE column.
var AgeColumn = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]}

// StatusOnly is the StatusStrategy of resources whose status subresource
// changes only .status: everything else is kept from the stored object.
type StatusOnly struct {
	// Validate, when set, checks the new status.
	Validate func(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// Metadata lets status updates change metadata too (labels,
	// annotations, finalizers), as upstream's job and cronjob status
	// strategies do; by default they may not.
	Metadata bool
}

// PrepareForUpdate implements StatusStrategy.
func (s StatusOnly) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if s.Metadata {
		KeepSpec(obj, old)
		return
	}
	KeepAllButStatus(obj, old)
}

// ValidateUpdate implements StatusStrategy.
func (s StatusOnly) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	if s.Validate == nil {
		return nil
	}
	return s.Validate(ctx, obj, old)
}

// KeepAllButStatus copies every top-level field except Status from old into
// obj, and resets the metadata a status update may not change.
func KeepAllButStatus(obj, old runtime.Object) {
	KeepSpec(obj, old)
	newMeta, err1 := meta.Accessor(obj)
	oldMeta, err2 := meta.Accessor(old)
	if err1 == nil && err2 == nil {
		metav1.ResetObjectMetaForStatus(newMeta, oldMeta)
	}
}

// KeepSpec copies every top-level field except TypeMeta, ObjectMeta and
// Status from old into obj.
func KeepSpec(obj, old runtime.Object) {
	a, b := reflect.ValueOf(obj).Elem(), reflect.ValueOf(old).Elem()
	for i := 0; i < a.NumField(); i++ {
		switch a.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		a.Field(i).Set(b.Field(i))
	}
}

// KeepStatus copies Status from old into obj, for main-resource updates of
// resources with a status subresource.
func KeepStatus(obj, old runtime.Object) {
	a, b := reflect.ValueOf(obj).Elem(), reflect.ValueOf(old).Elem()
	if f := a.FieldByName("Status"); f.IsValid() {
		f.Set(b.FieldByName("Status"))
	}
}

// ClearStatus zeroes Status, for creates of resources with a status
// subresource.
func ClearStatus(obj runtime.Object) {
	a := reflect.ValueOf(obj).Elem()
	if f := a.FieldByName("Status"); f.IsValid() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// SpecStatusStrategy is a base Strategy for resources with a status
// subresource: creates start with an empty status and main-resource
// updates keep the stored one.
type SpecStatusStrategy struct{ DefaultStrategy }

// PrepareForCreate implements Strategy.
func (SpecStatusStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) { ClearStatus(obj) }

// PrepareForUpdate implements Strategy.
func (SpecStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	KeepStatus(obj, old)
}

// Immutable returns a Forbidden error at path when a field changed.
func Immutable(changed bool, path *field.Path) field.ErrorList {
	if changed {
		return field.ErrorList{field.Invalid(path, "", "field is immutable")}
	}
	return nil
}

// ValidateIntOrPercent checks a non-negative integer or a percentage.
func ValidateIntOrPercent(v *intstr.IntOrString, path *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			return field.ErrorList{field.Invalid(path, v.IntVal, "must be greater than or equal to 0")}
		}
		return nil
	}
	if msgs := validation.IsValidPercent(v.StrVal); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(path, v.StrVal, msgs[0])}
	}
	if n, _ := intstr.GetScaledValueFromIntOrPercent(v, 100, true); n > 100 {
		return field.ErrorList{field.Invalid(path, v.StrVal, "must not be greater than 100%")}
	}
	return nil
}
