/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package payload describes the Windows node software the operator ships:
// kubelet, kube-proxy, containerd, the CNI plugins, hybrid-overlay,
// csi-proxy, windows_exporter, kube-log-runner and the node agent.
//
// A payload is a directory (/payload in the operator image) holding the
// binaries and a manifest.json that lists every file with its component,
// size and SHA-256, and optionally the Go module it was built from and the
// version it reports (make payload records both):
//
//	{
//	  "version": "v1.37.2-3cebe50141c3",
//	  "kubernetesVersion": "v1.37.2",
//	  "files": [
//	    {"path": "cni/host-local.exe", "component": "cni", "size": 4194304, "sha256": "…",
//	     "source": "github.com/containernetworking/plugins@v1.9.1", "version": "v1.9.1"},
//	    …
//	  ]
//	}
//
// The operator's payload directory may also hold several payloads, one
// per subdirectory named by Kubernetes version ([FindDir]).
//
// [Load] decodes the manifest strictly (unknown or duplicate fields are
// errors), validates it ([Manifest.Validate]) and checks every file on disk
// ([Manifest.Verify]). File paths are relative, use forward slashes and are
// restricted to names that are the same file on Windows and on Linux, so a
// manifest can never make the operator read or write outside the payload
// directory, nor two entries land on the same file of a case-insensitive
// NTFS volume.
//
// On a host, a payload version lives in its own directory,
// C:\k\payload\<version> ([HostDir], [HostPath]); services point at the
// current one, so a failed upgrade rolls back by pointing back.
package payload
