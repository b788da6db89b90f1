package service

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

// valid returns a defaulted, allocated ClusterIP service.
func valid() *corev1.Service {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{
		ClusterIP: "10.43.0.10", Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "https", Port: 443, TargetPort: intstr.FromString("https")}},
	}}
	Default(svc)
	PrepareForCreate(svc)
	return svc
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*corev1.Service)
		want []string
	}{
		{"valid", func(*corev1.Service) {}, nil},
		{"headless without ports", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.Ports = "None", []string{"None"}, nil
		}, nil},
		{"ports required", func(s *corev1.Service) { s.Spec.Ports = nil }, []string{"spec.ports: Required value"}},
		{"names required with several ports", func(s *corev1.Service) { s.Spec.Ports[1].Name = "" }, []string{"spec.ports[1].name: Required value"}},
		{"duplicate port names", func(s *corev1.Service) { s.Spec.Ports[1].Name = "http" }, []string{`spec.ports[1].name: Duplicate value: "http"`}},
		{"port out of range", func(s *corev1.Service) {
			s.Spec.Ports[0].Port = 70000
			s.Spec.Ports[0].TargetPort = intstr.FromInt32(8080)
		}, []string{
			"spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"}},
		{"bad target port", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("no_underscores") }, []string{
			`spec.ports[0].targetPort: Invalid value: "no_underscores": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`}},
		{"bad protocol", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }, []string{
			`spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`}},
		{"duplicate port and protocol", func(s *corev1.Service) { s.Spec.Ports[1].Port = 80 }, []string{
			`spec.ports[1]: Duplicate value: {"protocol":"TCP","port":80,"targetPort":0}`}},
		{"node port on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }, []string{
			"spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"}},
		{"bad selector", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "-bad"} }, []string{
			`spec.selector: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`}},
		{"clusterIPs must follow clusterIP", func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.43.0.11"} }, []string{
			`spec.clusterIPs: Invalid value: ["10.43.0.11"]: first value must match ` + "`clusterIP`"}},
		{"bad cluster IP", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.43.0.300", []string{"10.43.0.300"} }, []string{
			`spec.clusterIPs[0]: Invalid value: "10.43.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`}},
		{"headless node port", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ServiceTypeNodePort, "None", []string{"None"}
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}, []string{`spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services`}},
		{"external name", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.InternalTrafficPolicy = corev1.ServiceTypeExternalName, "", nil, nil
			s.Spec.ExternalName = "Not_A_Host."
		}, []string{`spec.externalName: Invalid value: "Not_A_Host": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
		{"external name with cluster IP", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName, s.Spec.InternalTrafficPolicy = corev1.ServiceTypeExternalName, "example.com", nil
		}, []string{"spec.clusterIPs: Forbidden: may not be set for ExternalName services"}},
		{"external name required", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.InternalTrafficPolicy = corev1.ServiceTypeExternalName, "", nil, nil
		}, []string{"spec.externalName: Required value"}},
		{"bad type", func(s *corev1.Service) { s.Spec.Type = "Magic" }, []string{
			`spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`}},
		{"affinity timeout", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(86401))}}
		}, []string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400"}},
		{"external traffic policy on ClusterIP", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }, []string{
			`spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services`}},
		{"loopback external IP", func(s *corev1.Service) {
			s.Spec.ExternalIPs = []string{"127.0.0.1"}
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}, []string{`spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`}},
		{"duplicate node ports", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalTrafficPolicy = corev1.ServiceTypeNodePort, corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.Ports[0].NodePort, s.Spec.Ports[1].NodePort = 30080, 30080
		}, []string{"spec.ports[1].nodePort: Duplicate value: 30080"}},
		{"health check port outside LoadBalancer+Local", func(s *corev1.Service) { s.Spec.HealthCheckNodePort = 30000 }, []string{
			"spec.healthCheckNodePort: Invalid value: 30000: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := valid()
			tc.mut(svc)
			validationtest.Expect(t, tc.name, Validate(svc), tc.want)
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*corev1.Service)
		want []string
	}{
		{"unchanged", func(*corev1.Service) {}, nil},
		{"cluster IP may not change", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.43.0.11", []string{"10.43.0.11"} }, []string{
			`spec.clusterIPs[0]: Invalid value: ["10.43.0.11"]: may not change once set`}},
		{"to ExternalName may drop it", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.InternalTrafficPolicy = corev1.ServiceTypeExternalName, "example.com", "", nil, nil
			s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = nil, nil
		}, nil},
		{"ip family may not change", func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} }, []string{
			`spec.ipFamilies[0]: Invalid value: ["IPv6"]: may not change once set`,
			`spec.clusterIPs[0]: Invalid value: "10.43.0.10": expected an IPv6 value as indicated by ` + "`ipFamilies[0]`"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := valid()
			old.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
			svc := old.DeepCopy()
			tc.mut(svc)
			validationtest.Expect(t, tc.name, ValidateUpdate(svc, old), tc.want)
		})
	}
}

func TestValidateLoadBalancerStatus(t *testing.T) {
	lb := &corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}
	path := field.NewPath("status", "loadBalancer")
	cases := []struct {
		name   string
		spec   *corev1.ServiceSpec
		status corev1.LoadBalancerStatus
		want   []string
	}{
		{"ip with mode", lb, corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}}, nil},
		{"ip without mode", lb, corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}, []string{
			"status.loadBalancer.ingress[0].ipMode: Required value: must be specified when `ip` is set"}},
		{"hostname that is an IP", lb, corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "192.0.2.1"}}}, []string{
			`status.loadBalancer.ingress[0].hostname: Invalid value: "192.0.2.1": must be a DNS name, not an IP address`}},
		{"not a load balancer", &corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}, corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "lb"}}}, []string{
			"status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"}},
	}
	for _, tc := range cases {
		validationtest.Expect(t, tc.name, ValidateLoadBalancerStatus(&tc.status, path, tc.spec), tc.want)
	}
}
