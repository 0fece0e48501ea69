package firstboot

import (
	"fmt"
	"regexp"
	"strings"
)

// inheritedKeysDACL is the DACL a file created in %ProgramData%\ssh gets
// from its folder: SYSTEM and Administrators in full, Authenticated Users
// read, all inherited. sshd refuses administrators_authorized_keys so.
const inheritedKeysDACL = "D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;AU)"

// ace is one access control entry of a DACL in SDDL.
type ace struct {
	typ, flags, rights, sid string
}

var daclForm = regexp.MustCompile(`^D:((?:P|AI|AR)*)((?:\([^()]*\))+)$`)

// parseDACL parses a DACL-only security descriptor string ("D:P(A;;FA;;;SY)..."),
// the only form the interpreter accepts: anything else (an owner, a SACL,
// an unknown ACE type) is an error.
func parseDACL(sddl string) (protected bool, aces []ace, err error) {
	m := daclForm.FindStringSubmatch(sddl)
	if m == nil {
		return false, nil, fmt.Errorf("%q is not a DACL in SDDL", sddl)
	}
	protected = strings.Contains(m[1], "P")
	for _, raw := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(m[2], "("), ")"), ")(") {
		f := strings.Split(raw, ";")
		if len(f) != 6 {
			return false, nil, fmt.Errorf("ACE (%s) of %q has %d fields, not 6", raw, sddl, len(f))
		}
		if f[0] != "A" && f[0] != "D" {
			return false, nil, fmt.Errorf("ACE (%s) of %q is neither allow nor deny", raw, sddl)
		}
		if f[3] != "" || f[4] != "" || f[2] == "" || f[5] == "" {
			return false, nil, fmt.Errorf("ACE (%s) of %q is not understood", raw, sddl)
		}
		aces = append(aces, ace{typ: f[0], flags: f[1], rights: f[2], sid: f[5]})
	}
	return protected, aces, nil
}

// restrictedDACL says whether sshd would accept a file with this DACL as
// administrators_authorized_keys in the form the operator wants:
// inheritance off, full control for SYSTEM and Administrators, nobody
// else.
func restrictedDACL(sddl string) bool {
	protected, aces, err := parseDACL(sddl)
	if err != nil || !protected {
		return false
	}
	seen := map[string]bool{}
	for _, a := range aces {
		if a.typ != "A" || strings.Contains(a.flags, "ID") || (a.rights != "FA" && !strings.EqualFold(a.rights, "0x1f01ff")) {
			return false
		}
		switch a.sid {
		case "SY", "S-1-5-18":
			seen["SY"] = true
		case "BA", "S-1-5-32-544":
			seen["BA"] = true
		default:
			return false
		}
	}
	return seen["SY"] && seen["BA"]
}
