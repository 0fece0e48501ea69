package wicd

import (
	"strings"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// AgentFolderSDDL is the security descriptor the agent gives the folders
// in SecuredFolders: owned by Administrators, full control for SYSTEM and
// Administrators, inherited by every file and folder below, nothing
// inherited from the drive (as `icacls C:\k /inheritance:r /grant:r
// SYSTEM:(OI)(CI)F /grant:r Administrators:(OI)(CI)F` leaves it). A file
// with a protected descriptor of its own (AdministratorsKeysSDDL) keeps
// it.
const AgentFolderSDDL = "O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

// SecuredFolders are the folders only SYSTEM and Administrators may open:
// the agent's install root (the payload, the plans, the services'
// configuration) and the kubelet's certificate folder, which holds its
// client key. Otherwise they inherit the ACL of C:\, which on Windows
// Server lets every local user read what is written there and create
// files and folders in them (BUILTIN\Users: read and execute, create
// files, create folders; CREATOR OWNER: full control).
var SecuredFolders = []string{wicdapi.InstallRoot, wicdapi.KubeletPKIDir}

// aceAliases are the SDDL aliases of the SIDs AgentFolderSDDL names, by
// the forms a descriptor may spell them in.
var aceAliases = map[string]string{"SY": "SY", "S-1-5-18": "SY", "BA": "BA", "S-1-5-32-544": "BA"}

// FolderSecured says whether sddl, a folder's owner and DACL as
// GetNamedSecurityInfo reports them, grants what AgentFolderSDDL grants
// and nothing else: owned by Administrators or SYSTEM, a protected DACL
// (its auto-inherited flag aside), and exactly full control for SYSTEM and
// for Administrators, each inherited by files and folders. Any other entry
// (a grant to someone else, a deny, an entry that does not reach the
// folder's contents) means it is not.
func FolderSecured(sddl string) bool {
	owner, rest, ok := strings.Cut(sddl, "D:")
	if !ok {
		return false
	}
	// The owner, and a group if one was asked for.
	owner, _, _ = strings.Cut(owner, "G:")
	owner, ok = strings.CutPrefix(owner, "O:")
	if !ok || aceAliases[owner] != "BA" && aceAliases[owner] != "SY" {
		return false
	}
	// A system ACL, if reported, is not the DACL's business.
	rest, _, _ = strings.Cut(rest, "S:")
	flags, aces, _ := strings.Cut(rest, "(")
	if !daclProtected(flags) || aces == "" || !strings.HasSuffix(aces, ")") {
		return false
	}
	seen := map[string]bool{}
	for _, ace := range strings.Split(strings.TrimSuffix(aces, ")"), ")(") {
		f := strings.Split(ace, ";")
		if len(f) != 6 || f[0] != "A" || f[3] != "" || f[4] != "" {
			return false
		}
		trustee := aceAliases[f[5]]
		if trustee == "" || !fullControl(f[2]) || !inheritedByAll(f[1]) {
			return false
		}
		seen[trustee] = true
	}
	return seen["SY"] && seen["BA"]
}

// daclProtected parses DACL flags (P, AI, AR in any order) and says
// whether P is among them.
func daclProtected(flags string) bool {
	protected := false
	for flags != "" {
		switch {
		case strings.HasPrefix(flags, "P"):
			protected, flags = true, flags[1:]
		case strings.HasPrefix(flags, "AI"), strings.HasPrefix(flags, "AR"):
			flags = flags[2:]
		default:
			return false
		}
	}
	return protected
}

// fullControl says whether an ACE's rights are FILE_ALL_ACCESS.
func fullControl(rights string) bool {
	return rights == "FA" || strings.EqualFold(rights, "0x1f01ff")
}

// inheritedByAll says whether ACE flags make the entry apply to the
// folder and be inherited by its files (OI) and folders (CI) at every
// depth: no inherit-only (IO), no-propagate (NP) or other flags. An
// inherited entry (ID) is not one of the folder's own.
func inheritedByAll(flags string) bool {
	if len(flags)%2 != 0 {
		return false
	}
	oi, ci := false, false
	for i := 0; i < len(flags); i += 2 {
		switch flags[i : i+2] {
		case "OI":
			oi = true
		case "CI":
			ci = true
		default:
			return false
		}
	}
	return oi && ci
}
