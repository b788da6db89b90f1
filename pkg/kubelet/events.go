package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// recorder sends the kubelet's events, as component "kubelet" from this node.
func (k *Kubelet) startRecorder(ctx context.Context) {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.cfg.Client.CoreV1().Events("")})
	r := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})
	k.mu.Lock()
	k.recorder = r
	k.mu.Unlock()
}

// NodeEvent records an event about the node itself (image GC, say).
func (k *Kubelet) NodeEvent(typ, reason, msg string) {
	k.mu.Lock()
	r := k.recorder
	k.mu.Unlock()
	if r == nil {
		return
	}
	ref := &corev1.ObjectReference{Kind: "Node", Name: k.cfg.NodeName, UID: types.UID(k.cfg.NodeName)}
	r.Event(ref, typ, reason, msg)
}

// event records an event about a pod (or one of its containers).
func (k *Kubelet) event(pod *corev1.Pod, c *corev1.Container, typ, reason, msg string) {
	// Probe workers record events too.
	k.mu.Lock()
	r := k.recorder
	k.mu.Unlock()
	if r == nil {
		return
	}
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	if c != nil {
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == c.Name {
				ref.FieldPath = fmt.Sprintf("spec.initContainers{%s}", c.Name)
			}
		}
		if ref.FieldPath == "" {
			ref.FieldPath = fmt.Sprintf("spec.containers{%s}", c.Name)
		}
	}
	r.Event(ref, typ, reason, msg)
}

// pullAuth finds credentials for image among the pod's imagePullSecrets
// (kubernetes.io/dockerconfigjson and dockercfg).
func (k *Kubelet) pullAuth(ctx context.Context, pod *corev1.Pod, image string) (*runtimeapi.AuthConfig, error) {
	if len(pod.Spec.ImagePullSecrets) == 0 {
		return nil, nil
	}
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return nil, nil
	}
	registry := ref.Context().RegistryStr()
	for _, ps := range pod.Spec.ImagePullSecrets {
		s, err := k.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ps.Name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		var auths map[string]dockerAuth
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			var cfg struct {
				Auths map[string]dockerAuth `json:"auths"`
			}
			if json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg) == nil {
				auths = cfg.Auths
			}
		case corev1.SecretTypeDockercfg:
			_ = json.Unmarshal(s.Data[corev1.DockerConfigKey], &auths)
		}
		for host, a := range auths {
			h := strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
			h = strings.SplitN(h, "/", 2)[0]
			if h == registry || (registry == name.DefaultRegistry && (h == "docker.io" || h == "index.docker.io")) {
				return &runtimeapi.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth}, nil
			}
		}
	}
	return nil, nil
}

type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}
