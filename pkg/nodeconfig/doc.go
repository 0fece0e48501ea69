/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package nodeconfig renders the desired state of one Windows host: the
// [wicdapi.Plan] the operator uploads and the agent applies.
//
// [Render] is a pure function of its [Inputs] (the cluster-wide
// WindowsNodeConfig spec, facts about the cluster and the host, the
// payload manifest, the node's name, labels and bootstrap token, and the
// host's pod subnet). It does no I/O and its output is deterministic: the
// same inputs give byte-for-byte the same plan, so the operator can compare
// plans to decide whether a host needs work.
//
// # What a plan holds
//
//   - Directories under C:\k and C:\var\lib\kubelet.
//   - Files: the kubelet's configuration (C:\k\kubelet.conf) and its
//     client CA (C:\var\lib\kubelet\pki\kubelet-client-ca.crt, which the
//     kubelet reloads by itself), the cluster CA (C:\k\ca.crt), the
//     bootstrap kubeconfig carrying the bootstrap token
//     (C:\k\bootstrap-kubeconfig, marked Sensitive), containerd's
//     configuration (C:\k\containerd\containerd.toml) and one hosts.toml
//     per mirrored registry host (see the image mirror rules in
//     mirrors.go), and, for the OVNHybridOverlay network,
//     hybrid-overlay-node's own kubeconfig (C:\k\hybrid-overlay\kubeconfig,
//     the kubelet's rotated client certificate) and, once the host's pod
//     subnet is known, the CNI configuration (C:\k\cni\config\cni.conf)
//     and kube-proxy's configuration (C:\k\kube-proxy.conf). The kubelet's
//     own kubeconfig, C:\k\kubeconfig, is written by the kubelet after TLS
//     bootstrap and is not rendered.
//   - Trusted root certificates (the cluster's trusted CA bundle, one
//     certificate each), which the agent imports into the LocalMachine
//     Root store.
//   - The proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY with the cluster's
//     networks and internal names added) in the environment of containerd
//     and the kubelet only, marked SensitiveEnv when a URL holds
//     credentials. Without proxy, trusted CAs and mirrors a plan holds no
//     trace of them.
//   - Services running from the payload's versioned directory
//     C:\k\payload\<version>: containerd, kubelet, hybrid-overlay-node and
//     kube-proxy (OVNHybridOverlay only), csi-proxy, windows_exporter, and
//     the agent itself. Services are sorted by dependency depth, then name.
//   - Networks: the HNS network hybrid-overlay creates
//     (OVNKubernetesHybridOverlayNetwork), so cleanup removes it.
//
// # The host subnet
//
// With the OVNHybridOverlay network, OVN-Kubernetes assigns each Windows
// node a pod subnet only after the node has registered, and hybrid-overlay
// on the host then creates the HNS network for it. Until the operator
// learns that subnet and passes it as [Inputs.HostSubnet], the plan has no
// CNI configuration and no kube-proxy (whose overlay mode needs a source
// VIP inside the subnet): the kubelet registers the Node, which stays
// NotReady ("network plugin not ready") until a plan rendered with the
// subnet is applied.
//
// # Logs
//
// kubelet, kube-proxy, hybrid-overlay-node and csi-proxy run under
// kube-log-runner, which writes their output to C:\k\log\<service>.log and
// rotates it by the WindowsNodeConfig's logRotation (size and age; see
// [LogRunnerArgs]). containerd and windows_exporter decide whether they run
// as a Windows service by looking at their parent process (it must be the
// service control manager), so they cannot run under kube-log-runner: they
// write their own log files in C:\k\log, which are not rotated. The agent
// writes its own log. flanneld (network type Flannel) never connects to
// the service control manager at all, which would fail its start with
// error 1053: its service runs the payload's wicd.exe as a service host
// (wicdapi.ServiceHostArgs), which runs kube-log-runner and flanneld as
// its child, their command line in a plan file
// (wicdapi.ServiceHostConfigPath). [UnwrapLogRunner] and [Command] give
// back the program a service really runs, for the kubelet emulator and
// for tests (through the service host, the simulator reads that file).
package nodeconfig
