package instance

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestHistoryDataKeyIsAValidSecretKey(t *testing.T) {
	g := NewWithT(t)
	seen := map[string]string{}
	for range 200 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		g.Expect(err).NotTo(HaveOccurred())
		k, err := ssh.NewPublicKey(pub)
		g.Expect(err).NotTo(HaveOccurred())
		fp := ssh.FingerprintSHA256(k)
		key := historyDataKey(fp)
		g.Expect(validation.IsConfigMapKey(key)).To(BeEmpty(), key)
		g.Expect(seen).NotTo(HaveKey(key), "distinct fingerprints, distinct keys")
		seen[key] = fp
	}
	g.Expect(historyDataKey("SHA256:ab+c/d")).To(Equal("SHA256.ab-c_d"))
}

func TestPublicKeyLine(t *testing.T) {
	g := NewWithT(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	g.Expect(err).NotTo(HaveOccurred())
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	line, fp, err := publicKeyLine(pemKey)
	g.Expect(err).NotTo(HaveOccurred())
	k, err := ssh.NewPublicKey(pub)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(line).To(Equal(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))))
	g.Expect(fp).To(Equal(ssh.FingerprintSHA256(k)))

	_, _, err = publicKeyLine(pemKey[:len(pemKey)/2])
	g.Expect(err).To(MatchError("the private key cannot be parsed"), "no key material in the error")
}
