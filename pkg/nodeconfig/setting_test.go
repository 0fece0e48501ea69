/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	"github.com/openwmco/wmco/pkg/nodeconfig"
)

func TestSettingResolve(t *testing.T) {
	setting := func(config *int32, cluster int32) nodeconfig.Setting[int32] {
		return nodeconfig.Setting[int32]{
			Config: config, ConfigFrom: "config",
			Cluster: cluster, ClusterFrom: "cluster",
			Default: 4789, DefaultFrom: "default",
		}
	}
	cases := []struct {
		name     string
		setting  nodeconfig.Setting[int32]
		want     int32
		wantFrom string
	}{
		{"the config wins", setting(ptr.To[int32](8472), 4790), 8472, "config"},
		{"the config wins with the default's value", setting(ptr.To[int32](4789), 4790), 4789, "config"},
		{"a config of zero is set", setting(ptr.To[int32](0), 4790), 0, "config"},
		{"the cluster's without a config", setting(nil, 4790), 4790, "cluster"},
		{"the default when the cluster's is unknown", setting(nil, 0), 4789, "default"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			v, from := tc.setting.Resolve()
			g.Expect(v).To(Equal(tc.want))
			g.Expect(from).To(Equal(tc.wantFrom))
		})
	}

	t.Run("strings", func(t *testing.T) {
		g := NewWithT(t)
		s := nodeconfig.Setting[string]{ClusterFrom: "cluster", Default: "vxlan", DefaultFrom: "default"}
		v, from := s.Resolve()
		g.Expect(v).To(Equal("vxlan"))
		g.Expect(from).To(Equal("default"))
		s.Cluster = "host-gw"
		v, from = s.Resolve()
		g.Expect(v).To(Equal("host-gw"))
		g.Expect(from).To(Equal("cluster"))
	})
}
