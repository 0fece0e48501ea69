package bootstrap

import (
	"encoding/base64"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

const nbUser = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"

// jwt builds a token of the API server's shape (header.claims.signature)
// with the claims.
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("signature"))
}

func TestCredentialID(t *testing.T) {
	cases := []struct {
		name  string
		token string
		want  string
		err   string
	}{
		{"a TokenRequest token", jwt(`{"aud":["https://kubernetes.default.svc"],"exp":1796153922,"jti":"4d56ab02-3441-4173-85b7-627e226a1e59","sub":"` + nbUser + `"}`),
			"JTI=4d56ab02-3441-4173-85b7-627e226a1e59", ""},
		{"no jti", jwt(`{"sub":"` + nbUser + `"}`), "", "no jti claim"},
		{"empty jti", jwt(`{"jti":"","sub":"` + nbUser + `"}`), "", "no jti claim"},
		{"another subject", jwt(`{"jti":"x","sub":"system:serviceaccount:default:builder"}`), "", "is not"},
		{"no subject", jwt(`{"jti":"x"}`), "", "is not"},
		{"subject of another type", jwt(`{"jti":"x","sub":7}`), "", "decode the token's claims"},
		{"claims not JSON", jwt(`not json`), "", "decode the token's claims"},
		{"claims not base64url", "a.b+/=.c", "", "decode the token's claims"},
		{"two parts", "a.b", "", "not a JWT"},
		{"four parts", jwt(`{}`) + ".x", "", "not a JWT"},
		{"a bootstrap token", "abcdef.0123456789abcdef", "", "not a JWT"},
		{"empty", "", "", "not a JWT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := CredentialID(tc.token, nbUser)
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				g.Expect(got).To(BeEmpty())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// FuzzCredentialID: whatever the token, CredentialID either fails or
// returns JTI=<the jti claim> of a token whose subject is the user; it
// never panics, and never puts the token (a credential) into an error.
func FuzzCredentialID(f *testing.F) {
	f.Add(jwt(`{"jti":"4d56ab02","sub":"` + nbUser + `"}`))
	f.Add(jwt(`{"jti":"","sub":"` + nbUser + `"}`))
	f.Add("a.b.c")
	f.Add("..")
	f.Add(jwt(`{"jti":"x","sub":"` + nbUser + `","jti":"y"}`))
	f.Fuzz(func(t *testing.T, token string) {
		got, err := CredentialID(token, nbUser)
		if err != nil {
			if got != "" {
				t.Fatalf("both %q and error %v", got, err)
			}
			if len(token) >= 8 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error quotes the token: %v", err)
			}
			return
		}
		jti, ok := strings.CutPrefix(got, credentialIDJTIPrefix)
		if !ok || jti == "" {
			t.Fatalf("credential ID %q is not JTI=<jti>", got)
		}
		if parts := strings.Split(token, "."); len(parts) != 3 {
			t.Fatalf("accepted a token of %d parts", len(parts))
		}
	})
}
