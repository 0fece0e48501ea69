package cluster

import (
	"fmt"

	"k8s.io/client-go/discovery"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	policyv1client "k8s.io/client-go/kubernetes/typed/policy/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// CoreClient reads the core API group; client-go's *kubernetes.Clientset
// and *Clients have it.
type CoreClient interface {
	CoreV1() corev1client.CoreV1Interface
}

// Clients are typed clients of the API groups the operator calls without
// its cache: core (cluster facts, a drained Node's Pods), policy
// (evictions, PodDisruptionBudgets) and discovery. They have the methods
// of client-go's Clientset the operator uses without linking a client of
// every API group (and their apply configurations) into the binary,
// whose mapped pages count in the operator's resident memory.
type Clients struct {
	core      *corev1client.CoreV1Client
	policy    *policyv1client.PolicyV1Client
	discovery *discovery.DiscoveryClient
}

// NewClients makes the clients from cfg. As client-go's Clientset, they
// share one connection pool and one client-side rate limiter.
func NewClients(cfg *rest.Config) (*Clients, error) {
	c := rest.CopyConfig(cfg)
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, fmt.Errorf("burst is required to be greater than 0 when RateLimiter is not set and QPS is set to greater than 0")
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	hc, err := rest.HTTPClientFor(c)
	if err != nil {
		return nil, err
	}
	core, err := corev1client.NewForConfigAndClient(c, hc)
	if err != nil {
		return nil, err
	}
	policy, err := policyv1client.NewForConfigAndClient(c, hc)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(c, hc)
	if err != nil {
		return nil, err
	}
	return &Clients{core: core, policy: policy, discovery: dc}, nil
}

// CoreV1 is the core group's client.
func (c *Clients) CoreV1() corev1client.CoreV1Interface { return c.core }

// PolicyV1 is the policy group's client.
func (c *Clients) PolicyV1() policyv1client.PolicyV1Interface { return c.policy }

// Discovery is the discovery client.
func (c *Clients) Discovery() discovery.DiscoveryInterface { return c.discovery }
