package instance

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/remote"
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

// Only a Machine's host never reached so far gets the first-boot
// allowance; its refusal is not terminal but still an auth error.
func TestFirstBoot(t *testing.T) {
	machine := map[string]string{wmcov1.LabelSource: wmcov1.SourceMachine}
	cases := []struct {
		name            string
		labels          map[string]string
		fingerprint, hk string
		want            bool
	}{
		{"machine never reached", machine, "", "", true},
		{"machine reached before", machine, "SHA256:a", "ssh-ed25519 AAAA", false},
		{"machine whose host key was learnt", machine, "", "ssh-ed25519 AAAA", false},
		{"listed by an admin", nil, "", "", false},
		{"from the ConfigMap", map[string]string{wmcov1.LabelSource: wmcov1.SourceConfigMap}, "", "", false},
	}
	for _, c := range cases {
		wi := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Labels: c.labels}}
		wi.Status.AuthorizedKeyFingerprint, wi.Status.HostKey = c.fingerprint, c.hk
		NewWithT(t).Expect(firstBoot(wi)).To(Equal(c.want), c.name)
	}

	g := NewWithT(t)
	err := fmt.Errorf("connect: %w", &keyNotAuthorizedYetError{User: "Administrator", Fingerprint: "SHA256:new", Tried: 2,
		Err: &remote.AuthError{Address: "h:22", User: "Administrator", Reason: "host rejected the public key"}})
	o := classifyConnectError(err)
	g.Expect(o.reason).To(Equal(ReasonKeyNotAuthorizedYet))
	g.Expect(o.terminal()).To(BeFalse())
	g.Expect(o.message).To(And(ContainSubstring("SHA256:new"), ContainSubstring("2 earlier key(s)"), ContainSubstring("windows-user-data"), ContainSubstring("retried")))
	g.Expect(sshErrorType(err)).To(Equal("auth"))
}
