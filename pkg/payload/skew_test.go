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

func TestCheckSkew(t *testing.T) {
	for _, tc := range []struct {
		kubelet, server string
		ok              bool
	}{
		{"v1.37.2", "v1.37.2", true},
		{"v1.37.2", "v1.37.0", true}, // patch versions do not matter
		{"v1.37.0", "v1.37.9", true},
		{"v1.34.1", "v1.37.2", true}, // three minors older
		{"v1.33.9", "v1.37.2", false},
		{"v1.38.0", "v1.37.2", false}, // newer than the server
		{"v2.37.0", "v1.37.2", false},
		{"v1.37.2", "v1.37.2+k3s1", true},
		{"v1.37.2", "v1.37.2-gke.100", true},
		{"v1.36.3", "v1.37.0-rc.1", true},
		{"v1.37.2", "", false},
		{"not-a-version", "v1.37.2", false},
		{"v1.37.2", "garbage", false},
	} {
		err := CheckSkew(tc.kubelet, tc.server)
		if (err == nil) != tc.ok {
			t.Errorf("CheckSkew(%q, %q) = %v, want ok=%v", tc.kubelet, tc.server, err, tc.ok)
		}
	}
}

func TestSelectVersion(t *testing.T) {
	avail := []string{"v1.38.0", "v1.37.2", "v1.36.5"}
	for _, tc := range []struct {
		server, want string
	}{
		{"v1.38.1", "v1.38.0"},
		{"v1.37.2", "v1.37.2"}, // v1.38.0 would be newer than the server
		{"v1.36.0", "v1.36.5"},
		{"v1.39.0", "v1.38.0"},
		{"v1.41.0", "v1.38.0"},
		{"v1.42.0", ""}, // all too old
		{"v1.35.9", ""}, // all too new
	} {
		g := NewWithT(t)
		got, err := SelectVersion(avail, tc.server)
		if tc.want == "" {
			var se *SkewError
			g.Expect(errors.As(err, &se)).To(BeTrue(), tc.server)
			g.Expect(se.Available).To(Equal(avail))
			g.Expect(err.Error()).To(ContainSubstring(tc.server))
			g.Expect(err.Error()).To(ContainSubstring("v1.38.0, v1.37.2, v1.36.5"))
			continue
		}
		g.Expect(err).NotTo(HaveOccurred(), tc.server)
		g.Expect(got).To(Equal(tc.want), tc.server)
	}
}

func FuzzCheckSkew(f *testing.F) {
	f.Add("v1.37.2", "v1.37.2")
	f.Add("v1.34.0", "v1.37.0+k3s1")
	f.Fuzz(func(t *testing.T, kubelet, server string) {
		if CheckSkew(kubelet, server) != nil {
			return
		}
		// Whatever it accepts, SelectVersion picks it alone.
		if got, err := SelectVersion([]string{kubelet}, server); err != nil || got != kubelet {
			t.Fatalf("CheckSkew accepts %q on %q but SelectVersion gives %q, %v", kubelet, server, got, err)
		}
	})
}
