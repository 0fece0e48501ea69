// Command bundle generates the OLM bundle (registry+v1) of the operator
// from its kustomize configuration: bundle/manifests (the
// ClusterServiceVersion, the CRDs and the extra objects OLM installs),
// bundle/metadata/annotations.yaml and bundle.Dockerfile. Run it through
// `make bundle`; the output is deterministic and committed.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	var o options
	var channels string
	flag.StringVar(&o.Root, "root", "../..", "Repository root: config/ is read from it, bundle/ and bundle.Dockerfile are written into it.")
	flag.StringVar(&o.Version, "version", "", "Bundle version, semver without a leading v (required).")
	flag.StringVar(&o.Image, "image", "", "Operator image for the Deployment; default ghcr.io/openwmco/wmco:v<version>.")
	flag.StringVar(&o.Package, "package", "openwmco", "OLM package name; the CSV is named <package>.v<version>.")
	flag.StringVar(&channels, "channels", "candidate", "Comma-separated channels the bundle is published in.")
	flag.StringVar(&o.DefaultChannel, "default-channel", "", "Default channel; default the first of -channels.")
	flag.StringVar(&o.MinKubeVersion, "min-kube-version", "", "Oldest Kubernetes version the bundle installs on (semver, required).")
	flag.StringVar(&o.Replaces, "replaces", "", "Name of the CSV this one replaces, if any.")
	flag.Parse()
	for c := range strings.SplitSeq(channels, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.Channels = append(o.Channels, c)
		}
	}
	if o.Image == "" && o.Version != "" {
		o.Image = "ghcr.io/openwmco/wmco:v" + o.Version
	}
	files, err := generate(o)
	if err == nil {
		err = write(o.Root, files)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bundle: %v\n", err)
		os.Exit(1)
	}
	for _, f := range files.names() {
		fmt.Println("wrote", f)
	}
}
