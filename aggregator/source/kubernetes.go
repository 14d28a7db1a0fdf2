package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// In-cluster service account files.
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// KubernetesEndpoints discovers the exporters behind a Kubernetes Service
// through the API server: the ready endpoints of the Service's
// EndpointSlices (discovery.k8s.io/v1), each named by its node. It needs
// RBAC to list endpointslices in the Service's namespace.
type KubernetesEndpoints struct {
	// APIServer is the API server's base URL.
	APIServer string
	// Namespace and Service name the exporters' Service.
	Namespace, Service string
	// Port selects the endpoint port by name, or by number; empty takes
	// the first port of each slice.
	Port string
	// Scheme of the exporters' endpoints (default http).
	Scheme string
	// TokenFile holds the bearer token, read again at each call (projected
	// tokens rotate); empty sends none.
	TokenFile string
	// Client sends the requests (with the API server's CA).
	Client *http.Client
}

// InClusterEndpoints returns a discoverer for service ("namespace/name" or
// "name" in the pod's own namespace) using the pod's service account.
func InClusterEndpoints(service, port string) (*KubernetesEndpoints, error) {
	host, p := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || p == "" {
		return nil, errors.New("kubernetes discovery: not running in a cluster (KUBERNETES_SERVICE_HOST is unset)")
	}
	ca, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("kubernetes discovery: no certificate in the service account's ca.crt")
	}
	ns, name, ok := strings.Cut(service, "/")
	if !ok {
		own, err := os.ReadFile(serviceAccountDir + "/namespace")
		if err != nil {
			return nil, fmt.Errorf("kubernetes discovery: service %q without a namespace: %w", service, err)
		}
		ns, name = strings.TrimSpace(string(own)), service
	}
	return &KubernetesEndpoints{
		APIServer: "https://" + net.JoinHostPort(host, p),
		Namespace: ns, Service: name, Port: port,
		TokenFile: serviceAccountDir + "/token",
		Client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}},
	}, nil
}

type endpointSliceList struct {
	Items []struct {
		Endpoints []struct {
			Addresses  []string `json:"addresses"`
			Conditions struct {
				Ready *bool `json:"ready"`
			} `json:"conditions"`
			NodeName *string `json:"nodeName"`
		} `json:"endpoints"`
		Ports []struct {
			Name *string `json:"name"`
			Port *int32  `json:"port"`
		} `json:"ports"`
	} `json:"items"`
}

// Targets lists the Service's ready endpoints.
func (k *KubernetesEndpoints) Targets(ctx context.Context) ([]Target, error) {
	if k.Namespace == "" || k.Service == "" || k.APIServer == "" {
		return nil, errors.New("kubernetes discovery: API server, namespace and service are required")
	}
	q := url.Values{"labelSelector": {"kubernetes.io/service-name=" + k.Service}}
	u := strings.TrimSuffix(k.APIServer, "/") + "/apis/discovery.k8s.io/v1/namespaces/" +
		url.PathEscape(k.Namespace) + "/endpointslices?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if k.TokenFile != "" {
		tok, err := os.ReadFile(k.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("kubernetes discovery: token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	client := k.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kubernetes discovery: %s/%s endpointslices: HTTP %d: %s", k.Namespace, k.Service,
			resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	var list endpointSliceList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("kubernetes discovery: decode endpointslices: %w", err)
	}
	scheme := k.Scheme
	if scheme == "" {
		scheme = "http"
	}
	seen := map[string]bool{}
	var out []Target
	for _, sl := range list.Items {
		port, ok := k.pick(sl.Ports)
		if !ok {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, addr := range ep.Addresses {
				hostport := net.JoinHostPort(addr, strconv.Itoa(int(port)))
				if seen[hostport] {
					continue
				}
				seen[hostport] = true
				name := hostport
				if ep.NodeName != nil && *ep.NodeName != "" {
					name = *ep.NodeName
				}
				out = append(out, Target{Name: name, URL: scheme + "://" + hostport + "/metrics"})
				break // one address per endpoint
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (k *KubernetesEndpoints) pick(ports []struct {
	Name *string `json:"name"`
	Port *int32  `json:"port"`
}) (int32, bool) {
	for _, p := range ports {
		if p.Port == nil {
			continue
		}
		if k.Port == "" || (p.Name != nil && *p.Name == k.Port) || strconv.Itoa(int(*p.Port)) == k.Port {
			return *p.Port, true
		}
	}
	return 0, false
}
