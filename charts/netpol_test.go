package charts

import (
	"net"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// source is a pod that opens a connection.
type source struct {
	name      string
	namespace string
	labels    map[string]string
}

// admits evaluates Kubernetes NetworkPolicy ingress semantics for one connection from src to
// port of a pod with dstLabels and dstSpec in namespace: if no policy selects the pod, all is
// allowed; otherwise some rule of a selecting policy must admit both the peer and the port.
// Namespaces carry only their kubernetes.io/metadata.name label.
func admits(policies []*networkingv1.NetworkPolicy, ns string, dstLabels map[string]string, dstSpec *corev1.PodSpec, port int32, src source) (selected, allowed bool) {
	for _, np := range policies {
		if np.Namespace != "" && np.Namespace != ns {
			continue
		}
		if !matches(&np.Spec.PodSelector, dstLabels) || !hasIngressType(np) {
			continue
		}
		selected = true
		for _, rule := range np.Spec.Ingress {
			if portAdmitted(rule.Ports, dstSpec, port) && peerAdmitted(rule.From, ns, src) {
				allowed = true
			}
		}
	}
	return selected, !selected || allowed
}

func hasIngressType(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return true
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

func matches(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(l))
}

func portAdmitted(ports []networkingv1.NetworkPolicyPort, dst *corev1.PodSpec, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.String {
			for _, c := range allContainers(dst) {
				for _, cp := range c.Ports {
					if cp.Name == p.Port.StrVal && cp.ContainerPort == port {
						return true
					}
				}
			}
			continue
		}
		lo, hi := p.Port.IntVal, p.Port.IntVal
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

func peerAdmitted(from []networkingv1.NetworkPolicyPeer, ns string, src source) bool {
	if len(from) == 0 {
		return true
	}
	nsLabels := map[string]string{"kubernetes.io/metadata.name": src.namespace}
	for _, p := range from {
		if p.IPBlock != nil {
			continue // pods are not matched by address here
		}
		nsOK := src.namespace == ns
		if p.NamespaceSelector != nil {
			nsOK = matches(p.NamespaceSelector, nsLabels)
		}
		podOK := p.PodSelector == nil || matches(p.PodSelector, src.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

// checkNetworkPolicies: the broker's worker API is open to broker clients, its admin API to
// the connection service only; the connection service's API to its clients only.
func checkNetworkPolicies(t *testing.T, ms []manifest, pods []pod) {
	t.Helper()
	policies := objects[*networkingv1.NetworkPolicy](ms)

	connectionService := source{"connection service", namespace, map[string]string{
		"app.kubernetes.io/name": "connections", "app.kubernetes.io/instance": releaseName,
		"app.kubernetes.io/component": "connection-service",
	}}
	for _, p := range pods {
		if p.kind == "Deployment" && p.component() == "connection-service" {
			connectionService.labels = p.labels // the real labels, when rendered together
		}
	}
	worker := source{"recipe worker", "workers", map[string]string{"integrationhub.io/broker-client": "true"}}
	platform := source{"platform service", "platform", map[string]string{"integrationhub.io/connections-client": "true"}}
	stranger := source{"unlabelled pod", namespace, map[string]string{"app": "something-else"}}
	// A recipe worker that copies the connection service's name label but not its instance.
	impostor := source{"pod named like the connection service of another release", namespace, map[string]string{
		"app.kubernetes.io/name": "connections", "app.kubernetes.io/instance": "other",
		"app.kubernetes.io/component": "connection-service",
	}}

	type expectation struct {
		port  string
		src   source
		allow bool
	}
	var cases []expectation
	for _, p := range pods {
		if p.kind != "Deployment" {
			continue
		}
		switch p.component() {
		case "broker":
			cases = []expectation{
				{"grpc", worker, true},
				{"grpc", stranger, false},
				{"admin", connectionService, true},
				{"admin", worker, false},
				{"admin", platform, false},
				{"admin", stranger, false},
				{"admin", impostor, false},
			}
		case "connection-service":
			cases = []expectation{
				{"grpc", platform, true},
				{"grpc", stranger, false},
				{"grpc", worker, false},
			}
		default:
			continue
		}
		for _, e := range cases {
			port, ok := namedPort(p.spec, e.port)
			if !ok {
				t.Errorf("%s: no container port %q", p, e.port)
				continue
			}
			selected, allowed := admits(policies, namespace, p.labels, p.spec, port, e.src)
			if !selected {
				t.Errorf("%s: no NetworkPolicy selects its pods", p)
				break
			}
			if allowed != e.allow {
				verb := map[bool]string{true: "must", false: "must not"}[e.allow]
				t.Errorf("%s: %s %s reach port %s (%d)", p, e.src.name, verb, e.port, port)
			}
		}
	}
}

// checkConnectionServiceClients: every pod running a broker that follows the connection service
// (the shared broker, and worker pods with a sidecar) may reach the connection service's gRPC
// port through its NetworkPolicy. When the connection service is not part of this render, the
// connections chart's defaults stand in for it.
func checkConnectionServiceClients(t *testing.T, ms []manifest, pods []pod) {
	t.Helper()
	var svc *pod
	policies := objects[*networkingv1.NetworkPolicy](ms)
	find := func(ps []pod) {
		for i := range ps {
			if ps[i].kind == "Deployment" && ps[i].component() == "connection-service" {
				svc = &ps[i]
			}
		}
	}
	find(pods)
	if svc == nil {
		other, _ := renderScenario(t, scenario{chart: "connections"})
		find(podsOf(other))
		policies = append(policies, objects[*networkingv1.NetworkPolicy](other)...)
	}
	port, ok := namedPort(svc.spec, "grpc")
	if !ok {
		t.Fatal("the connection service has no grpc port")
	}
	for _, p := range pods {
		if p.kind != "Deployment" {
			continue
		}
		for _, c := range allContainers(p.spec) {
			if _, follows := env(c, "BROKER_CONNECTIONS_ADDR"); c.Name != "broker" || !follows {
				continue
			}
			src := source{p.String(), namespace, p.labels}
			if selected, allowed := admits(policies, namespace, svc.labels, svc.spec, port, src); !selected || !allowed {
				t.Errorf("%s runs a broker that calls the connection service, but its NetworkPolicy does not admit the pod's labels %v", p, p.labels)
			}
		}
	}
}

func namedPort(spec *corev1.PodSpec, name string) (int32, bool) {
	for _, c := range allContainers(spec) {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// dest is where a pod connects to: a pod (labels in a namespace) or an address outside.
type dest struct {
	namespace string
	labels    map[string]string
	ip        string
}

// egressAllows evaluates NetworkPolicy egress semantics for a connection from a pod with
// srcLabels in ns to port/proto at d: allowed unless an Egress policy selects the pod, then some
// rule of one must admit both the peer and the port.
func egressAllows(policies []*networkingv1.NetworkPolicy, ns string, srcLabels map[string]string, d dest, port int32, proto corev1.Protocol) bool {
	selected, allowed := false, false
	for _, np := range policies {
		if np.Namespace != "" && np.Namespace != ns || !matches(&np.Spec.PodSelector, srcLabels) {
			continue
		}
		egress := false
		for _, t := range np.Spec.PolicyTypes {
			egress = egress || t == networkingv1.PolicyTypeEgress
		}
		if !egress {
			continue
		}
		selected = true
		for _, rule := range np.Spec.Egress {
			portOK := len(rule.Ports) == 0
			for _, p := range rule.Ports {
				pr := corev1.ProtocolTCP
				if p.Protocol != nil {
					pr = *p.Protocol
				}
				if pr == proto && (p.Port == nil || p.Port.IntVal == port) {
					portOK = true
				}
			}
			if portOK && egressPeer(rule.To, ns, d) {
				allowed = true
			}
		}
	}
	return !selected || allowed
}

func egressPeer(to []networkingv1.NetworkPolicyPeer, ns string, d dest) bool {
	if len(to) == 0 {
		return true
	}
	for _, p := range to {
		if p.IPBlock != nil {
			if d.ip == "" {
				continue // pod addresses are not matched by CIDR here
			}
			_, cidr, err := net.ParseCIDR(p.IPBlock.CIDR)
			in := err == nil && cidr.Contains(net.ParseIP(d.ip))
			for _, ex := range p.IPBlock.Except {
				if _, c, err := net.ParseCIDR(ex); err == nil && c.Contains(net.ParseIP(d.ip)) {
					in = false
				}
			}
			if in {
				return true
			}
			continue
		}
		if d.ip != "" {
			continue
		}
		nsOK := d.namespace == ns
		if p.NamespaceSelector != nil {
			nsOK = matches(p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": d.namespace})
		}
		if nsOK && (p.PodSelector == nil || matches(p.PodSelector, d.labels)) {
			return true
		}
	}
	return false
}

// With egress policies on, each service reaches exactly what it needs: DNS, Vault (broker),
// PostgreSQL (connection service and its migration Job), each other, and HTTPS outside.
func TestEgressPolicies(t *testing.T) {
	ms, _ := renderScenario(t, scenario{chart: "integrationhub", valuesFile: "ci/egress-values.yaml"})
	policies := objects[*networkingv1.NetworkPolicy](ms)
	var brokerPod, connPod, migratePod map[string]string
	for _, p := range podsOf(ms) {
		switch p.component() {
		case "broker":
			brokerPod = p.labels
		case "connection-service":
			connPod = p.labels
		case "migrate":
			migratePod = p.labels
		}
	}
	if brokerPod == nil || connPod == nil || migratePod == nil {
		t.Fatal("want broker, connection service and migration pods")
	}
	dns := dest{namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
	vault := dest{namespace: "vault", labels: map[string]string{"app.kubernetes.io/name": "vault"}}
	postgres := dest{namespace: namespace, labels: map[string]string{"app.kubernetes.io/name": "postgresql"}}
	app := dest{ip: "203.0.113.7"}
	cases := []struct {
		name string
		src  map[string]string
		d    dest
		port int32
		udp  bool
		want bool
	}{
		{"broker to DNS", brokerPod, dns, 53, true, true},
		{"broker to Vault", brokerPod, vault, 8200, false, true},
		{"broker to the connection service", brokerPod, dest{namespace: namespace, labels: connPod}, 7001, false, true},
		{"broker to an app over HTTPS", brokerPod, app, 443, false, true},
		{"broker to PostgreSQL", brokerPod, postgres, 5432, false, false},
		{"broker to an app over plain HTTP", brokerPod, app, 80, false, false},
		{"connection service to DNS", connPod, dns, 53, true, true},
		{"connection service to PostgreSQL", connPod, postgres, 5432, false, true},
		{"connection service to the broker's admin API", connPod, dest{namespace: namespace, labels: brokerPod}, 7003, false, true},
		{"connection service to the issuer's keys", connPod, app, 443, false, true},
		{"connection service to Vault", connPod, vault, 8200, false, false},
		{"migration Job to PostgreSQL", migratePod, postgres, 5432, false, true},
	}
	for _, c := range cases {
		proto := corev1.ProtocolTCP
		if c.udp {
			proto = corev1.ProtocolUDP
		}
		if got := egressAllows(policies, namespace, c.src, c.d, c.port, proto); got != c.want {
			t.Errorf("%s (port %d): allowed %v, want %v", c.name, c.port, got, c.want)
		}
	}
}
