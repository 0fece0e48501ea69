package wicd_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// The service host's configuration is read strictly: a bad name, a
// missing file, an unknown field and a relative program are refused with
// their codes.
func TestReadServiceHostConfig(t *testing.T) {
	h, err := winsim.Start(context.Background(), winsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	node, err := simagent.Install(h, simagent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := node.Backend().Files
	cases := []struct {
		name, service, content string
		code                   wicdapi.ErrorCode
		want                   *wicdapi.ServiceHostConfig
	}{
		{name: "program and arguments", service: "flanneld", content: `{"binary":"C:\\k\\payload\\v1\\flanneld.exe","args":["--kube-subnet-mgr","a b"]}`,
			want: &wicdapi.ServiceHostConfig{Binary: `C:\k\payload\v1\flanneld.exe`, Args: []string{"--kube-subnet-mgr", "a b"}}},
		{name: "missing", service: "absent", code: wicdapi.CodeNotFound},
		{name: "a name that is a path", service: `..\plan`, code: wicdapi.CodeUsage},
		{name: "unknown field", service: "unknown", content: `{"binary":"C:\\x.exe","env":{}}`, code: wicdapi.CodeInvalidPlan},
		{name: "relative program", service: "relative", content: `{"binary":"flanneld.exe"}`, code: wicdapi.CodeInvalidPlan},
		{name: "NUL in an argument", service: "nularg", content: `{"binary":"C:\\x.exe","args":["a\u0000b"]}`, code: wicdapi.CodeInvalidPlan},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			if tc.content != "" {
				g.Expect(files.MkdirAll(wicdapi.ServiceHostDir)).To(Succeed())
				g.Expect(files.WriteFile(wicdapi.ServiceHostConfigPath(tc.service), []byte(tc.content))).To(Succeed())
			}
			got, err := wicd.ReadServiceHostConfig(files, tc.service)
			if tc.code != "" {
				var we *wicdapi.Error
				g.Expect(errors.As(err, &we)).To(BeTrue(), "%v", err)
				g.Expect(we.Code).To(Equal(tc.code), we.Message)
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// `wicd service-host` refuses to run other than as a Windows service.
func TestServiceHostOnlyAsAService(t *testing.T) {
	g := NewWithT(t)
	h, err := winsim.Start(context.Background(), winsim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	node, err := simagent.Install(h, simagent.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	var stdout, stderr bytes.Buffer
	code := wicd.Main(t.Context(), node.Backend(), wicdapi.ServiceHostArgs("flanneld"), &stdout, &stderr)
	g.Expect(code).To(Equal(2))
	g.Expect(stdout.String()).To(ContainSubstring("runs only as a Windows service"))
}
