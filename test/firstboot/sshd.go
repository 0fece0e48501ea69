package firstboot

import (
	"fmt"
	"strings"
)

// defaultSSHDConfig is what OpenSSH for Windows writes to
// %ProgramData%\ssh\sshd_config at its first start (sshd_config_default):
// public keys and passwords both allowed, and the keys of members of
// Administrators read from administrators_authorized_keys.
const defaultSSHDConfig = `# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

# The strategy used for options in the default sshd_config shipped with
# OpenSSH is to specify options with their default value where
# possible, but leave them commented.  Uncommented options override the
# default value.

#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0
#ListenAddress ::

#HostKey __PROGRAMDATA__/ssh/ssh_host_rsa_key
#HostKey __PROGRAMDATA__/ssh/ssh_host_ecdsa_key
#HostKey __PROGRAMDATA__/ssh/ssh_host_ed25519_key

# Ciphers and keying
#RekeyLimit default none

# Logging
#SyslogFacility AUTH
#LogLevel INFO

# Authentication:

#LoginGraceTime 2m
#PermitRootLogin prohibit-password
#StrictModes yes
#MaxAuthTries 6
#MaxSessions 10

#PubkeyAuthentication yes

# The default is to check both .ssh/authorized_keys and .ssh/authorized_keys2
# but this is overridden so installations will only check .ssh/authorized_keys
AuthorizedKeysFile	.ssh/authorized_keys

#AuthorizedPrincipalsFile none

# For this to work you will also need host keys in %programData%/ssh/ssh_known_hosts
#HostbasedAuthentication no
# Change to yes if you don't trust ~/.ssh/known_hosts for
# HostbasedAuthentication
#IgnoreUserKnownHosts no
# Don't read the user's ~/.rhosts and ~/.shosts files
#IgnoreRhosts yes

# To disable tunneled clear text passwords, change to no here!
#PasswordAuthentication yes
#PermitEmptyPasswords no

# GSSAPI options
#GSSAPIAuthentication no

#AllowAgentForwarding yes
#AllowTcpForwarding yes
#GatewayPorts no
#PermitTTY yes
#PrintMotd yes
#PrintLastLog yes
#TCPKeepAlive yes
#UseLogin no
#PermitUserEnvironment no
#ClientAliveInterval 0
#ClientAliveCountMax 3
#UseDNS no
#PidFile /var/run/sshd.pid
#MaxStartups 10:30:100
#PermitTunnel no
#ChrootDirectory none
#VersionAddendum none

# no default banner path
#Banner none

# override default of no subsystems
Subsystem	sftp	sftp-server.exe

# Example of overriding settings on a per-user basis
#Match User anoncvs
#	AllowTcpForwarding no
#	PermitTTY no
#	ForceCommand cvs server

Match Group administrators
       AuthorizedKeysFile __PROGRAMDATA__/ssh/administrators_authorized_keys
`

// sshdKeywords are the sshd_config keywords this sshd knows; any other
// makes it refuse to start ("Bad configuration option").
var sshdKeywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`port addressfamily listenaddress hostkey rekeylimit syslogfacility loglevel
		logingracetime permitrootlogin strictmodes maxauthtries maxsessions pubkeyauthentication authorizedkeysfile
		authorizedprincipalsfile hostbasedauthentication ignoreuserknownhosts ignorerhosts passwordauthentication
		permitemptypasswords gssapiauthentication allowagentforwarding allowtcpforwarding gatewayports permittty
		printmotd printlastlog tcpkeepalive uselogin permituserenvironment clientaliveinterval clientalivecountmax
		usedns pidfile maxstartups permittunnel chrootdirectory versionaddendum banner subsystem match forcecommand
		kbdinteractiveauthentication challengeresponseauthentication allowusers allowgroups denyusers denygroups`) {
		sshdKeywords[k] = true
	}
}

// sshdConfig is what sshd made of its configuration when it started.
type sshdConfig struct {
	// global holds the first value of each keyword before any Match.
	global map[string]string
	// matches are the Match blocks: criteria, then keyword -> first value.
	matches []matchBlock
}

type matchBlock struct {
	criteria string
	settings map[string]string
}

// parseSSHDConfig reads sshd_config as sshd does: the first value of a
// keyword wins, Match starts a block that lasts to the next Match; an
// unknown keyword or a yes/no option with another value is an error (sshd
// does not start).
func parseSSHDConfig(text string) (*sshdConfig, error) {
	c := &sshdConfig{global: map[string]string{}}
	settings := c.global
	for i, raw := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		kw := strings.ToLower(fields[0])
		value := strings.TrimSpace(line[len(fields[0]):])
		if !sshdKeywords[kw] {
			return nil, fmt.Errorf("sshd_config line %d: bad configuration option %q", i+1, fields[0])
		}
		if value == "" {
			return nil, fmt.Errorf("sshd_config line %d: %s without a value", i+1, fields[0])
		}
		if kw == "pubkeyauthentication" || kw == "passwordauthentication" {
			value = strings.ToLower(value)
			if value != "yes" && value != "no" {
				return nil, fmt.Errorf("sshd_config line %d: %s takes yes or no, not %q", i+1, fields[0], value)
			}
		}
		if kw == "match" {
			c.matches = append(c.matches, matchBlock{criteria: value, settings: map[string]string{}})
			settings = c.matches[len(c.matches)-1].settings
			continue
		}
		if _, set := settings[kw]; !set {
			settings[kw] = value
		}
	}
	return c, nil
}

// keyOnly says whether sshd accepts public keys and refuses passwords, for
// everyone (no Match block allows passwords or refuses keys again).
func (c *sshdConfig) keyOnly() bool {
	if c.setting(c.global, "pubkeyauthentication", "yes") != "yes" || c.setting(c.global, "passwordauthentication", "yes") != "no" {
		return false
	}
	for _, m := range c.matches {
		if m.settings["passwordauthentication"] == "yes" || m.settings["pubkeyauthentication"] == "no" {
			return false
		}
	}
	return true
}

func (c *sshdConfig) setting(s map[string]string, kw, def string) string {
	if v, ok := s[kw]; ok {
		return v
	}
	return def
}

// readsAdministratorsKeys says whether the keys of members of
// Administrators come from %ProgramData%\ssh\administrators_authorized_keys.
func (c *sshdConfig) readsAdministratorsKeys() bool {
	for _, m := range c.matches {
		if strings.EqualFold(strings.Join(strings.Fields(m.criteria), " "), "group administrators") &&
			strings.EqualFold(m.settings["authorizedkeysfile"], "__PROGRAMDATA__/ssh/administrators_authorized_keys") {
			return true
		}
	}
	return false
}
