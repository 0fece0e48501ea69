package remote

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// DefaultPort is the SSH port used when Target.Port is zero.
const DefaultPort = 22

// Target says which host to reach and how to prove who we are and who it is.
type Target struct {
	// Address is an IPv4 or IPv6 address (brackets optional, zone allowed)
	// or a DNS name, without a port.
	Address string
	// Port is the SSH port; zero means 22.
	Port int
	// Username is the Windows account to log in as.
	Username string
	// PrivateKey is an RSA, ECDSA or Ed25519 private key, PEM ("BEGIN RSA
	// PRIVATE KEY", "BEGIN EC PRIVATE KEY", "BEGIN PRIVATE KEY") or OpenSSH
	// ("BEGIN OPENSSH PRIVATE KEY") encoded, unencrypted.
	PrivateKey PrivateKey
	// HostKey pins the host's public key, in authorized_keys format
	// ("ssh-ed25519 AAAA..."; options and comment are ignored). When set,
	// any other key fails the dial with *HostKeyMismatchError.
	HostKey string
	// TrustOnFirstUse accepts whatever key the host presents when HostKey is
	// empty; Session.HostKey returns it so the caller can pin it. It is
	// ignored when HostKey is set. With neither set, Dial refuses to
	// connect.
	TrustOnFirstUse bool
}

// String returns "user@host:port", never key material.
func (t Target) String() string {
	return t.Username + "@" + t.hostPort()
}

// hostPort returns the address to dial, brackets added for IPv6.
func (t Target) hostPort() string {
	return net.JoinHostPort(t.host(), strconv.Itoa(t.port()))
}

// host returns the address without brackets.
func (t Target) host() string {
	return strings.TrimSuffix(strings.TrimPrefix(t.Address, "["), "]")
}

// port returns the port to dial.
func (t Target) port() int {
	if t.Port == 0 {
		return DefaultPort
	}
	return t.Port
}

// validate checks the fields that do not need parsing.
func (t Target) validate() error {
	host := t.host()
	switch {
	case host == "":
		return errors.New("target address is empty")
	case strings.ContainsAny(host, " \t\r\n/"):
		return fmt.Errorf("target address %q is not a host name or IP address", t.Address)
	case strings.Contains(host, ":") && net.ParseIP(strings.SplitN(host, "%", 2)[0]) == nil:
		return fmt.Errorf("target address %q must not include a port", t.Address)
	case t.Port < 0 || t.Port > 65535:
		return fmt.Errorf("target port %d out of range", t.Port)
	case t.Username == "":
		return errors.New("target username is empty")
	case len(t.PrivateKey) == 0:
		return errors.New("target private key is empty")
	case t.HostKey == "" && !t.TrustOnFirstUse:
		return errors.New("target has no pinned host key and trust on first use is off")
	}
	return nil
}

// PrivateKey holds private key bytes. It redacts itself when formatted with
// any fmt verb, marshalled to JSON or text, or logged through logr, so a
// Target can be logged or printed by mistake without leaking the key.
// Plain []byte values are assignable to it.
type PrivateKey []byte

const redacted = "[redacted]"

// Format implements fmt.Formatter.
func (PrivateKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// String implements fmt.Stringer.
func (PrivateKey) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (PrivateKey) GoString() string { return redacted }

// MarshalText implements encoding.TextMarshaler.
func (PrivateKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalJSON implements json.Marshaler.
func (PrivateKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalLog implements logr.Marshaler.
func (PrivateKey) MarshalLog() any { return redacted }

// CanonicalHostKey parses a public key in authorized_keys format and returns
// it as "<type> <base64>", without options or comment. Use it to validate
// and store a pinned key. Certificates are refused.
func CanonicalHostKey(s string) (string, error) {
	k, err := parseHostKey(s)
	if err != nil {
		return "", err
	}
	return marshalHostKey(k), nil
}

// HostKeyFingerprint returns the SHA256 fingerprint ("SHA256:...") of a
// public key in authorized_keys format, as ssh-keygen -l prints it.
func HostKeyFingerprint(s string) (string, error) {
	k, err := parseHostKey(s)
	if err != nil {
		return "", err
	}
	return ssh.FingerprintSHA256(k), nil
}

func parseHostKey(s string) (ssh.PublicKey, error) {
	k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("parse host key: %w", err)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("parse host key: more than one key given")
	}
	if _, ok := k.(*ssh.Certificate); ok {
		return nil, errors.New("parse host key: certificates are not supported")
	}
	return k, nil
}

func marshalHostKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// tofuHostKeyAlgorithms is the preference order offered when no key is
// pinned: the key types Windows OpenSSH generates, strongest first, without
// SHA-1 signatures or DSA.
var tofuHostKeyAlgorithms = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// hostKeyAlgorithms returns the signature algorithms to offer in the key
// exchange so that a host holding several keys presents the pinned one
// rather than another (which would look like a mismatch). nil means the
// pinned key is unset.
func hostKeyAlgorithms(k ssh.PublicKey) []string {
	if k == nil {
		return tofuHostKeyAlgorithms
	}
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{k.Type()}
}
