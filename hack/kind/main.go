// Command kind checks the kind cluster configuration of
// hack/e2e-kind-windows.sh against kube-flannel's net-conf.json and the
// payload's Kubernetes version, and prints it with the API server address
// the Windows VMs use:
//
//	go run -C hack/kind . -api-server-address 10.0.0.4 [-api-server-port 6443] -k8s-version v1.37.2 > cluster.yaml
//
// The same checks run in this module's tests (go test -C hack/kind ./...).
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hack/kind:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kind", flag.ContinueOnError)
	dir := fs.String("dir", ".", "the directory of cluster.yaml and kube-flannel/ (hack/kind)")
	address := fs.String("api-server-address", "", "IPv4 address of this machine that the Windows VMs reach (required)")
	port := fs.Int("api-server-port", 6443, "port of the API server on that address")
	k8sVersion := fs.String("k8s-version", "", "Kubernetes version of the payload, e.g. v1.37.2 (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *address == "" || *k8sVersion == "" {
		return fmt.Errorf("-api-server-address and -k8s-version are required")
	}
	addr, err := netip.ParseAddr(*address)
	if err != nil {
		return fmt.Errorf("-api-server-address: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(*dir, ClusterFile))
	if err != nil {
		return err
	}
	rendered, err := Render(raw, addr, *port)
	if err != nil {
		return err
	}
	if err := checkFiles(rendered, filepath.Join(*dir, NetConfFile), *k8sVersion); err != nil {
		return err
	}
	_, err = os.Stdout.Write(rendered)
	return err
}

// checkFiles loads the kind configuration raw and the net-conf.json at
// netConfPath and runs Check on them.
func checkFiles(raw []byte, netConfPath, k8sVersion string) error {
	c, err := LoadCluster(raw)
	if err != nil {
		return err
	}
	ncRaw, err := os.ReadFile(netConfPath)
	if err != nil {
		return err
	}
	nc, err := ParseNetConf(ncRaw)
	if err != nil {
		return err
	}
	return Check(c, nc, k8sVersion)
}
