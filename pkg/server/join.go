package server

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff/skiff/pkg/apiserver/auth"
	"github.com/skiff/skiff/pkg/pki"
)

// Paths of the endpoints agents join through.
const (
	CACertsPath         = "/cacerts"
	NodeCredentialsPath = "/v1-skiff/node-credentials"
	joinGroup           = "system:bootstrappers"
)

// NodeCredentials is what a joining agent receives: the cluster CA and a
// client certificate for its node identity (system:node:<name>).
type NodeCredentials struct {
	CA   []byte `json:"ca"`
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
	// ServingCert and ServingKey are the kubelet's HTTPS certificate.
	ServingCert []byte `json:"servingCert"`
	ServingKey  []byte `json:"servingKey"`
}

// joinHandlers serve the CA bundle and node client certificates to callers
// holding the join token (or the admin).
func joinHandlers(certs *clusterCerts) map[string]http.Handler {
	mayJoin := func(r *http.Request) bool {
		u, ok := auth.UserFrom(r.Context())
		return ok && (slices.Contains(u.Groups, joinGroup) || slices.Contains(u.Groups, "system:masters"))
	}
	forbidden := func(w http.ResponseWriter) {
		st := apierrors.NewForbidden(schema.GroupResource{}, "", errJoin).ErrStatus
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(st.Code))
		_ = json.NewEncoder(w).Encode(st)
	}
	return map[string]http.Handler{
		CACertsPath: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !mayJoin(r) {
				forbidden(w)
				return
			}
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(certs.ca.CertPEM)
		}),
		NodeCredentialsPath: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			if !mayJoin(r) {
				forbidden(w)
				return
			}
			node := r.URL.Query().Get("node")
			if msgs := apivalidation.NameIsDNSSubdomain(node, false); len(msgs) > 0 {
				http.Error(w, "invalid node name: "+msgs[0], http.StatusBadRequest)
				return
			}
			issued, err := certs.ca.Issue(pki.CertSpec{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}, Client: true})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			servingSpec := pki.CertSpec{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}, DNSNames: []string{node}, Server: true}
			if ip := net.ParseIP(r.URL.Query().Get("ip")); ip != nil {
				servingSpec.IPs = []net.IP{ip}
			}
			serving, err := certs.ca.Issue(servingSpec)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(NodeCredentials{CA: certs.ca.CertPEM, Cert: issued.CertPEM, Key: issued.KeyPEM, ServingCert: serving.CertPEM, ServingKey: serving.KeyPEM})
		}),
	}
}

type joinError string

func (e joinError) Error() string { return string(e) }

const errJoin = joinError("joining requires the cluster's join token")
