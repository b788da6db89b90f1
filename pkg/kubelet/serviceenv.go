package kubelet

import (
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

type envVar struct{ name, value string }

// serviceEnvKeys are the Docker-link style variables of the services a
// container sees at start: the pod's namespace's services when service
// links are on, and the API server's "kubernetes" service always.
func (k *Kubelet) serviceEnvKeys(p *corev1.Pod) []envVar {
	if k.services == nil {
		return nil
	}
	var svcs []*corev1.Service
	if p.Spec.EnableServiceLinks == nil || *p.Spec.EnableServiceLinks {
		svcs, _ = k.services.Services(p.Namespace).List(labels.Everything())
	}
	if p.Namespace != "default" || (p.Spec.EnableServiceLinks != nil && !*p.Spec.EnableServiceLinks) {
		if api, err := k.services.Services("default").Get("kubernetes"); err == nil {
			svcs = append(svcs, api)
		}
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	var out []envVar
	seen := map[string]bool{}
	for _, s := range svcs {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 || seen[s.Namespace+"/"+s.Name] {
			continue
		}
		seen[s.Namespace+"/"+s.Name] = true
		prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		first := s.Spec.Ports[0]
		out = append(out,
			envVar{prefix + "_SERVICE_HOST", ip},
			envVar{prefix + "_SERVICE_PORT", strconv.Itoa(int(first.Port))},
		)
		for _, port := range s.Spec.Ports {
			if port.Name != "" {
				out = append(out, envVar{prefix + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(port.Name, "-", "_")), strconv.Itoa(int(port.Port))})
			}
		}
		proto := strings.ToLower(string(first.Protocol))
		out = append(out, envVar{prefix + "_PORT", proto + "://" + joinHostPort(ip, first.Port)})
		for _, port := range s.Spec.Ports {
			p := strconv.Itoa(int(port.Port))
			pr := string(port.Protocol)
			key := prefix + "_PORT_" + p + "_" + pr
			out = append(out,
				envVar{key, strings.ToLower(pr) + "://" + joinHostPort(ip, port.Port)},
				envVar{key + "_PROTO", strings.ToLower(pr)},
				envVar{key + "_PORT", p},
				envVar{key + "_ADDR", ip},
			)
		}
	}
	return out
}

func joinHostPort(ip string, port int32) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + strconv.Itoa(int(port))
	}
	return ip + ":" + strconv.Itoa(int(port))
}
