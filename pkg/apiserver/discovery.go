package apiserver

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff/skiff/pkg/registry"
)

// discoveryDocs are the precomputed discovery documents.
type discoveryDocs struct {
	groupList     *metav1.APIGroupList
	groups        map[string]*metav1.APIGroup
	resourceLists map[schema.GroupVersion]*metav1.APIResourceList
	// aggregated v2 documents for /api (core) and /apis (the rest).
	aggCore, aggGroups *apidiscoveryv2.APIGroupDiscoveryList
	// the same in v2beta1, which kubectl before 1.30 asks for.
	aggCoreBeta, aggGroupsBeta *apidiscoveryv2beta1.APIGroupDiscoveryList
}

func (s *Server) buildDiscovery() *discoveryDocs {
	d := &discoveryDocs{
		groupList:     &metav1.APIGroupList{},
		groups:        map[string]*metav1.APIGroup{},
		resourceLists: map[schema.GroupVersion]*metav1.APIResourceList{},
		aggCore:       &apidiscoveryv2.APIGroupDiscoveryList{},
		aggGroups:     &apidiscoveryv2.APIGroupDiscoveryList{},
	}
	byGV := map[schema.GroupVersion][]*registry.Resource{}
	for _, st := range s.cfg.Stores {
		gv := st.Resource.GroupVersion()
		byGV[gv] = append(byGV[gv], st.Resource)
	}
	for _, g := range s.groups {
		var versions []metav1.GroupVersionForDiscovery
		agg := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.name}}
		for _, v := range g.versions {
			gv := schema.GroupVersion{Group: g.name, Version: v}
			versions = append(versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: v})
			resources := byGV[gv]
			sort.Slice(resources, func(i, j int) bool { return resources[i].Resource < resources[j].Resource })
			list := &metav1.APIResourceList{GroupVersion: gv.String()}
			aggVersion := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, res := range resources {
				list.APIResources = append(list.APIResources, legacyResources(res)...)
				aggVersion.Resources = append(aggVersion.Resources, aggregatedResource(res))
			}
			d.resourceLists[gv] = list
			agg.Versions = append(agg.Versions, aggVersion)
		}
		if g.name == "" {
			d.aggCore.Items = append(d.aggCore.Items, agg)
			continue
		}
		group := metav1.APIGroup{Name: g.name, Versions: versions, PreferredVersion: versions[0]}
		d.groups[g.name] = &group
		d.groupList.Groups = append(d.groupList.Groups, group)
		d.aggGroups.Items = append(d.aggGroups.Items, agg)
	}
	d.aggCoreBeta = toBeta(d.aggCore)
	d.aggGroupsBeta = toBeta(d.aggGroups)
	return d
}

func scope(res *registry.Resource) string {
	if res.Namespaced {
		return "Namespaced"
	}
	return "Cluster"
}

func legacyResources(res *registry.Resource) []metav1.APIResource {
	out := []metav1.APIResource{{
		Name:         res.Resource,
		SingularName: res.SingularName,
		Namespaced:   res.Namespaced,
		Kind:         res.Kind,
		Verbs:        res.ServedVerbs(),
		ShortNames:   res.ShortNames,
		Categories:   res.Categories,
	}}
	for _, sub := range subresources(res) {
		out = append(out, metav1.APIResource{
			Name:       res.Resource + "/" + sub.Name,
			Namespaced: res.Namespaced,
			Group:      sub.Group,
			Version:    sub.Version,
			Kind:       sub.Kind,
			Verbs:      sub.Verbs,
		})
	}
	return out
}

// subresources lists every subresource of res, built-in ones included.
func subresources(res *registry.Resource) []registry.Subresource {
	var out []registry.Subresource
	if res.Status != nil {
		out = append(out, registry.Subresource{Name: "status", Kind: res.Kind, Verbs: []string{"get", "patch", "update"}})
	}
	if res.Scale != nil {
		out = append(out, registry.Subresource{Name: "scale", Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: []string{"get", "patch", "update"}})
	}
	out = append(out, res.Subresources...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func aggregatedResource(res *registry.Resource) apidiscoveryv2.APIResourceDiscovery {
	gvk := res.GroupVersionKind()
	d := apidiscoveryv2.APIResourceDiscovery{
		Resource:         res.Resource,
		ResponseKind:     &metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Scope:            apidiscoveryv2.ResourceScope(scope(res)),
		SingularResource: res.SingularName,
		Verbs:            res.ServedVerbs(),
		ShortNames:       res.ShortNames,
		Categories:       res.Categories,
	}
	for _, sub := range subresources(res) {
		g, v := sub.Group, sub.Version
		if g == "" && v == "" {
			g, v = gvk.Group, gvk.Version
		}
		d.Subresources = append(d.Subresources, apidiscoveryv2.APISubresourceDiscovery{
			Subresource:  sub.Name,
			ResponseKind: &metav1.GroupVersionKind{Group: g, Version: v, Kind: sub.Kind},
			Verbs:        sub.Verbs,
		})
	}
	return d
}

// toBeta converts the v2 aggregated discovery document to v2beta1; the two
// versions have the same fields.
func toBeta(in *apidiscoveryv2.APIGroupDiscoveryList) *apidiscoveryv2beta1.APIGroupDiscoveryList {
	b, err := json.Marshal(in)
	if err != nil {
		panic(err)
	}
	out := &apidiscoveryv2beta1.APIGroupDiscoveryList{}
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

// aggregatedVersion returns the aggregated discovery version the Accept
// header asks for first ("v2", "v2beta1"), or "".
func aggregatedVersion(r *http.Request) string {
	for _, m := range parseAccept(r.Header.Get("Accept")) {
		if m.As == "APIGroupDiscoveryList" && m.G == "apidiscovery.k8s.io" && (m.V == "v2" || m.V == "v2beta1") {
			return m.V
		}
		if m.As == "" && (m.full() == "application/json" || m.full() == "*/*") {
			return ""
		}
	}
	return ""
}

// serveDiscovery answers /api, /apis and their group and version paths.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, ri *requestInfo) bool {
	path := strings.Trim(r.URL.Path, "/")
	d := s.disc
	agg := aggregatedVersion(r)
	switch {
	case path == "api":
		switch agg {
		case "v2":
			writeAggregated(w, r, d.aggCore, "v2")
		case "v2beta1":
			writeAggregated(w, r, d.aggCoreBeta, "v2beta1")
		default:
			writeJSON(w, r, http.StatusOK, &metav1.APIVersions{
				Versions:                   []string{"v1"},
				ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: s.cfg.ExternalAddress}},
			}, coreV1)
		}
		return true
	case path == "apis":
		switch agg {
		case "v2":
			writeAggregated(w, r, d.aggGroups, "v2")
		case "v2beta1":
			writeAggregated(w, r, d.aggGroupsBeta, "v2beta1")
		default:
			writeJSON(w, r, http.StatusOK, d.groupList, coreV1)
		}
		return true
	}
	parts := ri.Parts
	switch {
	case strings.HasPrefix(path, "api/") && len(parts) == 1:
		if list, ok := d.resourceLists[schema.GroupVersion{Version: parts[0]}]; ok {
			writeJSON(w, r, http.StatusOK, list, coreV1)
			return true
		}
	case strings.HasPrefix(path, "apis/") && len(parts) == 1:
		if g, ok := d.groups[parts[0]]; ok {
			writeJSON(w, r, http.StatusOK, g, coreV1)
			return true
		}
	case strings.HasPrefix(path, "apis/") && len(parts) == 2:
		if list, ok := d.resourceLists[schema.GroupVersion{Group: parts[0], Version: parts[1]}]; ok {
			writeJSON(w, r, http.StatusOK, list, coreV1)
			return true
		}
	}
	return false
}

func writeAggregated(w http.ResponseWriter, r *http.Request, list runtime.Object, version string) {
	gv := schema.GroupVersion{Group: "apidiscovery.k8s.io", Version: version}
	body, err := encode(jsonInfo(), false, list, gv)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, "application/json;g=apidiscovery.k8s.io;v="+version+";as=APIGroupDiscoveryList", body)
}

// writeRawJSON writes v with encoding/json (for non-runtime.Object bodies).
func writeRawJSON(w http.ResponseWriter, status int, v interface{}) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, "application/json", b)
}
