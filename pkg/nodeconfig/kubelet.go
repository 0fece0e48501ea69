/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"encoding/base64"
	"strings"
)

// The configuration files are written as JSON (which is YAML) from small
// structs holding only what the plan sets, so that everything else keeps
// the component's own default. Tests decode every file strictly into the
// upstream types (k8s.io/kubelet/config/v1beta1,
// k8s.io/kube-proxy/config/v1alpha1, client-go's kubeconfig) so a
// misspelt field fails the build's tests, not a host.

// kubeletConfiguration is a kubelet.config.k8s.io/v1beta1
// KubeletConfiguration.
type kubeletConfiguration struct {
	Kind                     string                `json:"kind"`
	APIVersion               string                `json:"apiVersion"`
	Authentication           kubeletAuthentication `json:"authentication"`
	Authorization            kubeletAuthorization  `json:"authorization"`
	CgroupsPerQOS            bool                  `json:"cgroupsPerQOS"`
	ClusterDNS               []string              `json:"clusterDNS"`
	ClusterDomain            string                `json:"clusterDomain"`
	ContainerRuntimeEndpoint string                `json:"containerRuntimeEndpoint"`
	EnableSystemLogHandler   bool                  `json:"enableSystemLogHandler"`
	EnableSystemLogQuery     bool                  `json:"enableSystemLogQuery"`
	EnforceNodeAllocatable   []string              `json:"enforceNodeAllocatable"`
	EvictionHard             map[string]string     `json:"evictionHard"`
	RegisterNode             bool                  `json:"registerNode"`
	RegisterWithTaints       []taint               `json:"registerWithTaints"`
	ResolvConf               string                `json:"resolvConf"`
	RotateCertificates       bool                  `json:"rotateCertificates"`
	ServerTLSBootstrap       bool                  `json:"serverTLSBootstrap"`
	SystemReserved           map[string]string     `json:"systemReserved"`
	TLSMinVersion            string                `json:"tlsMinVersion"`
}

type kubeletAuthentication struct {
	Anonymous struct {
		Enabled bool `json:"enabled"`
	} `json:"anonymous"`
	Webhook struct {
		Enabled bool `json:"enabled"`
	} `json:"webhook"`
	X509 struct {
		ClientCAFile string `json:"clientCAFile"`
	} `json:"x509"`
}

type kubeletAuthorization struct {
	Mode string `json:"mode"`
}

// taint is a core/v1 Taint.
type taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

func renderKubeletConfig(r *resolved) ([]byte, error) {
	c := kubeletConfiguration{
		Kind:       "KubeletConfiguration",
		APIVersion: "kubelet.config.k8s.io/v1beta1",
		// Windows has no cgroups: no QoS cgroups and no node allocatable
		// enforcement. "none" rather than an empty list: an empty list
		// would read back as "not set" through the upstream Go type
		// (omitempty) and default to ["pods"], which the kubelet rejects
		// when cgroupsPerQOS is false.
		CgroupsPerQOS:          false,
		EnforceNodeAllocatable: []string{"none"},
		// DNS settings live in the registry on Windows; there is no
		// resolv.conf.
		ResolvConf:               "",
		ClusterDNS:               []string{r.dnsIP.String()},
		ClusterDomain:            r.domain,
		ContainerRuntimeEndpoint: ContainerRuntimeEndpoint,
		RotateCertificates:       true,
		ServerTLSBootstrap:       true,
		// The node log query (/api/v1/nodes/<node>/proxy/logs/?query=,
		// what `oc adm node-logs` and `kubectl wmco logs` use): the
		// kubelet reads C:\var\log\<service>\<service>.log (LogPath).
		EnableSystemLogHandler: true,
		EnableSystemLogQuery:   true,
		RegisterNode:           true,
		RegisterWithTaints:     []taint{},
		TLSMinVersion:          "VersionTLS12",
		Authorization:          kubeletAuthorization{Mode: "Webhook"},
		// Windows supports the memory.available, nodefs.available and
		// imagefs.available signals. Hard thresholds are also subtracted
		// from capacity to compute allocatable.
		EvictionHard: map[string]string{
			"memory.available":  "500Mi",
			"nodefs.available":  "10%",
			"imagefs.available": "15%",
		},
		// Windows needs at least 2GiB of memory for itself; see
		// kubernetes.io/docs/concepts/configuration/windows-resource-management.
		SystemReserved: map[string]string{
			"cpu":               "500m",
			"memory":            "2Gi",
			"ephemeral-storage": "1Gi",
		},
	}
	c.Authentication.Anonymous.Enabled = false
	c.Authentication.Webhook.Enabled = true
	// A file of its own, which the kubelet reloads when it changes: a
	// rotated client CA needs no restart.
	c.Authentication.X509.ClientCAFile = KubeletClientCAPath
	for _, t := range r.taints {
		c.RegisterWithTaints = append(c.RegisterWithTaints, taint{Key: t.Key, Value: t.Value, Effect: string(t.Effect)})
	}
	return marshal(c)
}

// kubeletArgs are the kubelet's command-line arguments.
func kubeletArgs(r *resolved) []string {
	args := []string{
		"--config=" + KubeletConfigPath,
		"--bootstrap-kubeconfig=" + BootstrapKubeconfigPath,
		"--kubeconfig=" + KubeconfigPath,
		"--cert-dir=" + KubeletPKIDir,
		"--hostname-override=" + r.nodeName,
		"--node-ip=" + r.nodeIP.String(),
	}
	if r.cloudProvider != "" {
		// The kubelet registers the Node with the uninitialized taint
		// and leaves its addresses to the cloud controller manager once
		// it has set them.
		args = append(args, "--cloud-provider="+r.cloudProvider)
	}
	if len(r.labels) > 0 {
		pairs := make([]string, 0, len(r.labels))
		for _, k := range sortedKeys(r.labels) {
			pairs = append(pairs, k+"="+r.labels[k])
		}
		args = append(args, "--node-labels="+strings.Join(pairs, ","))
	}
	return append(args,
		// More CPU time for the kubelet than for workloads; see
		// kubernetes.io/docs/concepts/configuration/windows-resource-management.
		"--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS",
		"--windows-service",
		"--v=2",
	)
}

// kubeconfig is a client-go v1 Config.
type kubeconfig struct {
	APIVersion     string             `json:"apiVersion"`
	Kind           string             `json:"kind"`
	Clusters       []kubeconfigEntry  `json:"clusters"`
	Users          []kubeconfigUser   `json:"users"`
	Contexts       []kubeconfigContxt `json:"contexts"`
	CurrentContext string             `json:"current-context"`
}

type kubeconfigEntry struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData string `json:"certificate-authority-data"`
	} `json:"cluster"`
}

type kubeconfigUser struct {
	Name string `json:"name"`
	User struct {
		Token string `json:"token"`
	} `json:"user"`
}

type kubeconfigContxt struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

// renderBootstrapKubeconfig renders the kubeconfig the kubelet uses for
// TLS bootstrap. Its content is a credential.
func renderBootstrapKubeconfig(r *resolved) ([]byte, error) {
	const name = "bootstrap"
	k := kubeconfig{APIVersion: "v1", Kind: "Config", CurrentContext: name}
	cl := kubeconfigEntry{Name: name}
	cl.Cluster.Server = r.apiServer
	cl.Cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString(r.caPEM)
	u := kubeconfigUser{Name: name}
	u.User.Token = r.token
	ctx := kubeconfigContxt{Name: name}
	ctx.Context.Cluster = name
	ctx.Context.User = name
	k.Clusters = []kubeconfigEntry{cl}
	k.Users = []kubeconfigUser{u}
	k.Contexts = []kubeconfigContxt{ctx}
	return marshal(k)
}

// fileKubeconfig is a client-go v1 Config whose credentials are files:
// the kubelet's rotated client certificate, which client-go reloads.
type fileKubeconfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Clusters   []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificate string `json:"client-certificate"`
			ClientKey         string `json:"client-key"`
		} `json:"user"`
	} `json:"users"`
	Contexts       []kubeconfigContxt `json:"contexts"`
	CurrentContext string             `json:"current-context"`
}

// renderHybridOverlayKubeconfig renders hybrid-overlay-node's kubeconfig:
// the node's identity (the kubelet's rotated client certificate and key,
// one PEM file, which client-go reloads) against the API server, trusting
// the cluster CA. The CA is embedded rather than named, so that a new CA
// changes the file and restarts hybrid-overlay-node (client-go reads a CA
// only at start). It holds no credential.
func renderHybridOverlayKubeconfig(r *resolved) ([]byte, error) {
	const name = "hybrid-overlay"
	k := fileKubeconfig{APIVersion: "v1", Kind: "Config", CurrentContext: name}
	k.Clusters = make([]struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	}, 1)
	k.Clusters[0].Name = name
	k.Clusters[0].Cluster.Server = r.apiServer
	k.Clusters[0].Cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString(r.caPEM)
	k.Users = make([]struct {
		Name string `json:"name"`
		User struct {
			ClientCertificate string `json:"client-certificate"`
			ClientKey         string `json:"client-key"`
		} `json:"user"`
	}, 1)
	k.Users[0].Name = name
	k.Users[0].User.ClientCertificate = KubeletClientCertPath
	k.Users[0].User.ClientKey = KubeletClientCertPath
	ctx := kubeconfigContxt{Name: name}
	ctx.Context.Cluster = name
	ctx.Context.User = name
	k.Contexts = []kubeconfigContxt{ctx}
	return marshal(k)
}
