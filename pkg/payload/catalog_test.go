/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
)

func catalogOf(kube ...string) *Catalog {
	var entries []Entry
	for _, k := range kube {
		m := validManifest()
		m.KubernetesVersion, m.Version = k, k+"-wmco.1"
		entries = append(entries, Entry{Dir: "/payload/" + k, Manifest: m})
	}
	return NewCatalog(entries...)
}

func TestCatalogSelect(t *testing.T) {
	g := NewWithT(t)
	c := catalogOf("v1.35.4", "v1.37.2", "v1.36.9")
	g.Expect(c.KubernetesVersions()).To(Equal([]string{"v1.37.2", "v1.36.9", "v1.35.4"}))
	for _, tc := range []struct {
		server, want string
	}{
		{"v1.37.2", "v1.37.2"},
		{"v1.37.0", "v1.37.2"}, // same minor: a newer patch is allowed by CheckSkew
		{"v1.36.1", "v1.36.9"},
		{"v1.39.0-rc.1", "v1.37.2"},
		{"v1.38.3+k3s1", "v1.37.2"},
	} {
		e, err := c.Select(tc.server)
		g.Expect(err).NotTo(HaveOccurred(), tc.server)
		g.Expect(e.Manifest.KubernetesVersion).To(Equal(tc.want), tc.server)
	}
	for _, server := range []string{"v1.34.9", "v1.41.0", "v2.0.0"} {
		_, err := c.Select(server)
		var skew *SkewError
		g.Expect(errors.As(err, &skew)).To(BeTrue(), server)
		g.Expect(skew.Server).To(Equal(server))
		g.Expect(err.Error()).To(ContainSubstring("v1.37.2, v1.36.9, v1.35.4"))
	}
	e, ok := c.Get("v1.36.9-wmco.1")
	g.Expect(ok).To(BeTrue())
	g.Expect(e.Dir).To(Equal("/payload/v1.36.9"))
	_, ok = c.Get("v1.33.0-wmco.1")
	g.Expect(ok).To(BeFalse())
}
