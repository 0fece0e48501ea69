// Package userdata renders the first-boot script the Machine API hands
// every new Windows VM through the windows-user-data Secret: PowerShell
// that readies the login account, installs the OpenSSH server with
// key-only authentication for the operator's public key, opens the
// inbound ports the node needs and, on AWS, makes EC2Launch v2 keep the
// instance metadata routes.
//
// The script is one statement per line, every variable part validated
// before it is written, so that test/firstboot can interpret it strictly.
// The Secret is derived from the operator's private key Secret: the
// operator rewrites it whenever it differs, and nobody edits it by hand.
package userdata

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

const (
	// SecretName is the Secret the Machine API reads a Windows
	// MachineSet's userData from (its providerSpec's userDataSecret).
	SecretName = "windows-user-data"
	// SecretKey is the key of SecretName's data that holds the script.
	SecretKey = "userData"
	// MachineAPINamespace is where the Machine API's MachineSets and
	// SecretName live.
	MachineAPINamespace = "openshift-machine-api"
	// ClusterAPINamespace is where Cluster API's MachineSets look for
	// SecretName on clusters that use Cluster API.
	ClusterAPINamespace = "openshift-cluster-api"
)

const (
	// OpenSSHCapability is the Windows capability of the OpenSSH server.
	OpenSSHCapability = "OpenSSH.Server~~~~0.0.1.0"
	// SSHFirewallRule is the name of the inbound rule for TCP 22 that
	// installing OpenSSHCapability creates; the script adds it only when
	// it is missing.
	SSHFirewallRule = "OpenSSH-Server-In-TCP"
	// SSHPort is the port sshd listens on.
	SSHPort = 22
	// KeysDACL is the access control list the script gives
	// administrators_authorized_keys, in SDDL: inheritance off, full
	// control for SYSTEM and Administrators only (sshd ignores the file
	// otherwise). It is the DACL of the agent's AdministratorsKeysSDDL,
	// which keeps the file so when it rotates keys.
	KeysDACL = "D:P(A;;FA;;;SY)(A;;FA;;;BA)"
	// KeyMarkerPath is the file the script writes once it has written the
	// operator's key: later boots (the userData persists, so it runs at
	// every boot) leave administrators_authorized_keys to the operator,
	// so a key the operator rotated away never comes back.
	KeyMarkerPath = `C:\ProgramData\ssh\openwmco-key-written`
	// EC2LaunchMinimumVersion is the oldest EC2Launch v2 whose add-routes
	// task can persist the instance metadata routes.
	EC2LaunchMinimumVersion = "2.0.1643"
	// EC2LaunchURL is where the script downloads the latest EC2Launch v2
	// when the image's is missing or older than EC2LaunchMinimumVersion.
	EC2LaunchURL = "https://s3.amazonaws.com/amazon-ec2launch-v2/windows/amd64/latest/AmazonEC2Launch.msi"
)

// InvalidKeyError says why a public key cannot go into the script.
type InvalidKeyError struct {
	// Reason is what is wrong with the key, without the key itself.
	Reason string
}

// Error implements error.
func (e *InvalidKeyError) Error() string { return "invalid public key for userData: " + e.Reason }

// keyLine is the only form an authorized_keys line may take in the
// script: an algorithm name and base64, one space, no options, no comment,
// nothing PowerShell would read inside a single-quoted string.
var keyLine = regexp.MustCompile(`^[a-z0-9][a-z0-9@.-]{0,63} [A-Za-z0-9+/]+={0,2}$`)

// AuthorizedKeyLine is key as the line the script writes to
// administrators_authorized_keys (ssh.MarshalAuthorizedKey without the
// newline), checked to be safe inside a PowerShell single-quoted string
// and to parse back to the same key.
func AuthorizedKeyLine(key ssh.PublicKey) (string, error) {
	if key == nil {
		return "", &InvalidKeyError{Reason: "no key"}
	}
	line := string(bytes.TrimSuffix(ssh.MarshalAuthorizedKey(key), []byte("\n")))
	if !keyLine.MatchString(line) {
		return "", &InvalidKeyError{Reason: fmt.Sprintf("a %d-byte line that is not an algorithm name and base64 separated by one space", len(line))}
	}
	parsed, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", &InvalidKeyError{Reason: "the line does not parse back: " + err.Error()}
	}
	if comment != "" || len(options) > 0 || len(rest) > 0 {
		return "", &InvalidKeyError{Reason: "the line carries a comment, options or more lines"}
	}
	if parsed.Type() != key.Type() || !bytes.Equal(parsed.Marshal(), key.Marshal()) {
		return "", &InvalidKeyError{Reason: "the line parses back to another key"}
	}
	return line, nil
}

// Render returns the userData for platform p that installs key as the
// only key of the OpenSSH server: the bare script, or wrapped in
// <powershell> tags followed by <persist>true</persist> where
// p.UserDataTags says so (the envelope OpenShift's WMCO writes, so
// MachineSets made for it keep working). The same inputs give the same
// bytes. A nil key or one whose authorized_keys line is not plain (see
// AuthorizedKeyLine) is refused with an *InvalidKeyError.
func Render(p platform.Profile, key ssh.PublicKey) ([]byte, error) {
	line, err := AuthorizedKeyLine(key)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w(`$ErrorActionPreference = 'Stop'`)
	w(`$ProgressPreference = 'SilentlyContinue'`)
	w(`# openwmco first boot: the ` + SecretName + ` Secret, generated from the operator's private key Secret; do not edit.`)
	w(`# The login account: capi where the image has it (Azure), else the built-in Administrator, enabled with a random password nobody keeps.`)
	w(`$capi = Get-LocalUser -Name 'capi' -ErrorAction SilentlyContinue`)
	w(`$admin = Get-LocalUser -Name 'Administrator' -ErrorAction SilentlyContinue`)
	w(`if ($null -eq $capi -and $null -ne $admin -and -not $admin.Enabled) { $bytes = New-Object byte[] 24; ` +
		`[System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($bytes); ` +
		`$admin | Set-LocalUser -Password (ConvertTo-SecureString ([Convert]::ToBase64String($bytes) + 'a1!') -AsPlainText -Force); ` +
		`$admin | Enable-LocalUser }`)
	w(`# The OpenSSH server, started once so that it writes its default sshd_config and host keys.`)
	w(`Add-WindowsCapability -Online -Name '` + OpenSSHCapability + `' | Out-Null`)
	w(`Set-Service -Name 'sshd' -StartupType Automatic`)
	w(`Start-Service -Name 'sshd'`)
	w(`# Key-only authentication: both settings first (sshd takes the first value it reads), every other line of either removed.`)
	w(`$config = "$env:ProgramData\ssh\sshd_config"`)
	w(`$kept = @(Get-Content -LiteralPath $config | Where-Object { $_ -notmatch '^\s*#?\s*(PubkeyAuthentication|PasswordAuthentication)\b' })`)
	w(`Set-Content -LiteralPath $config -Encoding ascii -Value (@('PubkeyAuthentication yes', 'PasswordAuthentication no') + $kept)`)
	w(`# The operator's key, at the first boot only: later boots leave the file to the operator, which rotates keys in it.`)
	w(`$keys = "$env:ProgramData\ssh\administrators_authorized_keys"`)
	w(`$marker = "$env:ProgramData\ssh\` + strings.TrimPrefix(KeyMarkerPath, `C:\ProgramData\ssh\`) + `"`)
	w(`if (-not (Test-Path -LiteralPath $marker)) { Set-Content -LiteralPath $keys -Encoding ascii -Value '` + line +
		`'; Set-Content -LiteralPath $marker -Encoding ascii -Value '` + SecretName + `' }`)
	w(`# Only SYSTEM and Administrators may hold the keys file, inheritance off: sshd ignores it otherwise.`)
	w(`$acl = Get-Acl -LiteralPath $keys`)
	w(`$acl.SetSecurityDescriptorSddlForm('` + KeysDACL + `', 'Access')`)
	w(`Set-Acl -LiteralPath $keys -AclObject $acl`)
	w(`# Inbound: SSH (unless the capability made its rule), the kubelet (container logs) and windows_exporter, named as the agent's rules.`)
	w(firewallRule(SSHFirewallRule, "OpenSSH SSH Server (sshd)", SSHPort, false))
	w(firewallRule(wicdapi.FirewallRuleKubelet, wicdapi.FirewallRuleKubelet, wicdapi.KubeletPort, true))
	w(firewallRule(wicdapi.FirewallRuleWindowsExporter, wicdapi.FirewallRuleWindowsExporter, wicdapi.WindowsExporterPort, true))
	w(`Restart-Service -Name 'sshd'`)
	if p.EC2Launch {
		w(`# EC2Launch v2 at least ` + EC2LaunchMinimumVersion + `, whose add-routes task keeps the instance metadata routes through the hybrid overlay's network changes.`)
		w(`$ec2launch = "$env:ProgramFiles\Amazon\EC2Launch\EC2Launch.exe"`)
		w(`if (-not (Test-Path -LiteralPath $ec2launch) -or [version]([string](& $ec2launch version)).Trim() -lt [version]'` + EC2LaunchMinimumVersion + `') { ` +
			`[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12; ` +
			`$msi = "$env:SystemRoot\Temp\AmazonEC2Launch.msi"; ` +
			`Invoke-WebRequest -UseBasicParsing -Uri '` + EC2LaunchURL + `' -OutFile $msi; ` +
			`Start-Process -FilePath 'msiexec.exe' -ArgumentList @('/i', $msi, '/qn') -Wait }`)
		w(`& $ec2launch run-task add-routes --persistent`)
	}
	script := b.String()
	if !p.UserDataTags {
		return []byte(script), nil
	}
	return []byte(tag("powershell", "\n"+script) + tag("persist", "true")), nil
}

// firewallRule is the statement that adds an inbound TCP allow rule
// unless one of that name exists.
func firewallRule(name, display string, port int, edge bool) string {
	s := fmt.Sprintf(`if ($null -eq (Get-NetFirewallRule -Name '%s' -ErrorAction SilentlyContinue)) { `+
		`New-NetFirewallRule -Name '%s' -DisplayName '%s' -Direction Inbound -Action Allow -Protocol TCP -LocalPort %d`, name, name, display, port)
	if edge {
		s += " -EdgeTraversalPolicy Allow"
	}
	return s + " | Out-Null }"
}

// tag is data between <name> and </name>, then a newline.
func tag(name, data string) string {
	return "<" + name + ">" + data + "</" + name + ">\n"
}
