/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/servingcert"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

func exporterTLS(t *testing.T, name string) ExporterTLS {
	t.Helper()
	certPEM, keyPEM, err := servingcert.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := servingcert.ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := ca.Issue(servingcert.Request{CommonName: name, DNSNames: []string{name}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ExporterTLS{CertPEM: issued.CertPEM, KeyPEM: issued.KeyPEM}
}

func exporterService(t *testing.T, plan *wicdapi.Plan) wicdapi.Service {
	t.Helper()
	i := slices.IndexFunc(plan.Services, func(s wicdapi.Service) bool { return s.Name == ServiceWindowsExporter })
	if i < 0 {
		t.Fatal("no windows_exporter service")
	}
	return plan.Services[i]
}

// Without a certificate windows_exporter serves plain HTTP and the plan
// has no web configuration; with one, the plan writes its web
// configuration, certificate and key (the key sensitive: readable by
// administrators only), and points windows_exporter at the configuration.
func TestExporterTLS(t *testing.T) {
	g := NewWithT(t)
	plain := mustRender(t, testInputs(t))
	g.Expect(exporterService(t, plain).Args).NotTo(ContainElement(HavePrefix("--web.config.file")))
	g.Expect(hasFile(plain, WindowsExporterWebConfigPath)).To(BeFalse())

	in := testInputs(t)
	in.ExporterTLS = exporterTLS(t, in.NodeName)
	plan := mustRender(t, in)
	g.Expect(exporterService(t, plan).Args).To(ContainElement("--web.config.file=" + WindowsExporterWebConfigPath))
	g.Expect(plan.Directories).To(ContainElement(WindowsExporterDir))
	cert := file(t, plan, WindowsExporterCertPath)
	g.Expect(cert.Content).To(Equal(in.ExporterTLS.CertPEM))
	g.Expect(cert.Sensitive).To(BeFalse())
	key := file(t, plan, WindowsExporterKeyPath)
	g.Expect(key.Content).To(Equal(in.ExporterTLS.KeyPEM))
	g.Expect(key.Sensitive).To(BeTrue())
	web := string(file(t, plan, WindowsExporterWebConfigPath).Content)
	g.Expect(web).To(ContainSubstring("tls_server_config:\n  cert_file: '" + WindowsExporterCertPath + "'\n  key_file: '" + WindowsExporterKeyPath + "'\n"))
	g.Expect(file(t, plan, WindowsExporterWebConfigPath).Sensitive).To(BeFalse())

	// Another certificate changes the web configuration (which restarts
	// windows_exporter) and no other service's settings.
	in2 := in
	in2.ExporterTLS = exporterTLS(t, in.NodeName)
	plan2 := mustRender(t, in2)
	g.Expect(string(file(t, plan2, WindowsExporterWebConfigPath).Content)).NotTo(Equal(web))
	g.Expect(plan2.Services).To(Equal(plan.Services))
	for _, s := range plan.Services {
		if s.Name != ServiceWindowsExporter {
			g.Expect(strings.Join(s.Args, " ")).NotTo(ContainSubstring(WindowsExporterDir), s.Name)
		}
	}
}

// A certificate without its key, or with another's, is refused, and the
// error quotes neither.
func TestExporterTLSInvalid(t *testing.T) {
	a, b := exporterTLS(t, "a"), exporterTLS(t, "b")
	for _, tc := range []struct {
		name string
		tls  ExporterTLS
	}{
		{"no key", ExporterTLS{CertPEM: a.CertPEM}},
		{"no certificate", ExporterTLS{KeyPEM: a.KeyPEM}},
		{"another's key", ExporterTLS{CertPEM: a.CertPEM, KeyPEM: b.KeyPEM}},
		{"garbage", ExporterTLS{CertPEM: []byte("cert"), KeyPEM: []byte("secret-key-material")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := testInputs(t)
			in.ExporterTLS = tc.tls
			_, err := Render(in)
			g.Expect(err).To(MatchError(ErrInvalidInputs))
			g.Expect(err.Error()).To(ContainSubstring("exporterTLS"))
			g.Expect(err.Error()).NotTo(ContainSubstring("PRIVATE KEY"))
			g.Expect(err.Error()).NotTo(ContainSubstring("secret-key-material"))
		})
	}
}
