// Package firstboot is a PLACEHOLDER for the interpreter of a Windows
// Machine's first-boot userData (another change brings the real one): Run
// reads nothing but the public keys in the script, so test/machinesim
// compiles and runs meanwhile.
package firstboot

import (
	"errors"
	"regexp"

	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/platform"
)

// Result is what the first-boot script did to the host.
type Result struct {
	// AuthorizedKeys are the public keys the script authorises.
	AuthorizedKeys []ssh.PublicKey
	// SSHServer is whether the script installs and starts sshd.
	SSHServer bool
	// KeyOnly is whether sshd accepts keys only.
	KeyOnly bool
	// KeysACLRestricted is whether the keys file gets the permissions
	// sshd requires of the administrators' file.
	KeysACLRestricted bool
	// FirewallPorts are the TCP ports the script opens.
	FirewallPorts []int
	// EnabledUser is the account the keys are for.
	EnabledUser string
}

var keyLine = regexp.MustCompile(`(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/=]+`)

// Run interprets userData as the host of platform p would at first boot.
// The placeholder finds the public keys in it and assumes the rest.
func Run(p platform.Profile, userData []byte) (Result, error) {
	if len(userData) == 0 {
		return Result{}, errors.New("firstboot: empty userData")
	}
	res := Result{SSHServer: true, KeyOnly: true, KeysACLRestricted: true, FirewallPorts: []int{22}, EnabledUser: p.Username}
	for _, m := range keyLine.FindAll(userData, -1) {
		k, _, _, _, err := ssh.ParseAuthorizedKey(m)
		if err != nil {
			continue
		}
		res.AuthorizedKeys = append(res.AuthorizedKeys, k)
	}
	return res, nil
}
