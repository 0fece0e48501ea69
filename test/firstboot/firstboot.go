// Package firstboot is a strict interpreter of the windows-user-data
// script, standing in for what runs it on a new Windows VM: EC2Launch or
// cloudbase-init, then Windows PowerShell. A simulated cloud boots its VMs
// through it, so a Machine's host gets exactly the SSH access the real
// userData would give it.
//
// It understands exactly the statement forms pkg/userdata renders, line by
// line, and fails closed on anything else. It is written apart from the
// renderer, so a change to one that the other does not follow fails the
// tests. It refuses, with an error naming the reason, what the platform's
// first-boot agent would not run (a missing or extra envelope) and what
// would not give working key-only SSH as the platform's login user: no
// OpenSSH server, passwords still allowed, no key or a key line that does
// not parse, a keys file whose ACL sshd would ignore, no rule for port 22,
// and on AWS no persisted instance metadata routes.
package firstboot

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/platform"
)

// Paths on the simulated VM.
const (
	// AdministratorsKeysPath is the file sshd reads the keys of members of
	// Administrators from.
	AdministratorsKeysPath = `C:\ProgramData\ssh\administrators_authorized_keys`
	// SSHDConfigPath is sshd's configuration.
	SSHDConfigPath = `C:\ProgramData\ssh\sshd_config`
	// EC2LaunchPath is where EC2Launch v2 is installed.
	EC2LaunchPath = `C:\Program Files\Amazon\EC2Launch\EC2Launch.exe`
)

// LatestEC2Launch is the EC2Launch v2 version the download installs.
const LatestEC2Launch = "2.0.2251"

const (
	openSSHCapability  = "OpenSSH.Server~~~~0.0.1.0"
	sshFirewallRule    = "OpenSSH-Server-In-TCP"
	ec2LaunchURL       = "https://s3.amazonaws.com/amazon-ec2launch-v2/windows/amd64/latest/AmazonEC2Launch.msi"
	addRoutesSince     = "2.0.1643"
	maxStatementLength = 4096
)

// Account is a local account of an image; every one is a member of
// Administrators.
type Account struct {
	Name    string
	Enabled bool
}

// Image is what a VM's disk holds before its first boot.
type Image struct {
	// Accounts are the image's local accounts.
	Accounts []Account
	// EC2LaunchVersion is the installed EC2Launch v2, "" for none.
	EC2LaunchVersion string
}

// ImageFor is the image a Windows MachineSet of platform p typically
// boots: on Azure a capi account with the built-in Administrator
// disabled; on vSphere a sysprepped template whose Administrator is
// disabled; on AWS an enabled Administrator and EC2Launch v2 2.0.1924;
// elsewhere an enabled Administrator.
func ImageFor(p platform.Profile) Image {
	switch {
	case p.Username == "capi":
		return Image{Accounts: []Account{{Name: "Administrator"}, {Name: "capi", Enabled: true}}}
	case p.SetHostname:
		return Image{Accounts: []Account{{Name: "Administrator"}}}
	case p.EC2Launch:
		return Image{Accounts: []Account{{Name: "Administrator", Enabled: true}}, EC2LaunchVersion: "2.0.1924"}
	}
	return Image{Accounts: []Account{{Name: "Administrator", Enabled: true}}}
}

// Result is the state of a VM after its first boot that matters to the
// operator.
type Result struct {
	// AuthorizedKeys are the keys in administrators_authorized_keys.
	AuthorizedKeys []ssh.PublicKey
	// SSHServer: the OpenSSH server is installed, starts automatically
	// and runs.
	SSHServer bool
	// KeyOnly: the running sshd accepts public keys and refuses
	// passwords.
	KeyOnly bool
	// KeysACLRestricted: only SYSTEM and Administrators may access
	// administrators_authorized_keys, inheritance off.
	KeysACLRestricted bool
	// FirewallPorts are the local TCP ports of inbound allow rules,
	// sorted.
	FirewallPorts []int
	// EnabledUser is the account the script readied (capi where the image
	// has it, else Administrator), "" if it is not enabled.
	EnabledUser string
	// EC2LaunchRoutes: EC2Launch's add-routes task persisted the instance
	// metadata routes.
	EC2LaunchRoutes bool
}

// Run boots a VM of platform p from img once with userData and returns
// what it ended up with, and an error if the script would not run or
// would not give working key-only SSH as p.Username.
func Run(p platform.Profile, img Image, userData []byte) (Result, error) {
	return NewVM(p, img).Boot(userData)
}

// VM is a simulated Windows VM that runs its userData at every boot (the
// envelope's <persist>true</persist>).
type VM struct {
	p        platform.Profile
	accounts map[string]*Account // by lower-case name
	dirs     map[string]bool     // lower-case paths
	files    map[string]*file    // by lower-case path
	rules    map[string]int      // firewall rule name -> port
	ec2      string              // EC2Launch version, "" if absent
	routes   bool
	openSSH  bool
	sshd     *service
	booted   int
}

type file struct {
	path    string
	content string
	dacl    string
}

type service struct {
	startup string // Automatic, Manual, Disabled
	running bool
	config  *sshdConfig // as read at the last start
}

// NewVM is a VM of platform p with img on its disk, not booted yet.
func NewVM(p platform.Profile, img Image) *VM {
	v := &VM{p: p, accounts: map[string]*Account{}, dirs: map[string]bool{}, files: map[string]*file{}, rules: map[string]int{}}
	for _, a := range img.Accounts {
		v.accounts[strings.ToLower(a.Name)] = &Account{Name: a.Name, Enabled: a.Enabled}
	}
	for _, d := range []string{`C:`, `C:\ProgramData`, `C:\Program Files`, `C:\Windows`, `C:\Windows\Temp`, `C:\Users`} {
		v.dirs[strings.ToLower(d)] = true
	}
	if img.EC2LaunchVersion != "" {
		v.installEC2Launch(img.EC2LaunchVersion)
	}
	return v
}

// ReadFile returns the content of a file on the VM's disk.
func (v *VM) ReadFile(path string) (string, bool) {
	f, ok := v.files[strings.ToLower(path)]
	if !ok {
		return "", false
	}
	return f.content, true
}

// WriteFile replaces the content of a file on the VM's disk whose folder
// exists, keeping its ACL (a new file inherits its folder's), as the
// operator's agent does when it rotates keys.
func (v *VM) WriteFile(path, content string) error {
	if !v.dirs[strings.ToLower(parentDir(path))] {
		return fmt.Errorf("could not find a part of the path %s", path)
	}
	v.write(path, content)
	return nil
}

// Boot runs userData as the platform's first-boot agent would at a boot
// of this VM.
func (v *VM) Boot(userData []byte) (Result, error) {
	v.booted++
	if v.sshd != nil && v.sshd.startup == "Automatic" {
		if err := v.startSSHD(); err != nil {
			return v.result(), fmt.Errorf("boot %d: sshd does not start: %w", v.booted, err)
		}
	}
	script, err := unwrap(v.p, userData)
	if err != nil {
		return v.result(), err
	}
	ex := &execution{vm: v, vars: map[string]value{}}
	for i, line := range strings.Split(script, "\n") {
		if err := ex.statement(strings.TrimSpace(line)); err != nil {
			return v.result(), fmt.Errorf("boot %d, script line %d: %w", v.booted, i+1, err)
		}
	}
	return v.check()
}

// unwrap checks the envelope the platform's first-boot agent expects and
// returns the script inside.
func unwrap(p platform.Profile, userData []byte) (string, error) {
	if !utf8.Valid(userData) {
		return "", errors.New("userData is not UTF-8 text")
	}
	s := string(userData)
	if strings.ContainsAny(s, "\r\x00") {
		return "", errors.New("userData holds a carriage return or NUL: the renderer writes LF-terminated text only")
	}
	lower := strings.ToLower(s)
	const open, closing = "<powershell>", "</powershell>\n<persist>true</persist>\n"
	if !p.UserDataTags {
		if strings.Contains(lower, "<powershell>") || strings.Contains(lower, "<persist>") {
			return "", fmt.Errorf("userData has a <powershell>/<persist> envelope, but the first-boot agent of %s runs the bare script", p.Type)
		}
		return s, nil
	}
	if !strings.HasPrefix(s, open) || !strings.HasSuffix(s, closing) {
		return "", fmt.Errorf("userData is not <powershell>script</powershell> followed by <persist>true</persist>, the envelope the first-boot agent of %s runs", p.Type)
	}
	body := s[len(open) : len(s)-len(closing)]
	for _, t := range []string{"<powershell>", "</powershell>", "<persist>", "</persist>"} {
		if strings.Contains(strings.ToLower(body), t) {
			return "", fmt.Errorf("userData holds a second %s tag", t)
		}
	}
	return body, nil
}

// check derives the Result and says what would keep the operator out.
func (v *VM) check() (Result, error) {
	r := v.result()
	var problems []string
	switch {
	case r.EnabledUser == "":
		problems = append(problems, "no enabled account to log in as")
	case r.EnabledUser != v.p.Username:
		problems = append(problems, fmt.Sprintf("the script readies %s, but the operator logs in as %s on %s", r.EnabledUser, v.p.Username, v.p.Type))
	}
	if !r.SSHServer {
		problems = append(problems, "the OpenSSH server is not installed, automatic and running")
	} else {
		if !r.KeyOnly {
			problems = append(problems, "the running sshd does not refuse passwords and accept public keys")
		}
		if !v.sshd.config.readsAdministratorsKeys() {
			problems = append(problems, "the running sshd does not read administrators_authorized_keys for Administrators")
		}
	}
	if f, ok := v.files[strings.ToLower(AdministratorsKeysPath)]; !ok {
		problems = append(problems, "there is no administrators_authorized_keys")
	} else {
		if err := validKeysFile(f.content); err != nil {
			problems = append(problems, err.Error())
		}
		if len(r.AuthorizedKeys) == 0 {
			problems = append(problems, "administrators_authorized_keys holds no key")
		}
		if !r.KeysACLRestricted {
			problems = append(problems, fmt.Sprintf("administrators_authorized_keys has the ACL %s, which sshd ignores the file for", f.dacl))
		}
	}
	if !slices.Contains(r.FirewallPorts, 22) {
		problems = append(problems, "no inbound firewall rule for TCP 22")
	}
	if v.p.EC2Launch && !r.EC2LaunchRoutes {
		problems = append(problems, "EC2Launch did not persist the instance metadata routes")
	}
	if len(problems) > 0 {
		return r, fmt.Errorf("boot %d left the VM without working key-only SSH: %s", v.booted, strings.Join(problems, "; "))
	}
	return r, nil
}

func (v *VM) result() Result {
	r := Result{EC2LaunchRoutes: v.routes}
	if v.sshd != nil {
		r.SSHServer = v.openSSH && v.sshd.startup == "Automatic" && v.sshd.running
		r.KeyOnly = v.sshd.running && v.sshd.config.keyOnly()
	}
	if f, ok := v.files[strings.ToLower(AdministratorsKeysPath)]; ok {
		r.AuthorizedKeys = parseKeys(f.content)
		r.KeysACLRestricted = restrictedDACL(f.dacl)
	}
	for _, port := range v.rules {
		if !slices.Contains(r.FirewallPorts, port) {
			r.FirewallPorts = append(r.FirewallPorts, port)
		}
	}
	slices.Sort(r.FirewallPorts)
	name := "Administrator"
	if _, ok := v.accounts["capi"]; ok {
		name = "capi"
	}
	if a, ok := v.accounts[strings.ToLower(name)]; ok && a.Enabled {
		r.EnabledUser = a.Name
	}
	return r
}

// validKeysFile says which line of an authorized keys file is not a plain
// public key: sshd would skip it, and the renderer never writes one.
func validKeysFile(content string) error {
	for i, line := range keyFileLines(content) {
		if line == "" || line[0] == '#' {
			continue
		}
		if _, ok := parsePlainKey(line); !ok {
			return fmt.Errorf("line %d of administrators_authorized_keys is not a public key without options", i+1)
		}
	}
	return nil
}

func parseKeys(content string) []ssh.PublicKey {
	var keys []ssh.PublicKey
	for _, line := range keyFileLines(content) {
		if k, ok := parsePlainKey(line); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

func keyFileLines(content string) []string {
	lines := strings.Split(strings.ReplaceAll(content, "\r\n", "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return lines
}

func parsePlainKey(line string) (ssh.PublicKey, bool) {
	if line == "" || line[0] == '#' {
		return nil, false
	}
	k, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(options) > 0 || len(rest) > 0 {
		return nil, false
	}
	return k, true
}

func (v *VM) write(path, content string) {
	key := strings.ToLower(path)
	if f, ok := v.files[key]; ok {
		f.content = content
		return
	}
	v.files[key] = &file{path: path, content: content, dacl: inheritedKeysDACL}
}

func (v *VM) exists(path string) bool {
	key := strings.ToLower(path)
	return v.files[key] != nil || v.dirs[key]
}

func (v *VM) installEC2Launch(version string) {
	v.dirs[strings.ToLower(`C:\Program Files\Amazon`)] = true
	v.dirs[strings.ToLower(parentDir(EC2LaunchPath))] = true
	v.write(EC2LaunchPath, "EC2Launch "+version)
	v.ec2 = version
}

// startSSHD starts (or restarts) sshd: the first start writes the default
// configuration and host keys; every start reads the configuration and
// fails on one sshd refuses.
func (v *VM) startSSHD() error {
	if v.sshd.startup == "Disabled" {
		return errors.New("service sshd is disabled")
	}
	v.dirs[strings.ToLower(parentDir(SSHDConfigPath))] = true
	if !v.exists(SSHDConfigPath) {
		v.write(SSHDConfigPath, strings.ReplaceAll(defaultSSHDConfig, "\n", "\r\n"))
	}
	for _, k := range []string{"rsa", "ecdsa", "ed25519"} {
		if p := `C:\ProgramData\ssh\ssh_host_` + k + `_key`; !v.exists(p) {
			v.write(p, "(host key)")
		}
	}
	cfg, err := parseSSHDConfig(v.files[strings.ToLower(SSHDConfigPath)].content)
	if err != nil {
		v.sshd.running = false
		return err
	}
	v.sshd.config, v.sshd.running = cfg, true
	return nil
}

func parentDir(path string) string {
	if i := strings.LastIndex(path, `\`); i >= 0 {
		return path[:i]
	}
	return ""
}

// versionLess compares dotted decimal versions; ok is false if either is
// not one.
func versionLess(a, b string) (less, ok bool) {
	pa, oka := parseVersion(a)
	pb, okb := parseVersion(b)
	if !oka || !okb {
		return false, false
	}
	return slices.Compare(pa, pb) < 0, true
}

func parseVersion(s string) ([]int, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return nil, false
	}
	out := make([]int, 4)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || (len(p) > 1 && p[0] == '0') {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// singleQuoted matches a PowerShell single-quoted string: ” is a quote
// inside it; the typographic single quotes PowerShell also takes as
// quotes are refused outright.
const singleQuoted = `'(?:[^'\x{2018}-\x{201B}]|'')*'`

// unquote is the value of a singleQuoted literal.
func unquote(s string) string {
	return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
}

var quotedList = regexp.MustCompile(singleQuoted)
