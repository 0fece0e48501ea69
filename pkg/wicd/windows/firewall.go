//go:build windows

package windows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/windows/registry"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// firewallRulesKey holds the local Windows Firewall rules, one value per
// rule: "v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=10250|
// Name=...|". Reading it is locale-independent, unlike netsh's output.
const firewallRulesKey = `SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules`

// firewall is wicd.Firewall: rules are read from the registry and changed
// with netsh (fixed arguments, the rule's validated name and port; never a
// shell). Every change is read back, so a firewall that ignores netsh
// fails loudly.
type firewall struct{ exec execer }

// Rule finds an inbound rule by name.
func (firewall) Rule(_ context.Context, name string) (wicd.FirewallRuleState, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, firewallRulesKey, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return wicd.FirewallRuleState{}, fmt.Errorf("firewall rule %s: %w", name, wicd.ErrNotFound)
	}
	if err != nil {
		return wicd.FirewallRuleState{}, fmt.Errorf("open HKLM\\%s: %w", firewallRulesKey, err)
	}
	defer func() { _ = k.Close() }()
	values, err := k.ReadValueNames(-1)
	if err != nil {
		return wicd.FirewallRuleState{}, fmt.Errorf("read HKLM\\%s: %w", firewallRulesKey, err)
	}
	for _, v := range values {
		s, _, err := k.GetStringValue(v)
		if err != nil {
			continue // not a rule string
		}
		if r, ok := parseFirewallRule(s); ok && r.Name == name {
			return r, nil
		}
	}
	return wicd.FirewallRuleState{}, fmt.Errorf("firewall rule %s: %w", name, wicd.ErrNotFound)
}

// parseFirewallRule reads an inbound allow rule for one local port; only
// Active=FALSE disables it.
func parseFirewallRule(s string) (wicd.FirewallRuleState, bool) {
	fields := map[string]string{}
	for _, f := range strings.Split(s, "|") {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	if fields["Dir"] != "In" || fields["Action"] != "Allow" || fields["Name"] == "" {
		return wicd.FirewallRuleState{}, false
	}
	r := wicd.FirewallRuleState{
		FirewallRule: wicdapi.FirewallRule{Name: fields["Name"], Description: fields["Desc"]},
		Enabled:      !strings.EqualFold(fields["Active"], "FALSE"),
	}
	switch fields["Protocol"] {
	case "6":
		r.Protocol = "TCP"
	case "17":
		r.Protocol = "UDP"
	}
	r.Port, _ = strconv.Atoi(fields["LPort"])
	return r, true
}

// Add replaces any rule of that name with an inbound allow rule.
func (f firewall) Add(ctx context.Context, r wicdapi.FirewallRule) error {
	if err := f.Delete(ctx, r.Name); err != nil {
		return err
	}
	netsh, err := systemProgram("netsh.exe")
	if err != nil {
		return err
	}
	if _, err := f.exec.Run(ctx, []string{netsh, "advfirewall", "firewall", "add", "rule",
		"name=" + r.Name, "dir=in", "action=allow", "protocol=" + r.Protocol,
		"localport=" + strconv.Itoa(r.Port), "profile=any", "enable=yes"}); err != nil {
		return fmt.Errorf("add firewall rule %s: %w", r.Name, err)
	}
	got, err := f.Rule(ctx, r.Name)
	if err != nil {
		return fmt.Errorf("netsh added firewall rule %s, but it is not there: %w", r.Name, err)
	}
	if got.Port != r.Port || got.Protocol != r.Protocol {
		return fmt.Errorf("netsh added firewall rule %s for %s %d, not %s %d", r.Name, got.Protocol, got.Port, r.Protocol, r.Port)
	}
	if !got.Enabled {
		return fmt.Errorf("netsh added firewall rule %s, but disabled", r.Name)
	}
	return nil
}

// Delete removes every rule named name; none is not an error.
func (f firewall) Delete(ctx context.Context, name string) error {
	if _, err := f.Rule(ctx, name); errors.Is(err, wicd.ErrNotFound) {
		return nil
	}
	netsh, err := systemProgram("netsh.exe")
	if err != nil {
		return err
	}
	if _, err := f.exec.Run(ctx, []string{netsh, "advfirewall", "firewall", "delete", "rule", "name=" + name}); err != nil {
		return fmt.Errorf("delete firewall rule %s: %w", name, err)
	}
	if _, err := f.Rule(ctx, name); !errors.Is(err, wicd.ErrNotFound) {
		return fmt.Errorf("netsh deleted firewall rule %s, but it is still there", name)
	}
	return nil
}
