package pod

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateSelectedTemplate checks a workload's label selector and pod
// template together: the selector must be valid and non-empty and must
// select the template's labels, as upstream requires of ReplicaSets,
// Deployments, DaemonSets, StatefulSets and Jobs.
func ValidateSelectedTemplate(sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	selPath, tplPath := path.Child("selector"), path.Child("template")
	if sel == nil {
		errs = append(errs, field.Required(selPath, ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, selPath)...)
		if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(selPath, sel, "empty selector is invalid for deployment"))
		}
	}
	errs = append(errs, ValidatePodTemplateSpec(t, tplPath)...)
	if sel != nil && len(errs) == 0 {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err == nil && !s.Empty() && !s.Matches(labels.Set(t.Labels)) {
			errs = append(errs, field.Invalid(tplPath.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
		}
	}
	return errs
}

// ValidateReplicas checks a replica count.
func ValidateReplicas(replicas *int32, path *field.Path) field.ErrorList {
	if replicas != nil && *replicas < 0 {
		return field.ErrorList{field.Invalid(path, *replicas, "must be greater than or equal to 0")}
	}
	return nil
}

// TemplateColumns are the CONTAINERS and IMAGES cells of a pod template,
// for the wide columns of workload tables.
func TemplateColumns(t *corev1.PodTemplateSpec) (containers, images string) {
	var names, imgs []string
	for _, c := range t.Spec.Containers {
		names = append(names, c.Name)
		imgs = append(imgs, c.Image)
	}
	return strings.Join(names, ","), strings.Join(imgs, ",")
}

// SelectorString renders a label selector as kubectl shows it.
func SelectorString(sel *metav1.LabelSelector) string {
	if sel == nil {
		return "<none>"
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return fmt.Sprintf("<error: %v>", err)
	}
	if s.Empty() {
		return "<none>"
	}
	return s.String()
}

// TemplateColumnDefinitions are the wide CONTAINERS and IMAGES columns of
// workload tables, followed by SELECTOR when selectorDoc is not empty.
func TemplateColumnDefinitions(selectorDoc string) []metav1.TableColumnDefinition {
	cols := []metav1.TableColumnDefinition{
		{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."},
		{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."},
	}
	if selectorDoc != "" {
		cols = append(cols, metav1.TableColumnDefinition{Name: "Selector", Type: "string", Priority: 1, Description: selectorDoc})
	}
	return cols
}
