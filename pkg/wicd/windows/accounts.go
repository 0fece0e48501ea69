//go:build windows

package windows

import (
	"fmt"

	"golang.org/x/sys/windows"

	"github.com/openwmco/wmco/pkg/wicd"
)

// accounts is wicd.Accounts from the process token and the security APIs.
type accounts struct{}

// Current reads the process token: its user, its profile directory, and
// whether BUILTIN\Administrators is among its enabled groups (an SSH
// session opened with a key has the full, elevated token of an
// administrator; CheckTokenMembership tells exactly what sshd's "Match
// Group administrators" sees).
func (accounts) Current() (wicd.Account, error) {
	// A pseudo-handle with TOKEN_QUERY access: nothing to close.
	tok := windows.GetCurrentProcessToken()
	u, err := tok.GetTokenUser()
	if err != nil {
		return wicd.Account{}, fmt.Errorf("read the token's user: %w", err)
	}
	name, _, _, err := u.User.Sid.LookupAccount("")
	if err != nil {
		return wicd.Account{}, fmt.Errorf("look up %s: %w", u.User.Sid, err)
	}
	admins, err := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	if err != nil {
		return wicd.Account{}, fmt.Errorf("the Administrators SID: %w", err)
	}
	// Token 0: CheckTokenMembership uses the calling thread's
	// impersonation token or, without one, the process token.
	admin, err := windows.Token(0).IsMember(admins)
	if err != nil {
		return wicd.Account{}, fmt.Errorf("check membership of Administrators: %w", err)
	}
	profile, err := tok.GetUserProfileDirectory()
	if err != nil {
		return wicd.Account{}, fmt.Errorf("the profile directory of %s: %w", name, err)
	}
	return wicd.Account{Name: name, Admin: admin, Profile: profile}, nil
}

// RestrictToAdministrators sets the owner and a protected DACL from
// wicd.AdministratorsKeysSDDL: inherited entries are dropped.
func (accounts) RestrictToAdministrators(path string) error {
	return setOwnerAndDACL(path, wicd.AdministratorsKeysSDDL)
}

// SecureFolder reads the folder's owner and DACL and, unless
// wicd.FolderSecured accepts them, sets them from wicd.AgentFolderSDDL.
// SetNamedSecurityInfo passes the new inheritable entries on to the
// folder's contents (those with a protected DACL of their own keep it).
func (accounts) SecureFolder(path string) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("read the security of %s: %w", path, err)
	}
	if wicd.FolderSecured(sd.String()) {
		return nil
	}
	return setOwnerAndDACL(path, wicd.AgentFolderSDDL)
}

// setOwnerAndDACL gives path the owner and the DACL of sddl, protected:
// inherited entries are dropped.
func setOwnerAndDACL(path, sddl string) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return fmt.Errorf("parse %s: %w", sddl, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("owner of %s: %w", sddl, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("DACL of %s: %w", sddl, err)
	}
	info := windows.SECURITY_INFORMATION(windows.OWNER_SECURITY_INFORMATION | windows.DACL_SECURITY_INFORMATION | windows.PROTECTED_DACL_SECURITY_INFORMATION)
	if err := windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, info, owner, nil, dacl, nil); err != nil {
		return fmt.Errorf("set the security of %s: %w", path, err)
	}
	return nil
}
