package firstboot

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// value is what a script variable holds.
type value struct {
	kind    valueKind
	path    string   // kindPath
	account *Account // kindAccount; nil for $null
	lines   []string // kindLines
	dacl    string   // kindACL
}

type valueKind int

const (
	kindNull valueKind = iota
	kindPath
	kindAccount
	kindLines
	kindACL
)

// execution is one run of the script: its variables.
type execution struct {
	vm   *VM
	vars map[string]value
}

// form is one statement form: a whole line, anchored, and what it does.
type form struct {
	name string
	re   *regexp.Regexp
	do   func(ex *execution, m []string) error
}

const (
	sq  = singleQuoted
	vr  = `\$([A-Za-z_][A-Za-z0-9_]*)`
	env = `"\$env:(ProgramData|ProgramFiles|SystemRoot)((?:\\[A-Za-z0-9_.-]+)+)"`
)

func mustForm(name, re string, do func(ex *execution, m []string) error) form {
	return form{name: name, re: regexp.MustCompile(`^` + re + `$`), do: do}
}

// forms are the statements the interpreter understands: exactly those the
// renderer writes.
var forms = []form{
	mustForm("error preference", `\$ErrorActionPreference = 'Stop'`, func(*execution, []string) error { return nil }),
	mustForm("progress preference", `\$ProgressPreference = 'SilentlyContinue'`, func(*execution, []string) error { return nil }),
	mustForm("local user lookup", vr+` = Get-LocalUser -Name (`+sq+`) -ErrorAction SilentlyContinue`, (*execution).getLocalUser),
	mustForm("administrator enablement",
		`if \(\$null -eq `+vr+` -and \$null -ne `+vr+` -and -not `+vr+`\.Enabled\) \{ \$bytes = New-Object byte\[\] 24; `+
			`\[System\.Security\.Cryptography\.RandomNumberGenerator\]::Create\(\)\.GetBytes\(\$bytes\); `+
			vr+` \| Set-LocalUser -Password \(ConvertTo-SecureString \(\[Convert\]::ToBase64String\(\$bytes\) \+ 'a1!'\) -AsPlainText -Force\); `+
			vr+` \| Enable-LocalUser \}`, (*execution).enableAdministrator),
	mustForm("capability install", `Add-WindowsCapability -Online -Name (`+sq+`) \| Out-Null`, (*execution).addCapability),
	mustForm("service start type", `Set-Service -Name (`+sq+`) -StartupType (Automatic|Manual|Disabled)`, (*execution).setService),
	mustForm("service start", `(Start|Restart)-Service -Name (`+sq+`)`, (*execution).startService),
	mustForm("path variable", vr+` = `+env, (*execution).setPath),
	mustForm("filtered read", vr+` = @\(Get-Content -LiteralPath `+vr+` \| Where-Object \{ \$_ -notmatch (`+sq+`) \}\)`, (*execution).filteredRead),
	mustForm("prepending write", `Set-Content -LiteralPath `+vr+` -Encoding ascii -Value \(@\((`+sq+`(?:, `+sq+`)*)\) \+ `+vr+`\)`, (*execution).prependingWrite),
	mustForm("first-boot key write",
		`if \(-not \(Test-Path -LiteralPath `+vr+`\)\) \{ Set-Content -LiteralPath `+vr+` -Encoding ascii -Value (`+sq+`); `+
			`Set-Content -LiteralPath `+vr+` -Encoding ascii -Value (`+sq+`) \}`, (*execution).keyWrite),
	mustForm("ACL read", vr+` = Get-Acl -LiteralPath `+vr, (*execution).getACL),
	mustForm("ACL change", vr+`\.SetSecurityDescriptorSddlForm\((`+sq+`), 'Access'\)`, (*execution).setSDDL),
	mustForm("ACL write", `Set-Acl -LiteralPath `+vr+` -AclObject `+vr, (*execution).setACL),
	mustForm("firewall rule",
		`if \(\$null -eq \(Get-NetFirewallRule -Name (`+sq+`) -ErrorAction SilentlyContinue\)\) \{ `+
			`New-NetFirewallRule -Name (`+sq+`) -DisplayName (`+sq+`) -Direction Inbound -Action Allow -Protocol TCP -LocalPort ([1-9][0-9]{0,4})( -EdgeTraversalPolicy Allow)? \| Out-Null \}`,
		(*execution).firewallRule),
	mustForm("EC2Launch install",
		`if \(-not \(Test-Path -LiteralPath `+vr+`\) -or \[version\]\(\[string\]\(& `+vr+` version\)\)\.Trim\(\) -lt \[version\](`+sq+`)\) \{ `+
			`\[Net\.ServicePointManager\]::SecurityProtocol = \[Net\.ServicePointManager\]::SecurityProtocol -bor \[Net\.SecurityProtocolType\]::Tls12; `+
			`\$msi = "\$env:SystemRoot\\Temp\\AmazonEC2Launch\.msi"; `+
			`Invoke-WebRequest -UseBasicParsing -Uri (`+sq+`) -OutFile \$msi; `+
			`Start-Process -FilePath 'msiexec\.exe' -ArgumentList @\('/i', \$msi, '/qn'\) -Wait \}`,
		(*execution).installEC2Launch),
	mustForm("EC2Launch routes", `& `+vr+` run-task add-routes --persistent`, (*execution).addRoutes),
}

// statement runs one line of the script.
func (ex *execution) statement(line string) error {
	if line == "" {
		return nil
	}
	if len(line) > maxStatementLength {
		return fmt.Errorf("statement of %d bytes: longer than any the renderer writes", len(line))
	}
	if line[0] == '#' {
		if strings.HasPrefix(strings.ToLower(line), "#requires") {
			return errors.New("#requires is a directive, not a comment: not understood")
		}
		return nil
	}
	for _, f := range forms {
		if m := f.re.FindStringSubmatch(line); m != nil {
			if err := f.do(ex, m); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("statement not understood: %q", truncate(line))
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// get returns a variable of the given kind (kindNull accepts $null or an
// account).
func (ex *execution) get(name string, kinds ...valueKind) (value, error) {
	v, ok := ex.vars[strings.ToLower(name)]
	if !ok {
		return value{}, fmt.Errorf("$%s is used before it is set", name)
	}
	for _, k := range kinds {
		if v.kind == k {
			return v, nil
		}
	}
	return value{}, fmt.Errorf("$%s does not hold what this statement needs", name)
}

func (ex *execution) set(name string, v value) {
	ex.vars[strings.ToLower(name)] = v
}

func (ex *execution) pathOf(name string) (string, error) {
	v, err := ex.get(name, kindPath)
	return v.path, err
}

func (ex *execution) getLocalUser(m []string) error {
	if a, ok := ex.vm.accounts[strings.ToLower(unquote(m[2]))]; ok {
		ex.set(m[1], value{kind: kindAccount, account: a})
	} else {
		ex.set(m[1], value{kind: kindNull})
	}
	return nil
}

func (ex *execution) enableAdministrator(m []string) error {
	other, target := m[1], m[2]
	if !strings.EqualFold(m[3], target) || !strings.EqualFold(m[4], target) || !strings.EqualFold(m[5], target) {
		return errors.New("the account tested is not the account enabled")
	}
	o, err := ex.get(other, kindNull, kindAccount)
	if err != nil {
		return err
	}
	t, err := ex.get(target, kindNull, kindAccount)
	if err != nil {
		return err
	}
	if o.kind == kindNull && t.kind == kindAccount && !t.account.Enabled {
		t.account.Enabled = true
	}
	return nil
}

func (ex *execution) addCapability(m []string) error {
	if name := unquote(m[1]); name != openSSHCapability {
		return fmt.Errorf("capability %q is unknown to the image", name)
	}
	v := ex.vm
	if !v.openSSH {
		v.openSSH = true
		v.sshd = &service{startup: "Manual"}
		if _, ok := v.rules[sshFirewallRule]; !ok {
			v.rules[sshFirewallRule] = 22
		}
	}
	return nil
}

func (ex *execution) service(name string) (*service, error) {
	if !strings.EqualFold(name, "sshd") || ex.vm.sshd == nil {
		return nil, fmt.Errorf("cannot find any service with service name %q", name)
	}
	return ex.vm.sshd, nil
}

func (ex *execution) setService(m []string) error {
	s, err := ex.service(unquote(m[1]))
	if err != nil {
		return err
	}
	s.startup = m[2]
	return nil
}

func (ex *execution) startService(m []string) error {
	s, err := ex.service(unquote(m[2]))
	if err != nil {
		return err
	}
	if m[1] == "Start" && s.running {
		return nil
	}
	return ex.vm.startSSHD()
}

var envValues = map[string]string{"ProgramData": `C:\ProgramData`, "ProgramFiles": `C:\Program Files`, "SystemRoot": `C:\Windows`}

func (ex *execution) setPath(m []string) error {
	ex.set(m[1], value{kind: kindPath, path: envValues[m[2]] + m[3]})
	return nil
}

func (ex *execution) filteredRead(m []string) error {
	path, err := ex.pathOf(m[2])
	if err != nil {
		return err
	}
	f, ok := ex.vm.files[strings.ToLower(path)]
	if !ok {
		return fmt.Errorf("cannot find path %s because it does not exist", path)
	}
	// PowerShell's -notmatch is a case-insensitive .NET regular
	// expression; one RE2 does not read the same way is refused.
	re, err := regexp.Compile("(?i)" + unquote(m[3]))
	if err != nil {
		return fmt.Errorf("pattern %s not understood: %w", m[3], err)
	}
	lines := strings.Split(strings.TrimSuffix(strings.ReplaceAll(f.content, "\r\n", "\n"), "\n"), "\n")
	var kept []string
	for _, l := range lines {
		if !re.MatchString(l) {
			kept = append(kept, l)
		}
	}
	ex.set(m[1], value{kind: kindLines, lines: kept})
	return nil
}

func (ex *execution) prependingWrite(m []string) error {
	path, err := ex.pathOf(m[1])
	if err != nil {
		return err
	}
	rest, err := ex.get(m[3], kindLines)
	if err != nil {
		return err
	}
	var lines []string
	for _, q := range quotedList.FindAllString(m[2], -1) {
		lines = append(lines, unquote(q))
	}
	return ex.setContent(path, append(lines, rest.lines...))
}

// setContent is Set-Content -Encoding ascii: one line each, CRLF, what is
// not ASCII as '?'.
func (ex *execution) setContent(path string, lines []string) error {
	if !ex.vm.dirs[strings.ToLower(parentDir(path))] {
		return fmt.Errorf("could not find a part of the path %s", path)
	}
	if ex.vm.dirs[strings.ToLower(path)] {
		return fmt.Errorf("%s is a folder", path)
	}
	var b strings.Builder
	for _, l := range lines {
		for _, r := range l {
			if r > 127 {
				r = '?'
			}
			b.WriteRune(r)
		}
		b.WriteString("\r\n")
	}
	ex.vm.write(path, b.String())
	return nil
}

func (ex *execution) keyWrite(m []string) error {
	test, err := ex.pathOf(m[1])
	if err != nil {
		return err
	}
	keys, err := ex.pathOf(m[2])
	if err != nil {
		return err
	}
	marker, err := ex.pathOf(m[4])
	if err != nil {
		return err
	}
	if ex.vm.exists(test) {
		return nil
	}
	if err := ex.setContent(keys, []string{unquote(m[3])}); err != nil {
		return err
	}
	return ex.setContent(marker, []string{unquote(m[5])})
}

func (ex *execution) getACL(m []string) error {
	path, err := ex.pathOf(m[2])
	if err != nil {
		return err
	}
	f, ok := ex.vm.files[strings.ToLower(path)]
	if !ok {
		return fmt.Errorf("cannot find path %s because it does not exist", path)
	}
	ex.set(m[1], value{kind: kindACL, path: f.path, dacl: f.dacl})
	return nil
}

func (ex *execution) setSDDL(m []string) error {
	v, err := ex.get(m[1], kindACL)
	if err != nil {
		return err
	}
	sddl := unquote(m[2])
	if _, _, err := parseDACL(sddl); err != nil {
		return err
	}
	v.dacl = sddl
	ex.set(m[1], v)
	return nil
}

func (ex *execution) setACL(m []string) error {
	path, err := ex.pathOf(m[1])
	if err != nil {
		return err
	}
	acl, err := ex.get(m[2], kindACL)
	if err != nil {
		return err
	}
	f, ok := ex.vm.files[strings.ToLower(path)]
	if !ok {
		return fmt.Errorf("cannot find path %s because it does not exist", path)
	}
	f.dacl = acl.dacl
	return nil
}

func (ex *execution) firewallRule(m []string) error {
	name := unquote(m[1])
	if unquote(m[2]) != name {
		return errors.New("the rule looked for is not the rule added")
	}
	var port int
	if _, err := fmt.Sscan(m[4], &port); err != nil || port > 65535 {
		return fmt.Errorf("port %s out of range", m[4])
	}
	if _, ok := ex.vm.rules[name]; !ok {
		ex.vm.rules[name] = port
	}
	return nil
}

func (ex *execution) ec2Launch(name string) (string, error) {
	if !ex.vm.p.EC2Launch {
		return "", fmt.Errorf("EC2Launch statement on %s, whose VMs have no EC2Launch", ex.vm.p.Type)
	}
	return ex.pathOf(name)
}

func (ex *execution) installEC2Launch(m []string) error {
	exe, err := ex.ec2Launch(m[1])
	if err != nil {
		return err
	}
	if !strings.EqualFold(m[2], m[1]) {
		return errors.New("the EC2Launch tested is not the EC2Launch asked for its version")
	}
	minimum := unquote(m[3])
	if _, ok := parseVersion(minimum); !ok {
		return fmt.Errorf("cannot convert %q to System.Version", minimum)
	}
	if url := unquote(m[4]); url != ec2LaunchURL {
		return fmt.Errorf("download from %s: the VM reaches only EC2Launch's download", url)
	}
	if ex.vm.exists(exe) {
		if !strings.EqualFold(exe, EC2LaunchPath) {
			return fmt.Errorf("%s is not EC2Launch", exe)
		}
		less, ok := versionLess(ex.vm.ec2, minimum)
		if !ok {
			return fmt.Errorf("cannot compare EC2Launch version %q with %q", ex.vm.ec2, minimum)
		}
		if !less {
			return nil
		}
	}
	ex.vm.installEC2Launch(LatestEC2Launch)
	return nil
}

func (ex *execution) addRoutes(m []string) error {
	exe, err := ex.ec2Launch(m[1])
	if err != nil {
		return err
	}
	if !strings.EqualFold(exe, EC2LaunchPath) || !ex.vm.exists(exe) {
		return fmt.Errorf("the term %s is not recognized as a program", exe)
	}
	if less, ok := versionLess(ex.vm.ec2, addRoutesSince); !ok || less {
		return fmt.Errorf("EC2Launch %s has no add-routes task", ex.vm.ec2)
	}
	ex.vm.routes = true
	return nil
}
