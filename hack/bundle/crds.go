package main

import (
	"fmt"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/operator-framework/api/pkg/operators/v1alpha1"
)

// The x-descriptors OLM's console understands
// (https://github.com/openshift/console/blob/main/frontend/packages/operator-lifecycle-manager/src/components/descriptors/reference/reference.md).
const (
	xText       = "urn:alm:descriptor:com.tectonic.ui:text"
	xNumber     = "urn:alm:descriptor:com.tectonic.ui:number"
	xBoolean    = "urn:alm:descriptor:com.tectonic.ui:booleanSwitch"
	xAdvanced   = "urn:alm:descriptor:com.tectonic.ui:advanced"
	xSecret     = "urn:alm:descriptor:io.kubernetes:Secret"
	xNode       = "urn:alm:descriptor:io.kubernetes:Node"
	xConditions = "urn:alm:descriptor:io.kubernetes.conditions"
	xPhase      = "urn:alm:descriptor:io.kubernetes.phase"
	xTaints     = "urn:alm:descriptor:com.tectonic.ui:arrayFieldGroup:taints"
	xFieldGroup = "urn:alm:descriptor:com.tectonic.ui:fieldGroup:"
	xSelect     = "urn:alm:descriptor:com.tectonic.ui:select:"
)

// crdDescription is what the CSV says about one owned CRD beyond what the
// CRD itself holds. Every descriptor path must exist in the CRD's schema:
// the generator fails otherwise, so that a renamed field cannot leave a
// stale descriptor behind.
type crdDescription struct {
	DisplayName string
	Description string
	// Resources are the native objects instances of the kind make the
	// operator create or own.
	Resources []v1alpha1.APIResourceReference
	Spec      []v1alpha1.SpecDescriptor
	Status    []v1alpha1.StatusDescriptor
}

// owned describes the CRDs by kind. A CRD in the configuration without an
// entry here fails the generator.
var owned = map[string]crdDescription{
	"WindowsInstance": {
		DisplayName: "Windows Instance",
		Description: "One Windows Server host that the operator makes a Kubernetes node: how to reach it over SSH, and its state.",
		Resources: []v1alpha1.APIResourceReference{
			{Kind: "Node", Name: "nodes", Version: "v1"},
			{Kind: "CertificateSigningRequest", Name: "certificatesigningrequests", Version: "v1"},
		},
		Spec: []v1alpha1.SpecDescriptor{
			{Path: "address", DisplayName: "Address", Description: "IPv4 or IPv6 address or DNS name of the host.", XDescriptors: []string{xText}},
			{Path: "username", DisplayName: "Username", Description: "SSH user, an administrator of the host.", XDescriptors: []string{xText}},
			{Path: "port", DisplayName: "SSH port", Description: "SSH port of the host (default 22).", XDescriptors: []string{xNumber}},
			{Path: "credentialsSecretRef", DisplayName: "Credentials", Description: "Secret key holding the SSH private key.", XDescriptors: []string{xFieldGroup + "credentialsSecretRef"}},
			{Path: "credentialsSecretRef.name", DisplayName: "Secret", Description: "Name of the Secret holding the SSH private key.", XDescriptors: []string{xFieldGroup + "credentialsSecretRef", xSecret}},
			{Path: "credentialsSecretRef.key", DisplayName: "Key", Description: "Key of the Secret's data holding the SSH private key.", XDescriptors: []string{xFieldGroup + "credentialsSecretRef", xText}},
			{Path: "hostKey", DisplayName: "Pinned host key", Description: "The host's SSH public key; empty: trusted on first use.", XDescriptors: []string{xText, xAdvanced}},
			{Path: "nodeName", DisplayName: "Node name", Description: "Name of the Node; default the host's hostname.", XDescriptors: []string{xText, xAdvanced}},
			{Path: "paused", DisplayName: "Paused", Description: "Leave the host alone.", XDescriptors: []string{xBoolean}},
		},
		Status: []v1alpha1.StatusDescriptor{
			{Path: "phase", DisplayName: "Phase", Description: "Where the host is on its way to being a Ready node.", XDescriptors: []string{xPhase}},
			{Path: "conditions", DisplayName: "Conditions", Description: "Reachable, PreflightPassed, Configured, NodeReady, Ready, Reconciling, Stalled.", XDescriptors: []string{xConditions}},
			{Path: "nodeName", DisplayName: "Node", Description: "The Node this host became.", XDescriptors: []string{xNode}},
			{Path: "payloadVersion", DisplayName: "Version", Description: "Version of the node software applied to the host.", XDescriptors: []string{xText}},
			{Path: "message", DisplayName: "Message", Description: "The last problem, in words.", XDescriptors: []string{xText}},
			{Path: "hostKey", DisplayName: "Host key", Description: "The host's SSH public key as pinned.", XDescriptors: []string{xText}},
		},
	},
	"WindowsNodeConfig": {
		DisplayName: "Windows Node Config",
		Description: "Cluster-wide settings for Windows nodes (the singleton named cluster): network, taints, concurrency, log rotation, containerd.",
		Spec: []v1alpha1.SpecDescriptor{
			{Path: "network.type", DisplayName: "Network type", Description: "OVNHybridOverlay, or None to bring your own.", XDescriptors: []string{xSelect + "OVNHybridOverlay", xSelect + "None"}},
			{Path: "taints", DisplayName: "Taints", Description: "Taints put on every Windows node.", XDescriptors: []string{xTaints}},
			{Path: "maxParallelConfigurations", DisplayName: "Parallel configurations", Description: "Hosts configured at once.", XDescriptors: []string{xNumber}},
			{Path: "maxUnavailable", DisplayName: "Max unavailable", Description: "Hosts upgraded at once (a number or a percentage).", XDescriptors: []string{xText, xAdvanced}},
			{Path: "logRotation.maxFileSizeMiB", DisplayName: "Log file size (MiB)", Description: "Size at which node logs rotate.", XDescriptors: []string{xNumber, xAdvanced}},
			{Path: "logRotation.maxAgeDays", DisplayName: "Log age (days)", Description: "Age after which rotated logs are removed.", XDescriptors: []string{xNumber, xAdvanced}},
			{Path: "containerd.pauseImage", DisplayName: "Pause image", Description: "Image of the pod sandbox on Windows nodes.", XDescriptors: []string{xText, xAdvanced}},
		},
		Status: []v1alpha1.StatusDescriptor{
			{Path: "conditions", DisplayName: "Conditions", Description: "Whether the configuration is valid and applied.", XDescriptors: []string{xConditions}},
		},
	},
}

// ownedCRDs describes each CRD of the configuration for the CSV, sorted by
// name, checking every descriptor path against the CRD's schema.
func ownedCRDs(crds []*apiextv1.CustomResourceDefinition) ([]v1alpha1.CRDDescription, error) {
	var out []v1alpha1.CRDDescription
	for _, crd := range crds {
		d, ok := owned[crd.Spec.Names.Kind]
		if !ok {
			return nil, fmt.Errorf("CRD %s has no description for the CSV: add %q to owned in hack/bundle/crds.go", crd.Name, crd.Spec.Names.Kind)
		}
		v := storageVersion(crd)
		if v == nil {
			return nil, fmt.Errorf("CRD %s has no served storage version", crd.Name)
		}
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("CRD %s version %s has no schema", crd.Name, v.Name)
		}
		root := v.Schema.OpenAPIV3Schema.Properties
		for _, s := range d.Spec {
			if err := hasPath(root["spec"], s.Path); err != nil {
				return nil, fmt.Errorf("CRD %s: spec descriptor %s: %w", crd.Name, s.Path, err)
			}
		}
		for _, s := range d.Status {
			if err := hasPath(root["status"], s.Path); err != nil {
				return nil, fmt.Errorf("CRD %s: status descriptor %s: %w", crd.Name, s.Path, err)
			}
		}
		out = append(out, v1alpha1.CRDDescription{
			Name: crd.Name, Version: v.Name, Kind: crd.Spec.Names.Kind,
			DisplayName: d.DisplayName, Description: d.Description, Resources: d.Resources,
			SpecDescriptors: d.Spec, StatusDescriptors: d.Status,
		})
	}
	if len(out) != len(owned) {
		return nil, fmt.Errorf("hack/bundle/crds.go describes %d kinds but the configuration holds %d CRDs", len(owned), len(out))
	}
	return out, nil
}

func storageVersion(crd *apiextv1.CustomResourceDefinition) *apiextv1.CustomResourceDefinitionVersion {
	for i := range crd.Spec.Versions {
		if v := &crd.Spec.Versions[i]; v.Storage && v.Served {
			return v
		}
	}
	return nil
}

// hasPath reports whether a dotted descriptor path names a property of the
// schema (through arrays' items).
func hasPath(s apiextv1.JSONSchemaProps, path string) error {
	for part := range strings.SplitSeq(path, ".") {
		for s.Type == "array" && s.Items != nil && s.Items.Schema != nil {
			s = *s.Items.Schema
		}
		p, ok := s.Properties[part]
		if !ok {
			return fmt.Errorf("no field %q in the schema", part)
		}
		s = p
	}
	return nil
}
