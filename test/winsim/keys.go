package winsim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// AdministratorsAuthorizedKeysPath is where OpenSSH for Windows reads the
// public keys of every member of the Administrators group (the default
// sshd_config's "Match Group administrators"); an administrator's own
// authorized_keys file is ignored.
const AdministratorsAuthorizedKeysPath = `C:\ProgramData\ssh\administrators_authorized_keys`

// UserAuthorizedKeysPath is where sshd reads the public keys of user when
// user is not an administrator.
func UserAuthorizedKeysPath(user string) string {
	return `C:\Users\` + user + `\.ssh\authorized_keys`
}

// SetAdmin makes user a member of the Administrators group (true, the
// default for every user, as Administrator is) or not. User names are
// case-insensitive.
func (h *Host) SetAdmin(user string, admin bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nonAdmins[strings.ToLower(user)] = !admin
	h.accounts[strings.ToLower(user)] = true
}

// AddAccount makes user a local account of the host (an administrator
// unless SetAdmin says otherwise); sshd lets in only local accounts.
func (h *Host) AddAccount(user string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.accounts[strings.ToLower(user)] = true
}

// hasAccount reports whether user is a local account: sshd refuses any
// other user, whatever keys the administrators' file lists.
func (h *Host) hasAccount(user string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accounts[strings.ToLower(user)]
}

// IsAdmin reports whether user is a member of the Administrators group.
func (h *Host) IsAdmin(user string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.nonAdmins[strings.ToLower(user)]
}

// AuthorizedKeysPath is the file the SSH server reads user's public keys
// from, at every login: AdministratorsAuthorizedKeysPath for an
// administrator, else UserAuthorizedKeysPath(user).
func (h *Host) AuthorizedKeysPath(user string) string {
	if h.IsAdmin(user) {
		return AdministratorsAuthorizedKeysPath
	}
	return UserAuthorizedKeysPath(user)
}

// AuthorizeKey lets user log in with key (creating the local account
// user if the host lacks it): it appends the key to user's
// authorized keys file (AuthorizedKeysPath), creating the file and its
// directory, unless the file lists it already. For an administrator that
// is the file all administrators share.
func (h *Host) AuthorizeKey(user string, key ssh.PublicKey) {
	h.AddAccount(user)
	p := h.AuthorizedKeysPath(user)
	data, err := h.disk.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.log.Error("Cannot read authorized keys", "path", p, "err", err)
		return
	}
	want := key.Marshal()
	for _, k := range parseAuthorizedKeys(data) {
		if bytes.Equal(k.Marshal(), want) {
			return
		}
	}
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\r', '\n')
	}
	data = append(data, bytes.TrimSpace(ssh.MarshalAuthorizedKey(key))...)
	data = append(data, '\r', '\n')
	if err := h.disk.WriteFile(p, data); err != nil {
		h.log.Error("Cannot write authorized keys", "path", p, "err", err)
	}
}

// RevokeKeys removes every key from user's authorized keys file, keeping
// its other lines. For an administrator that is the file all
// administrators share: every administrator loses key access.
func (h *Host) RevokeKeys(user string) {
	p := h.AuthorizedKeysPath(user)
	data, err := h.disk.ReadFile(p)
	if err != nil {
		return
	}
	var kept []byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if _, ok := parseAuthorizedKeyLine(line); ok || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		kept = append(append(kept, bytes.TrimRight(line, "\r")...), '\r', '\n')
	}
	if err := h.disk.WriteFile(p, kept); err != nil {
		h.log.Error("Cannot write authorized keys", "path", p, "err", err)
	}
}

// AuthorizedKeys returns the public keys the SSH server accepts for user
// at this moment, as it reads them at a login: nil when the file is
// missing or its permissions make sshd refuse it.
func (h *Host) AuthorizedKeys(user string) []ssh.PublicKey {
	p := h.AuthorizedKeysPath(user)
	data, err := h.disk.ReadFile(p)
	if err != nil {
		return nil
	}
	if p == AdministratorsAuthorizedKeysPath {
		sddl, err := h.disk.Security(p)
		if err != nil {
			return nil
		}
		if err := checkAdminKeysSecurity(sddl); err != nil {
			h.log.Info("Authentication refused: bad permissions", "path", p, "err", err)
			return nil
		}
	}
	return parseAuthorizedKeys(data)
}

func (h *Host) isAuthorized(user string, key ssh.PublicKey) bool {
	if !h.hasAccount(user) {
		return false
	}
	want := key.Marshal()
	for _, k := range h.AuthorizedKeys(user) {
		if bytes.Equal(k.Marshal(), want) {
			return true
		}
	}
	return false
}

// parseAuthorizedKeys reads an authorized_keys file as sshd does: one key
// per line, optionally preceded by options and followed by a comment;
// blank lines, comments and lines that are not a valid key are skipped.
// Lines may end in CRLF.
func parseAuthorizedKeys(data []byte) []ssh.PublicKey {
	var out []ssh.PublicKey
	for _, line := range bytes.Split(data, []byte("\n")) {
		if k, ok := parseAuthorizedKeyLine(line); ok {
			out = append(out, k)
		}
	}
	return out
}

func parseAuthorizedKeyLine(line []byte) (ssh.PublicKey, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return nil, false
	}
	k, _, _, rest, err := ssh.ParseAuthorizedKey(line)
	// ParseAuthorizedKey would skip a bad line and parse the next: one
	// line at a time, rest is always empty.
	if err != nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, false
	}
	return k, true
}

// checkAdminKeysSecurity is sshd's check of administrators_authorized_keys:
// a file with its own security descriptor must be owned by SYSTEM or
// Administrators and let no one else write to it. A file that inherits
// C:\ProgramData\ssh's descriptor passes (that folder's inheritable
// entries give others read access only).
func checkAdminKeysSecurity(sddl string) error {
	if sddl == "" {
		return nil
	}
	owner, dacl := sddlParts(sddl)
	if owner != "" && owner != "SY" && owner != "BA" {
		return fmt.Errorf("owned by %s, not SYSTEM or Administrators", owner)
	}
	if dacl == "" {
		return errors.New("no DACL: everyone has full access")
	}
	for _, ace := range strings.Split(strings.Trim(dacl, "()"), ")(") {
		f := strings.Split(ace, ";")
		if len(f) != 6 {
			return fmt.Errorf("malformed ACE %q", ace)
		}
		if f[0] != "A" || f[5] == "SY" || f[5] == "BA" {
			continue
		}
		if grantsWrite(f[2]) {
			return fmt.Errorf("%s may write to it", f[5])
		}
	}
	return nil
}

// sddlParts returns the owner SID and the DACL's entries ("(A;;FA;;;SY)...")
// of an SDDL string ("O:owner G:group D:flags(ace)... S:...").
func sddlParts(sddl string) (owner, dacl string) {
	parts := map[byte]string{}
	depth, section, from := 0, byte(0), 0
	for i := 0; i < len(sddl); i++ {
		switch c := sddl[i]; {
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.IndexByte("OGDS", c) >= 0 && i+1 < len(sddl) && sddl[i+1] == ':':
			if section != 0 {
				parts[section] = sddl[from:i]
			}
			section, from = c, i+2
			i++
		}
	}
	if section != 0 {
		parts[section] = sddl[from:]
	}
	dacl = parts['D']
	if i := strings.IndexByte(dacl, '('); i >= 0 {
		dacl = dacl[i:]
	} else {
		dacl = ""
	}
	return parts['O'], dacl
}

// grantsWrite reports whether an ACE's rights string (SDDL codes such as
// "FA", "FR", "GW" or a hex mask) includes any right to change the file or
// its security.
func grantsWrite(rights string) bool {
	if v, ok := strings.CutPrefix(strings.ToLower(rights), "0x"); ok {
		m, err := strconv.ParseUint(v, 16, 32)
		// FILE_WRITE_DATA, FILE_APPEND_DATA, FILE_WRITE_EA,
		// FILE_WRITE_ATTRIBUTES, DELETE, WRITE_DAC, WRITE_OWNER,
		// GENERIC_ALL, GENERIC_WRITE.
		return err != nil || m&0x500D0116 != 0
	}
	for i := 0; i+2 <= len(rights); i += 2 {
		switch rights[i : i+2] {
		case "FA", "FW", "GA", "GW", "WD", "WO", "SD", "KA", "KW":
			return true
		}
	}
	return false
}

// UserKey is an SSH key pair a client logs in with.
type UserKey struct {
	// PEM is the private key, PKCS #8 in PEM, as a credentials Secret
	// holds it.
	PEM []byte
	// Signer signs with the private key.
	Signer ssh.Signer
	// Fingerprint is the public key's SHA256 fingerprint ("SHA256:...").
	Fingerprint string
}

// PublicKey returns the public key.
func (k UserKey) PublicKey() ssh.PublicKey { return k.Signer.PublicKey() }

// AuthorizedKey returns the public key as an authorized_keys line
// ("ssh-ed25519 AAAA...").
func (k UserKey) AuthorizedKey() string { return authorizedKey(k.PublicKey()) }

// NewUserKey generates an Ed25519 key pair for a client.
func NewUserKey() (UserKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return UserKey{}, fmt.Errorf("winsim: generate user key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return UserKey{}, fmt.Errorf("winsim: encode user key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return UserKey{}, fmt.Errorf("winsim: user key: %w", err)
	}
	return UserKey{
		PEM:         pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Signer:      signer,
		Fingerprint: ssh.FingerprintSHA256(signer.PublicKey()),
	}, nil
}
