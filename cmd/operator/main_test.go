/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package main

import (
	"errors"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/testpayload"
)

// The operator configures hosts with the newest payload the version-skew
// policy allows against the API server, and refuses to start with none.
func TestLoadPayloadBySkew(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	for _, kv := range []string{"v1.38.0", "v1.37.2", "v1.33.1"} {
		_, err := testpayload.Write(filepath.Join(dir, kv), testpayload.Options{Version: kv + "-test", KubernetesVersion: kv})
		g.Expect(err).NotTo(HaveOccurred())
	}
	for _, tc := range []struct {
		server, want string
	}{
		{"v1.38.2", "v1.38.0"},
		{"v1.37.2", "v1.37.2"}, // v1.38.0 would be newer than the API server
		{"v1.36.0+k3s1", "v1.33.1"},
		{"v1.39.0", "v1.38.0"},
	} {
		m, chosen, versions, err := loadPayload(dir, tc.server)
		g.Expect(err).NotTo(HaveOccurred(), tc.server)
		g.Expect(m.KubernetesVersion).To(Equal(tc.want), tc.server)
		g.Expect(chosen).To(Equal(filepath.Join(dir, tc.want)))
		g.Expect(versions).To(Equal([]string{"v1.38.0", "v1.37.2", "v1.33.1"}))
	}

	// None fits: refused, naming the API server's version and every payload.
	_, _, _, err := loadPayload(dir, "v1.32.4")
	var se *payload.SkewError
	g.Expect(errors.As(err, &se)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("v1.32.4"), ContainSubstring("v1.38.0, v1.37.2, v1.33.1")))

	// A single payload in the directory itself is held to the same rule.
	single := t.TempDir()
	_, err = testpayload.Write(single, testpayload.Options{KubernetesVersion: "v1.38.0"})
	g.Expect(err).NotTo(HaveOccurred())
	_, _, _, err = loadPayload(single, "v1.37.2")
	g.Expect(err).To(MatchError(ContainSubstring("kubelet v1.38.0 is newer than the API server v1.37.2")))
	m, chosen, _, err := loadPayload(single, "v1.38.0")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chosen).To(Equal(single))
	g.Expect(m.KubernetesVersion).To(Equal("v1.38.0"))
}
