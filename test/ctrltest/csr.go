package ctrltest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
)

// CSRNamesNode reports whether the CSR was sent by the Node nodeName or
// asks for a certificate of it (its subject's CN is system:node:<name>).
func CSRNamesNode(csr *certificatesv1.CertificateSigningRequest, nodeName string) (bool, error) {
	want := "system:node:" + nodeName
	if csr.Spec.Username == want {
		return true, nil
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return false, fmt.Errorf("CSR %s has no PEM request", csr.Name)
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return false, fmt.Errorf("CSR %s: %w", csr.Name, err)
	}
	return req.Subject.CommonName == want, nil
}
