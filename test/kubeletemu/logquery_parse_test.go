package kubeletemu

import (
	"net/url"
	"testing"

	. "github.com/onsi/gomega"
)

func TestParseLogQuery(t *testing.T) {
	cases := []struct {
		name     string
		query    string
		services []string
		files    []string
		opts     bool
		wantErr  string
	}{
		{"one service", "query=kubelet", []string{"kubelet"}, nil, false, ""},
		{"services in order", "query=kube-proxy&query=kubelet", []string{"kube-proxy", "kubelet"}, nil, false, ""},
		{"a file by its slash", `query=kubelet\kubelet.log`, nil, []string{`kubelet\kubelet.log`}, false, ""},
		{"blank", "query=%20", nil, nil, false, "may not be empty"},
		{"service and file", "query=kubelet&query=a/b.log", nil, nil, false, "cannot specify a file and service"},
		{"two files", "query=a/b&query=c/d", nil, nil, false, "more than one file"},
		{"five services", "query=a&query=b&query=c&query=d&query=e", nil, nil, false, "Too many"},
		{"shell characters", "query=kubelet%3Becho", nil, nil, false, "unsupported characters"},
		{"options", "query=kubelet&tailLines=10&pattern=err", []string{"kubelet"}, nil, true, ""},
		{"bad time", "query=kubelet&sinceTime=yesterday", nil, nil, false, "invalid time format"},
		{"boot on Windows", "query=kubelet&boot=0", nil, nil, false, "not supported on Windows"},
		{"too many lines", "query=kubelet&tailLines=100001", nil, nil, false, "must be between"},
		{"bad pattern", "query=kubelet&pattern=(", nil, nil, false, "pattern"},
		{"file with options", "query=a/b.log&tailLines=1", nil, nil, false, "file with options"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			q, err := url.ParseQuery(tc.query)
			g.Expect(err).NotTo(HaveOccurred())
			services, files, opts, err := parseLogQuery(q)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(services).To(Equal(tc.services))
			g.Expect(files).To(Equal(tc.files))
			g.Expect(opts).To(Equal(tc.opts))
		})
	}
}

// FuzzParseLogQuery: any query either fails or names only services made
// of the kubelet's safe characters (which reach no shell) or one file.
func FuzzParseLogQuery(f *testing.F) {
	for _, s := range []string{"query=kubelet", "query=a/b", "query=x&tailLines=3", "query=%3B&pattern=("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		services, files, _, err := parseLogQuery(q)
		if err != nil {
			return
		}
		if len(services) > 0 == (len(files) > 0) || len(files) > 1 || len(services) > maxServices {
			t.Fatalf("services %q files %q", services, files)
		}
		for _, s := range services {
			if unsafeServiceName.MatchString(s) {
				t.Fatalf("unsafe service %q accepted", s)
			}
		}
	})
}
